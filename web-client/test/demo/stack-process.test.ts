/**
 * `npm start`'s program (dist/demo/stack.js, built by `npm test`/`npm run build`) as a real process: it prints
 * where everything is, serves the page, and stops cleanly on SIGINT, removing its temp data; a bad setting stops
 * it with a message naming the setting.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const STACK = fileURLToPath(new URL('../../dist/demo/stack.js', import.meta.url));

function run(env: Record<string, string>): { child: ChildProcess; out: () => string; exit: Promise<number | null> } {
  let out = '';
  const child = spawn(process.execPath, [STACK], {
    env: { ...process.env, SCANRELAY_LOG_LEVEL: 'silent', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => out, exit };
}

describe('npm start (demo/stack.js)', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  it('starts everything, serves the page, and stops cleanly on SIGINT', { timeout: 90_000 }, async () => {
    expect(existsSync(STACK), 'run `npm run build` first').toBe(true);
    const p = run({ SCANRELAY_DEMO_PORT: '0' });
    children.push(p.child);
    await expect.poll(() => p.out(), { timeout: 60_000 }).toContain('Press Ctrl-C to stop.');
    const url = /Open (http:\/\/127\.0\.0\.1:\d+)\//.exec(p.out())![1]!;
    expect(p.out()).toMatch(/site-a\s+gateway gw-/);
    expect(p.out()).toMatch(/site-b\s+gateway gw-/);
    // Default `auto`: no HTTP/3 module here, so WebTransport is not offered and the demo says how to turn it on.
    expect(p.out()).toMatch(/WebTransport\s+off \(SCANRELAY_DEMO_WEBTRANSPORT=on/);
    const dataDir = /data directory\s+(\S+)/.exec(p.out())![1]!;
    expect(existsSync(dataDir)).toBe(true);
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Sign in');
    const relayHealth = /health (http:\/\/\S+)/.exec(p.out())![1]!;
    expect((await fetch(relayHealth)).status).toBe(200);
    p.child.kill('SIGINT');
    expect(await p.exit).toBe(0);
    expect(p.out()).toContain('stopped.');
    expect(existsSync(dataDir)).toBe(false);
  });

  it('refuses a bad SCANRELAY_DEMO_PORT with exit 78 and names the setting', async () => {
    const p = run({ SCANRELAY_DEMO_PORT: 'eighty' });
    children.push(p.child);
    expect(await p.exit).toBe(78);
    expect(p.out()).toContain('SCANRELAY_DEMO_PORT');
  });

  it('refuses a bad SCANRELAY_DEMO_WEBTRANSPORT with exit 78 and names the setting', async () => {
    const p = run({ SCANRELAY_DEMO_WEBTRANSPORT: 'yes' });
    children.push(p.child);
    expect(await p.exit).toBe(78);
    expect(p.out()).toContain('SCANRELAY_DEMO_WEBTRANSPORT');
  });
});
