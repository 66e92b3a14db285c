/**
 * Configuration: defaults → file → environment (env wins) → validation that names the setting and the fix.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  configFromEnv,
  DEFAULT_LIMITS,
  DEFAULT_TIMINGS,
  LIMIT_ENV,
  loadConfig,
  resolveConfig,
} from '../../src/config.js';

const REQUIRED = { SCANRELAY_MANAGE_JWKS: '/etc/jwks.json', SCANRELAY_MANAGE_ISSUER: 'https://manage.test' };

function settingOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.setting;
    throw err;
  }
  throw new Error('no ConfigError');
}

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('resolveConfig', () => {
  it('fills every default, limits on', () => {
    const c = resolveConfig({ manageJwks: '/k.json', manageIssuer: 'https://i' });
    expect(c).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      redisUrl: undefined,
      audience: 'scanrelay',
      allowedOrigins: [],
      transport: 'ws',
      logLevel: 'info',
      trustProxy: false,
    });
    expect(c.limits).toEqual(DEFAULT_LIMITS);
    expect(c.timings).toEqual(DEFAULT_TIMINGS);
    expect(c.limits.maxMessageBytes).toBe(65_536);
    expect(c.timings.livenessTimeoutMs + c.timings.pingIntervalMs).toBeLessThanOrEqual(45_000);
    expect(c.nodeId).toMatch(/^[a-z0-9][a-z0-9._-]*$/i);
  });

  it.each([
    [{}, 'SCANRELAY_MANAGE_JWKS (manageJwks)'],
    [{ manageJwks: 'http://plain.test/jwks' }, 'SCANRELAY_MANAGE_JWKS (manageJwks)'],
    [{ manageJwks: '/k' }, 'SCANRELAY_MANAGE_ISSUER (manageIssuer)'],
    [{ port: 70_000 }, 'SCANRELAY_PORT (port)'],
    [{ redisUrl: 'http://redis' }, 'SCANRELAY_REDIS_URL (redisUrl)'],
    [{ transport: 'h3' }, 'SCANRELAY_TRANSPORT (transport)'],
    [{ logLevel: 'loud' }, 'SCANRELAY_LOG_LEVEL (logLevel)'],
    [{ nodeId: 'bad node!' }, 'SCANRELAY_NODE_ID (nodeId)'],
    [{ allowedOrigins: ['https://ok.test/path'] }, 'SCANRELAY_ALLOWED_ORIGINS (allowedOrigins)'],
    [{ allowedOrigins: ['*'] }, 'SCANRELAY_ALLOWED_ORIGINS (allowedOrigins)'],
    [{ limits: { maxMessageBytes: 0 } }, 'SCANRELAY_MAX_MESSAGE_BYTES (limits.maxMessageBytes)'],
    [{ timings: { livenessTimeoutMs: 1_000 } }, 'SCANRELAY_LIVENESS_TIMEOUT_MS (timings.livenessTimeoutMs)'],
    [{ webTransportPort: 4433 }, 'SCANRELAY_WEBTRANSPORT_CERT / SCANRELAY_WEBTRANSPORT_KEY'],
  ])('refuses %j naming %s', (input, setting) => {
    const base =
      'manageJwks' in input || Object.keys(input).length === 0 ? {} : { manageJwks: '/k', manageIssuer: 'i' };
    expect(settingOf(() => resolveConfig({ ...base, ...input } as never))).toBe(setting);
  });

  it('tells the operator what to write', () => {
    expect(() => resolveConfig({ manageIssuer: 'i' })).toThrow(/JWKS file path or its https:\/\/ URL/);
  });

  it('normalises allowed origins to scheme://host[:port]', () => {
    const c = resolveConfig({
      ...{ manageJwks: '/k', manageIssuer: 'i' },
      allowedOrigins: ['HTTPS://Manage.Test:443'],
    });
    expect(c.allowedOrigins).toEqual(['https://manage.test']);
  });
});

describe('environment and --config', () => {
  it('reads every documented variable', () => {
    const env = {
      ...REQUIRED,
      SCANRELAY_HOST: '127.0.0.1',
      SCANRELAY_PORT: '9000',
      SCANRELAY_REDIS_URL: 'redis://r:6379',
      SCANRELAY_ALLOWED_ORIGINS: 'https://a.test, https://b.test',
      SCANRELAY_DATA_DIR: '/data',
      SCANRELAY_NODE_ID: 'relay-7',
      SCANRELAY_TRANSPORT: 'uws',
      SCANRELAY_LOG_LEVEL: 'debug',
      SCANRELAY_AUDIENCE: 'relay.example',
      SCANRELAY_TRUST_PROXY: 'true',
      SCANRELAY_REQUIRE_ENCRYPTED_PAYLOADS: 'yes',
      SCANRELAY_MAX_CONNECTIONS_PER_IP: '5',
      SCANRELAY_HISTORY_MAX_EVENTS: '77',
    };
    const c = resolveConfig(configFromEnv(env));
    expect(c).toMatchObject({
      host: '127.0.0.1',
      port: 9000,
      redisUrl: 'redis://r:6379',
      allowedOrigins: ['https://a.test', 'https://b.test'],
      dataDir: '/data',
      nodeId: 'relay-7',
      transport: 'uws',
      logLevel: 'debug',
      audience: 'relay.example',
      trustProxy: true,
      requireEncryptedPayloads: true,
    });
    expect(c.limits.maxConnectionsPerIp).toBe(5);
    expect(c.history.maxEvents).toBe(77);
  });

  it('maps every limit variable to a real setting', () => {
    // Large enough to satisfy every cross-check (liveness > ping interval, send buffer ≥ frame size …).
    const roomy = { SCANRELAY_LIVENESS_TIMEOUT_MS: '900000000', SCANRELAY_PRESENCE_TTL_MS: '900000000' };
    const big = { SCANRELAY_SEND_BUFFER_BYTES: '900000000' };
    for (const [name, [section, key]] of Object.entries(LIMIT_ENV)) {
      const c = resolveConfig(configFromEnv({ ...REQUIRED, ...roomy, ...big, [name]: '123456' }));
      expect((c[section] as unknown as Record<string, number>)[key], name).toBe(123456);
    }
  });

  it('refuses a non-number limit naming the variable', () => {
    expect(settingOf(() => configFromEnv({ SCANRELAY_PORT: '80a' }))).toBe('SCANRELAY_PORT');
    expect(settingOf(() => configFromEnv({ SCANRELAY_TRUST_PROXY: 'maybe' }))).toBe('SCANRELAY_TRUST_PROXY');
    expect(settingOf(() => configFromEnv({ SCANRELAY_REQUIRE_ENCRYPTED_PAYLOADS: 'on' }))).toBe(
      'SCANRELAY_REQUIRE_ENCRYPTED_PAYLOADS',
    );
  });

  it('merges a --config file under the environment (env wins)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanrelay-config-'));
    const file = join(dir, 'relay.json');
    await writeFile(
      file,
      JSON.stringify({
        port: 7000,
        host: '10.0.0.1',
        manageJwks: '/f',
        manageIssuer: 'https://f',
        limits: { maxSubscriptions: 3 },
      }),
    );
    const c = await loadConfig({ SCANRELAY_PORT: '7001' }, ['--config', file]);
    expect(c).toMatchObject({ port: 7001, host: '10.0.0.1', manageJwks: '/f' });
    expect(c.limits.maxSubscriptions).toBe(3);
    expect(c.limits.maxBadMessages).toBe(DEFAULT_LIMITS.maxBadMessages);
    await expect(loadConfig({}, ['--config', join(dir, 'missing.json')])).rejects.toThrow(/cannot read/);
    await writeFile(file, '[1,2]');
    await expect(loadConfig({}, ['--config', file])).rejects.toThrow(/one JSON object/);
    await expect(loadConfig({}, ['--config'])).rejects.toThrow(/needs a file path/);
  });
});
