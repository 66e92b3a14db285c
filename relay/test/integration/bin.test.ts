/**
 * The `scanrelay-relay` binary (relay/dist/main.js, built by `npm test`'s `tsc -b`): configuration from the
 * environment, a start-up error that names the setting, readiness, and SIGTERM → clients closed with 1001,
 * exit 0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { generateManageKey, type JwksFile, mintSession, TEST_ISSUER, writeJwksFile } from '../helpers/tokens.js';

const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

let child: ChildProcess | undefined;
let jwks: JwksFile | undefined;
let dataDir: string | undefined;
afterEach(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
  await jwks?.cleanup();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

function run(env: Record<string, string>): { proc: ChildProcess; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  const proc = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  child = proc;
  return { proc, out: () => out, err: () => err };
}

const exited = (proc: ChildProcess): Promise<number | null> =>
  new Promise((resolve) => {
    if (proc.exitCode !== null) resolve(proc.exitCode);
    else proc.once('exit', (code) => resolve(code));
  });

describe('scanrelay-relay', () => {
  it('refuses to start on bad configuration, naming the setting (exit 78)', async () => {
    const { proc, err } = run({ SCANRELAY_MANAGE_ISSUER: TEST_ISSUER });
    expect(await exited(proc)).toBe(78);
    expect(err()).toMatch(/SCANRELAY_MANAGE_JWKS/);
    const bad = run({
      SCANRELAY_MANAGE_JWKS: '/x',
      SCANRELAY_MANAGE_ISSUER: 'i',
      SCANRELAY_TRANSPORT: 'carrier-pigeon',
    });
    expect(await exited(bad.proc)).toBe(78);
    expect(bad.err()).toMatch(/SCANRELAY_TRANSPORT .*must be ws or uws/);
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-bin-'));
    const noKeys = run({
      SCANRELAY_MANAGE_JWKS: '/nonexistent/jwks.json',
      SCANRELAY_MANAGE_ISSUER: 'i',
      SCANRELAY_PORT: '0',
      SCANRELAY_DATA_DIR: dataDir,
    });
    expect(await exited(noKeys.proc)).toBe(78);
    expect(noKeys.err()).toMatch(/jwks/i);
  });

  it('serves from env, and on SIGTERM closes clients with 1001 and exits 0', async () => {
    const manage = await generateManageKey();
    jwks = await writeJwksFile([manage]);
    dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-bin-'));
    const { proc, out } = run({
      SCANRELAY_HOST: '127.0.0.1',
      SCANRELAY_PORT: '0',
      SCANRELAY_MANAGE_JWKS: jwks.path,
      SCANRELAY_MANAGE_ISSUER: TEST_ISSUER,
      SCANRELAY_ALLOWED_ORIGINS: 'https://manage.scanrelay.test',
      SCANRELAY_DATA_DIR: dataDir,
      SCANRELAY_NODE_ID: 'bin-node',
    });
    const deadline = Date.now() + 15_000;
    let port: number | undefined;
    while (port === undefined) {
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`relay did not start: ${out()}`);
      const line = out()
        .split('\n')
        .find((l) => l.includes('relay listening'));
      if (line) port = (JSON.parse(line) as { port: number }).port;
      else await new Promise((r) => setTimeout(r, 20));
    }
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    const c = await TestClient.connect(`ws://127.0.0.1:${port}/v1/browser`, {
      origin: 'https://manage.scanrelay.test',
    });
    c.send({ type: 'hello', token: await mintSession(manage) });
    expect((await c.next('welcome')).node).toBe('bin-node');
    proc.kill('SIGTERM');
    expect(await c.closed).toEqual({ code: 1001, reason: 'shutting_down' });
    expect(await exited(proc)).toBe(0);
    const lines = out().split('\n').filter(Boolean);
    expect(lines.every((l) => l.startsWith('{'))).toBe(true);
    expect(out()).not.toContain('eyJ'); // no JWT (or any base64url JSON) in the logs
  });
});
