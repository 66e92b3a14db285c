/**
 * Loading the manage app's keys: refusing to start without usable keys, skipping unsafe JWKS entries, and the
 * https (here: loopback http) source with caching, refresh on unknown kid, rate limiting and keep-last-good.
 */

import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthConfigError } from '../../src/auth/jwks.js';
import { createAuthenticator } from '../../src/auth/verify.js';
import { MemoryRegistry } from '../../src/ports/registry-memory.js';
import { ManualClock } from '../contract/manual-clock.js';
import {
  generateManageKey,
  type JwksFile,
  jwksOf,
  mintSession,
  TEST_AUDIENCE,
  TEST_ISSUER,
  type TestKey,
  writeJwksFile,
} from '../helpers/tokens.js';
import { authFailure, capturedLogger } from './fixture.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function open(manageJwks: string, clock = new ManualClock(), extra: { minRefreshMs?: number } = {}) {
  const log = capturedLogger();
  return createAuthenticator({
    manageJwks,
    manageIssuer: TEST_ISSUER,
    audience: TEST_AUDIENCE,
    registry: new MemoryRegistry(clock),
    clock,
    logger: log.logger,
    jwks: extra,
  }).then((auth) => {
    cleanups.push(() => auth.close());
    return { auth, clock, log };
  });
}

async function jwksFile(keys: TestKey[] | { keys: unknown[] }): Promise<JwksFile> {
  const f = await writeJwksFile(keys);
  cleanups.push(() => f.cleanup());
  return f;
}

/** A loopback JWKS server whose document and status the test controls; counts requests. */
async function jwksServer(
  doc: unknown,
): Promise<{ url: string; set(d: unknown, status?: number): void; hits(): number }> {
  let current = doc;
  let status = 200;
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits++;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(typeof current === 'string' ? current : JSON.stringify(current));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    set(d, s = 200) {
      current = d;
      status = s;
    },
    hits: () => hits,
  };
}

describe('start-up', () => {
  it('refuses an empty key set, naming SCANRELAY_MANAGE_JWKS', async () => {
    const f = await jwksFile({ keys: [] });
    const err = await open(f.path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthConfigError);
    expect((err as Error).message).toContain('SCANRELAY_MANAGE_JWKS');
  });

  it('refuses an empty issuer or audience, naming the setting', async () => {
    const f = await jwksFile([await generateManageKey()]);
    for (const [manageIssuer, audience, setting] of [
      ['', TEST_AUDIENCE, 'SCANRELAY_MANAGE_ISSUER'],
      [TEST_ISSUER, '', 'SCANRELAY_AUDIENCE'],
    ] as const) {
      const clock = new ManualClock();
      const err = await createAuthenticator({
        manageJwks: f.path,
        manageIssuer,
        audience,
        registry: new MemoryRegistry(clock),
        clock,
        logger: capturedLogger().logger,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuthConfigError);
      expect((err as Error).message).toContain(setting);
    }
  });

  it('refuses a missing file, bad JSON, and plain http to a non-loopback host', async () => {
    for (const source of ['/nonexistent/jwks.json', 'http://keys.example.test/jwks.json', 'ftp://x/y', '']) {
      const err = await open(source).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuthConfigError);
      expect((err as Error).message).toContain('SCANRELAY_MANAGE_JWKS');
    }
    const f = await jwksFile({ keys: [] });
    await writeFile(f.path, '{not json');
    expect(await open(f.path).catch((e: unknown) => e)).toBeInstanceOf(AuthConfigError);
  });

  it('skips private, symmetric, weak RSA, kid-less, duplicate and unlisted-alg keys; keeps the good one', async () => {
    const good = await generateManageKey({ kid: 'good' });
    const priv = await generateManageKey({ kid: 'priv' });
    const dup = await generateManageKey({ kid: 'dup' });
    // jose will not even generate a 1024-bit RSA key; node:crypto will.
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const p384 = await generateKeyPair('ES384', { extractable: true });
    const doc = {
      keys: [
        good.publicJwk,
        { ...(await exportJWK(priv.privateKey)), kid: 'priv', alg: 'ES256' },
        { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac', alg: 'HS256' },
        { ...rsa1024.publicKey.export({ format: 'jwk' }), kid: 'rsa1024', alg: 'RS256' },
        { ...(await exportJWK(p384.publicKey)), kid: 'p384', alg: 'ES384' },
        { ...good.publicJwk, kid: undefined },
        dup.publicJwk,
        dup.publicJwk,
        { ...good.publicJwk, kid: 'enc', use: 'enc' },
      ],
    };
    const f = await jwksFile(doc);
    const { auth, log } = await open(f.path);
    await expect(auth.verifySession(await mintSession(good))).resolves.toBeDefined();
    for (const key of [priv, dup]) {
      expect((await authFailure(auth.verifySession(await mintSession(key)))).reason).toBe('unknown_kid');
    }
    const warnings = log.lines.join('\n');
    for (const kid of ['priv', 'hmac', 'rsa1024', 'p384', 'dup', 'enc']) expect(warnings).toContain(kid);
    expect(warnings).not.toContain('"d":');
  });

  it('refuses a set whose only keys are unusable', async () => {
    const priv = await generateManageKey();
    const f = await jwksFile({ keys: [{ ...(await exportJWK(priv.privateKey)), kid: 'p', alg: 'ES256' }] });
    expect(await open(f.path).catch((e: unknown) => e)).toBeInstanceOf(AuthConfigError);
  });
});

describe('URL source', () => {
  it('fetches once, then refreshes on an unknown kid at most once per minimum interval', async () => {
    const k1 = await generateManageKey({ kid: 'k1' });
    const k2 = await generateManageKey({ kid: 'k2' });
    const srv = await jwksServer(jwksOf([k1]));
    const { auth, clock } = await open(srv.url, new ManualClock(), { minRefreshMs: 30_000 });
    expect(srv.hits()).toBe(1);
    await auth.verifySession(await mintSession(k1, { now: clock.now() }));
    expect(srv.hits()).toBe(1); // cached

    srv.set(jwksOf([k1, k2]));
    // Within the minimum interval an unknown kid does not cause a fetch (a flood of made-up kids costs nothing).
    for (let i = 0; i < 5; i++) {
      expect((await authFailure(auth.verifySession(await mintSession(k2, { now: clock.now() })))).reason).toBe(
        'unknown_kid',
      );
    }
    expect(srv.hits()).toBe(1);
    clock.advance(30_000);
    await expect(auth.verifySession(await mintSession(k2, { now: clock.now() }))).resolves.toBeDefined();
    expect(srv.hits()).toBe(2);
  });

  it('keeps the last good keys when the endpoint fails or serves garbage or an empty set', async () => {
    const k1 = await generateManageKey({ kid: 'k1' });
    const srv = await jwksServer(jwksOf([k1]));
    const { auth, clock } = await open(srv.url);
    for (const [doc, status] of [
      ['oops', 500],
      ['{"keys": "no"}', 200],
      [{ keys: [] }, 200],
      ['x'.repeat(300 * 1024), 200],
    ] as const) {
      srv.set(doc, status);
      clock.advance(10 * 60_000); // past any backoff from the previous round
      const before = srv.hits();
      expect(await auth.refreshKeys()).toBe(1);
      expect(srv.hits()).toBe(before + 1);
      await expect(auth.verifySession(await mintSession(k1, { now: clock.now() }))).resolves.toBeDefined();
    }
  });

  it('backs off after a failure instead of hammering the endpoint', async () => {
    const k1 = await generateManageKey({ kid: 'k1' });
    const srv = await jwksServer(jwksOf([k1]));
    const { auth } = await open(srv.url);
    srv.set('down', 503);
    await auth.refreshKeys();
    const after = srv.hits();
    await auth.refreshKeys();
    await auth.refreshKeys();
    expect(srv.hits()).toBe(after);
  });
});
