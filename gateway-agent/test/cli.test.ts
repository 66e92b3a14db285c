/**
 * The `scanrelay-gateway` binary (bundled from source) as an operator uses it: help, configuration errors that
 * name the setting, activation against the real relay, `run` stopping with exit code 1 when revoked.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Relay } from '../../relay/src/relay.js';
import { createFixture, type Fixture } from '../../relay/test/helpers/relay-fixture.js';
import { mintAdmin, TEST_ISSUER } from '../../relay/test/helpers/tokens.js';
import { loadConfig, validateConfig } from '../src/config.js';
import { activate } from '../src/keys/activate.js';
import { silentLogger } from '../src/log.js';
import { Outbox } from '../src/outbox/outbox.js';
import { bundle, type Child, cleanupBundles, startChild } from './helpers/child.js';

let cli: string;
const children: Child[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  cli = await bundle('gateway-agent/src/cli.ts');
});
afterAll(async () => {
  await cleanupBundles();
});
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill('SIGKILL');
    await c.exited;
  }
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

function run(args: string[], env: NodeJS.ProcessEnv = {}): Child {
  // Strip any SCANRELAY_GATEWAY_* of the developer's shell so the test controls every setting.
  const clean: NodeJS.ProcessEnv = {};
  for (const k of Object.keys(process.env)) if (k.startsWith('SCANRELAY_GATEWAY_')) clean[k] = '';
  const child = startChild(cli, args, { ...clean, ...env });
  children.push(child);
  return child;
}

async function adminCreate(fx: Fixture, relay: Relay): Promise<{ gateway: string; activationCode: string }> {
  const res = await fetch(`http://127.0.0.1:${relay.port}/v1/admin/gateways`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await mintAdmin(fx.manage)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ site: 'site-a', name: 'cli test' }),
  });
  return (await res.json()) as { gateway: string; activationCode: string };
}

describe('scanrelay-gateway CLI', () => {
  it('prints help for the tool and each command', async () => {
    for (const args of [['--help'], ['activate', '--help'], ['run', '--help'], ['simulate-modality', '--help']]) {
      const c = run(args);
      expect(await c.exited).toBe(0);
      expect(c.lines.join('\n')).toContain('scanrelay-gateway');
    }
    const unknown = run(['frobnicate']);
    expect(await unknown.exited).toBe(2);
  });

  it('simulate-modality takes --commitment-wait-ms and names it when its value is bad (exit 2)', async () => {
    const help = run(['simulate-modality', '--help']);
    expect(await help.exited).toBe(0);
    expect(help.lines.join('\n')).toContain('--commitment-wait-ms');
    const bad = run(['simulate-modality', '--gateway', 'SCANRELAY@127.0.0.1:1', '--commitment-wait-ms', 'soon']);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toContain('--commitment-wait-ms must be a whole number');
  });

  it('refuses to run with bad settings, naming each setting and the fix (exit 2)', async () => {
    const c = run(['run'], {
      SCANRELAY_GATEWAY_STATE_DIR: 'relative/dir',
      SCANRELAY_GATEWAY_DICOM_PORT: '70000',
      SCANRELAY_GATEWAY_PACS: 'not-a-peer',
    });
    expect(await c.exited).toBe(2);
    const err = c.stderr();
    for (const name of [
      'SCANRELAY_GATEWAY_STATE_DIR',
      'SCANRELAY_GATEWAY_DICOM_PORT',
      'SCANRELAY_GATEWAY_PACS',
      'SCANRELAY_GATEWAY_MANAGE_JWKS',
      'SCANRELAY_GATEWAY_MANAGE_ISSUER',
    ])
      expect(err).toContain(name);
  });

  it('tells an operator to activate first when the state dir has no identity (exit 1)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gw-cli-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const jwks = join(dir, 'jwks.json');
    await writeFile(jwks, JSON.stringify({ keys: [] }));
    const c = run(['run'], {
      SCANRELAY_GATEWAY_STATE_DIR: join(dir, 'state'),
      SCANRELAY_GATEWAY_MANAGE_JWKS: jwks,
      SCANRELAY_GATEWAY_MANAGE_ISSUER: TEST_ISSUER,
    });
    expect(await c.exited).toBe(1);
    expect(c.stderr()).toContain('scanrelay-gateway activate');
  });

  it('activates against the real relay, then runs until the relay revokes it, exiting 1 and saying so', async () => {
    const fx = await createFixture();
    cleanups.push(() => fx.close());
    const relay = await fx.start();
    const dir = await mkdtemp(join(tmpdir(), 'gw-cli-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const stateDir = join(dir, 'state');
    const created = await adminCreate(fx, relay);

    const act = run(['activate', '--relay', `http://127.0.0.1:${relay.port}`, '--code', created.activationCode], {
      SCANRELAY_GATEWAY_STATE_DIR: stateDir,
    });
    expect(await act.exited).toBe(0);
    expect(act.lines.join('\n')).toContain(`gateway ${created.gateway}`);
    expect((await stat(join(stateDir, 'gateway-key.jwk'))).mode & 0o777).toBe(0o600);
    // Issue 17: the encryption key is made beside it, and both activate and status print its thumbprint.
    expect((await stat(join(stateDir, 'gateway-enc-key.jwk'))).mode & 0o777).toBe(0o600);
    const printed = /encryption key thumbprint: ([A-Za-z0-9_ -]+)/.exec(act.lines.join('\n'))?.[1]?.split(' (')[0];
    expect(printed?.replace(/ /g, '')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const status = run(['status'], { SCANRELAY_GATEWAY_STATE_DIR: stateDir });
    expect(await status.exited).toBe(0);
    expect(status.lines.join('\n')).toContain(`encryption key thumbprint: ${printed}`);

    // The code is single use.
    const again = run(
      ['activate', '--relay', `http://127.0.0.1:${relay.port}`, '--code', created.activationCode, '--force'],
      { SCANRELAY_GATEWAY_STATE_DIR: join(dir, 'other') },
    );
    expect(await again.exited).toBe(1);
    expect(again.stderr()).toContain('refused the activation');

    // Settings from a --config file; the environment wins over it.
    const configFile = join(dir, 'gateway.json');
    await writeFile(
      configFile,
      JSON.stringify({
        SCANRELAY_GATEWAY_STATE_DIR: stateDir,
        SCANRELAY_GATEWAY_MANAGE_JWKS: fx.jwks.path,
        SCANRELAY_GATEWAY_MANAGE_ISSUER: TEST_ISSUER,
        SCANRELAY_GATEWAY_DICOM_PORT: 0,
        SCANRELAY_GATEWAY_DICOM_HOST: '127.0.0.1',
        SCANRELAY_GATEWAY_LOG_LEVEL: 'debug',
      }),
    );
    const agent = run(['run', '--config', configFile], { SCANRELAY_GATEWAY_LOG_LEVEL: 'info' });
    const { client } = await fx.browser(relay, { sites: ['site-a'] });
    client.send({ type: 'subscribe', site: 'site-a' });
    await client.next('subscribed');
    if (!client.received.some((m) => m.type === 'subscribed' && JSON.stringify(m.presence).includes('"online":true')))
      await client.next('presence', (m) => m.gateway === created.gateway && m.online === true, 15_000);

    const res = await fetch(`http://127.0.0.1:${relay.port}/v1/admin/gateways/${created.gateway}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${await mintAdmin(fx.manage)}` },
    });
    expect(res.ok).toBe(true);
    expect(await agent.exited).toBe(1);
    expect(agent.stderr()).toContain('REVOKED');
    expect(agent.stderr()).not.toContain('"level":20');
  });
});

describe('re-enrolment', () => {
  it('moves the old identity’s undelivered events aside so they are never sent as the new gateway', async () => {
    const fx = await createFixture();
    cleanups.push(() => fx.close());
    const relay = await fx.start();
    const dir = await mkdtemp(join(tmpdir(), 'gw-reenrol-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const first = await adminCreate(fx, relay);
    const url = `http://127.0.0.1:${relay.port}`;
    await activate({ relay: url, code: first.activationCode, stateDir: dir });
    const outbox = await Outbox.open({ dir: join(dir, 'outbox'), logger: silentLogger() });
    await outbox.append({ kind: 'procedure.started', subject: 'ACC1', at: 1, data: {} });
    await outbox.close();

    const second = await adminCreate(fx, relay);
    await expect(activate({ relay: url, code: second.activationCode, stateDir: dir })).rejects.toMatchObject({
      code: 'activation_failed',
    });
    const result = await activate({ relay: url, code: second.activationCode, stateDir: dir, force: true });
    expect(result.gateway).toBe(second.gateway);
    expect(result.retiredOutbox).toContain(first.gateway);
    const fresh = await Outbox.open({ dir: join(dir, 'outbox'), logger: silentLogger() });
    expect(fresh.pendingAfter(0, 10)).toEqual([]);
    await fresh.close();
    expect((await stat(result.retiredOutbox!)).isDirectory()).toBe(true);
  });
});

describe('configuration', () => {
  it('merges defaults, file and environment (env wins) and converts relay URLs to the gateway endpoint', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gw-cfg-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'c.json');
    await writeFile(
      file,
      JSON.stringify({
        SCANRELAY_GATEWAY_RELAY_URLS: ['https://a.example.org', 'http://b.example.org:8080/base'],
        SCANRELAY_GATEWAY_MANAGE_JWKS: '/etc/jwks.json',
        SCANRELAY_GATEWAY_MANAGE_ISSUER: 'https://manage',
        SCANRELAY_GATEWAY_AET: 'FROMFILE',
        SCANRELAY_GATEWAY_MODALITIES: 'MG1@10.0.0.5:104,MG2@[::1]:11112',
      }),
    );
    const c = loadConfig({ configFile: file, env: { SCANRELAY_GATEWAY_AET: 'FROMENV' } });
    expect(c.relayUrls).toEqual(['wss://a.example.org/v1/gateway', 'ws://b.example.org:8080/base/v1/gateway']);
    expect(c.aet).toBe('FROMENV');
    expect(c.modalities).toEqual([
      { aet: 'MG1', host: '10.0.0.5', port: 104 },
      { aet: 'MG2', host: '::1', port: 11112 },
    ]);
    expect(c).toMatchObject({ dicomPort: 11112, codec: 'msgpack', audience: 'scanrelay', outboxMaxEvents: 100_000 });
    await writeFile(file, JSON.stringify({ SCANRELAY_GATEWAY_TYPO: 'x' }));
    expect(() => loadConfig({ configFile: file, env: {} })).toThrow(/SCANRELAY_GATEWAY_TYPO/);
  });

  it('refuses relay URLs with credentials or a query (tokens never travel in URLs)', () => {
    const base = { SCANRELAY_GATEWAY_MANAGE_JWKS: '/x', SCANRELAY_GATEWAY_MANAGE_ISSUER: 'i' };
    expect(() => validateConfig({ ...base, SCANRELAY_GATEWAY_RELAY_URLS: 'https://u:p@relay' })).toThrow(
      /SCANRELAY_GATEWAY_RELAY_URLS/,
    );
    expect(() => validateConfig({ ...base, SCANRELAY_GATEWAY_RELAY_URLS: 'https://relay/?token=x' })).toThrow(
      /SCANRELAY_GATEWAY_RELAY_URLS/,
    );
    expect(() => validateConfig({ ...base, SCANRELAY_GATEWAY_RELAY_URLS: 'ftp://relay' })).toThrow(
      /SCANRELAY_GATEWAY_RELAY_URLS/,
    );
  });
});
