/**
 * Gateway enrolment over the real HTTP API (SECURITY.md cases 20–25): the code format, correct code + proof,
 * reuse, expiry, lockout, rate limits applied before scrypt, concurrent redemption, site binding, and every
 * unacceptable key or proof — with the registry checked to hold nothing afterwards.
 */
import { generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { generateActivationCode, HashGate, parseActivationCode } from '../../src/auth/activation.js';
import { activationProof, gatewayActivation, generateGatewayKey, mintGatewayAssertion } from '../helpers/tokens.js';
import { type ApiFixture, apiFixture } from './http-fixture.js';

let fx: ApiFixture | undefined;
afterEach(async () => {
  await fx?.close();
  fx = undefined;
});

async function setup(activation: Parameters<typeof apiFixture>[0] = {}): Promise<ApiFixture> {
  fx = await apiFixture(activation);
  return fx;
}

/** Swap the secret part for a wrong one of the same shape. */
function wrongSecret(code: string): string {
  const last = code.at(-1) === '0' ? '1' : '0';
  return code.slice(0, -1) + last;
}

async function expectPending(f: ApiFixture, gateway: string): Promise<void> {
  const g = await f.registry.getGateway(gateway);
  expect(g?.status).toBe('pending');
  expect(g?.publicKey).toBeUndefined();
  expect(g?.thumbprint).toBeUndefined();
}

describe('activation codes', () => {
  it('have 8 lookup and 12 secret Crockford base32 characters, read forgivingly', () => {
    const { code, lookup, secret } = generateActivationCode();
    expect(code).toMatch(/^([0-9A-HJKMNP-TV-Z]{4}-){4}[0-9A-HJKMNP-TV-Z]{4}$/);
    expect(secret.length * 5).toBeGreaterThanOrEqual(60);
    expect(parseActivationCode(code)).toEqual({ lookup, secret });
    expect(parseActivationCode(code.toLowerCase().replace(/-/g, ' '))).toEqual({ lookup, secret });
    expect(parseActivationCode('OIL0-0000-0000-0000-0000')).toEqual({ lookup: '01100000', secret: '000000000000' });
    for (const bad of ['', 'ABCD', `${code}-AAAA`, 'UUUU-UUUU-UUUU-UUUU-UUUU', 'x'.repeat(65), 42]) {
      expect(parseActivationCode(bad)).toBeUndefined();
    }
  });
});

describe('hash gate', () => {
  it('runs at most its limit of hashes at once and hands slots on in order', async () => {
    const gate = new HashGate(2);
    const started: number[] = [];
    const release: (() => void)[] = [];
    const task = (i: number) =>
      gate.run(async () => {
        started.push(i);
        await new Promise<void>((resolve) => release.push(resolve));
        return i;
      });
    const all = [task(1), task(2), task(3), task(4)];
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([1, 2]);
    release.shift()!();
    await all[0];
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([1, 2, 3]);
    while (release.length > 0 || started.length < 4) {
      release.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    await expect(Promise.all(all)).resolves.toEqual([1, 2, 3, 4]);
  });

  it('frees its slot when a hash fails', async () => {
    const gate = new HashGate(1);
    await expect(gate.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(gate.run(async () => 'ok')).resolves.toBe('ok');
  });
});

describe('POST /v1/activate', () => {
  it('binds the key with its RFC 7638 thumbprint, and the gateway can then authenticate (case 20)', async () => {
    const f = await setup();
    const issued = await f.issue('site-a');
    expect(issued.expiresAt).toBe(f.clock.now() + 3_600_000);
    for (const alg of ['ES256', 'EdDSA'] as const) {
      const code = alg === 'ES256' ? issued : await f.issue('site-b');
      const { key, body } = await gatewayActivation(code.activationCode, alg);
      const r = await f.call('POST', '/v1/activate', { body });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ gateway: code.gateway, site: code.site });
      const g = await f.registry.getGateway(code.gateway);
      expect(g?.status).toBe('active');
      expect(g?.thumbprint).toBe(await calculateJwkThumbprint(key.publicJwk, 'sha256'));
      const assertion = await mintGatewayAssertion(key, { gateway: code.gateway, now: f.clock.now() });
      expect((await f.auth.verifyGatewayAssertion(assertion)).gateway.site).toBe(code.site);
    }
    // The code itself is never stored or logged.
    const file = await (await import('node:fs/promises')).readFile(f.registry.path, 'utf8');
    const secret = issued.activationCode.replace(/-/g, '').slice(8);
    expect(file).not.toContain(secret);
    expect(f.log.lines.join('')).not.toContain(secret);
  });

  it('accepts the code typed in lower case without dashes, with the proof over that same string', async () => {
    const f = await setup();
    const issued = await f.issue();
    const typed = issued.activationCode.toLowerCase().replace(/-/g, '');
    const { body } = await gatewayActivation(typed);
    expect((await f.call('POST', '/v1/activate', { body })).status).toBe(200);
  });

  it('refuses a used code, including to the same key (case 21)', async () => {
    const f = await setup();
    const issued = await f.issue();
    const first = await gatewayActivation(issued.activationCode);
    expect((await f.call('POST', '/v1/activate', { body: first.body })).status).toBe(200);
    const again = await f.call('POST', '/v1/activate', { body: first.body });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('conflict');
    const other = await gatewayActivation(issued.activationCode);
    expect((await f.call('POST', '/v1/activate', { body: other.body })).status).toBe(409);
    expect((await f.registry.getGateway(issued.gateway))?.thumbprint).toBe(first.key.thumbprint);
  });

  it('refuses an expired code (case 21)', async () => {
    const f = await setup({ ttlMs: 60_000 });
    const issued = await f.issue();
    f.clock.advance(60_001);
    const r = await f.call('POST', '/v1/activate', { body: (await gatewayActivation(issued.activationCode)).body });
    expect(r.status).toBe(401);
    expect(r.body.code).toBe('token_expired');
    await expectPending(f, issued.gateway);
  });

  it('locks a code after 5 wrong secrets, even against the right one afterwards (case 22)', async () => {
    const f = await setup({ perIpPerMinute: 100 });
    const issued = await f.issue();
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { body } = await gatewayActivation(wrongSecret(issued.activationCode));
      statuses.push((await f.call('POST', '/v1/activate', { body })).status);
    }
    expect(statuses).toEqual([401, 401, 401, 401, 403]);
    const hashesBefore = f.hashes();
    const right = await f.call('POST', '/v1/activate', { body: (await gatewayActivation(issued.activationCode)).body });
    expect(right.status).toBe(403);
    expect(right.body.message).toMatch(/locked/);
    expect(f.hashes()).toBe(hashesBefore); // a locked code costs no scrypt
    await expectPending(f, issued.gateway);
  });

  it('limits spraying from one address before any hashing (case 22)', async () => {
    const f = await setup({ perIpPerMinute: 3, globalPerMinute: 1000 });
    const codes = await Promise.all([f.issue(), f.issue(), f.issue(), f.issue(), f.issue()]);
    const before = f.hashes();
    const results: number[] = [];
    for (const c of codes) {
      const { body } = await gatewayActivation(wrongSecret(c.activationCode));
      const r = await f.call('POST', '/v1/activate', { body });
      results.push(r.status);
      if (r.status === 429) {
        expect(r.body.code).toBe('rate_limited');
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      }
    }
    expect(results).toEqual([401, 401, 401, 429, 429]);
    expect(f.hashes() - before).toBe(3); // the refused attempts never reached scrypt
    // Even the right code is refused while the address is limited, then works in the next window.
    const right = (await gatewayActivation(codes[4]!.activationCode)).body;
    expect((await f.call('POST', '/v1/activate', { body: right })).status).toBe(429);
    f.clock.advance(60_000);
    expect((await f.call('POST', '/v1/activate', { body: right })).status).toBe(200);
  });

  it('applies a global limit across addresses, before hashing', async () => {
    fx = await apiFixture({ perIpPerMinute: 100, globalPerMinute: 2 }, { trustProxy: true });
    const f = fx;
    const issued = await f.issue();
    const before = f.hashes();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const { body } = await gatewayActivation(wrongSecret(issued.activationCode));
      const r = await f.call('POST', '/v1/activate', { body, headers: { 'x-forwarded-for': `10.0.0.${i}` } });
      statuses.push(r.status);
    }
    expect(statuses).toEqual([401, 401, 429, 429]);
    expect(f.hashes() - before).toBe(2);
  });

  it('lets exactly one of many simultaneous redemptions of one code win (case 23)', async () => {
    const f = await setup({ perIpPerMinute: 100 });
    const issued = await f.issue();
    const attempts = await Promise.all(Array.from({ length: 8 }, () => gatewayActivation(issued.activationCode)));
    const results = await Promise.all(attempts.map((a) => f.call('POST', '/v1/activate', { body: a.body })));
    const winners = results.map((r, i) => ({ r, i })).filter(({ r }) => r.status === 200);
    expect(winners).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(7);
    const g = await f.registry.getGateway(issued.gateway);
    expect(g?.thumbprint).toBe(attempts[winners[0]!.i]!.key.thumbprint);
  });

  it('never binds a code for site A to site B (case 24)', async () => {
    const f = await setup();
    const a = await f.issue('site-a');
    const { body } = await gatewayActivation(a.activationCode);
    const r = await f.call('POST', '/v1/activate', { body: { ...body, site: 'site-b' } });
    expect(r.status).toBe(403);
    expect(r.body.code).toBe('forbidden');
    await expectPending(f, a.gateway);
    const ok = await f.call('POST', '/v1/activate', { body: { ...body, site: 'site-a' } });
    expect(ok.body).toEqual({ gateway: a.gateway, site: 'site-a' });
  });

  it('refuses private, symmetric, RSA-1024 and mismatched-alg keys, storing nothing (case 25)', async () => {
    const f = await setup({ perIpPerMinute: 100 });
    const issued = await f.issue();
    const gw = await generateGatewayKey();
    const ed = await generateGatewayKey('EdDSA');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    const bad: [string, unknown][] = [
      ['private EC', { ...(await exportJWK(gw.privateKey)), alg: 'ES256' }],
      ['private Ed25519', await exportJWK(ed.privateKey)],
      ['symmetric', { kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQ', alg: 'HS256' }],
      ['RSA-1024', { ...rsa, alg: 'RS256' }],
      ['EC with EdDSA alg', { ...gw.publicJwk, alg: 'EdDSA' }],
      ['Ed25519 with ES256 alg', { ...ed.publicJwk, alg: 'ES256' }],
      ['P-384', { kty: 'EC', crv: 'P-384', x: 'AA', y: 'AA' }],
      ['point off the curve', { ...gw.publicJwk, y: gw.publicJwk.x }],
      ['encryption key', { ...gw.publicJwk, use: 'enc' }],
      ['not an object', 'ES256'],
    ];
    for (const [label, publicKey] of bad) {
      const proof = await activationProof(gw, issued.activationCode);
      const r = await f.call('POST', '/v1/activate', { body: { code: issued.activationCode, publicKey, proof } });
      expect([label, r.status, r.body.code]).toEqual([label, 400, 'bad_message']);
    }
    await expectPending(f, issued.gateway);
    expect((await f.registry.getActivation(issued.activationCode.replace(/-/g, '').slice(0, 8)))?.failures).toBe(0);
  });

  it('refuses a missing, foreign, mis-typed or wrong-code proof, storing nothing (case 25)', async () => {
    const f = await setup({ perIpPerMinute: 100 });
    const issued = await f.issue();
    const code = issued.activationCode;
    const gw = await generateGatewayKey();
    const other = await generateGatewayKey();
    const proofs: [string, unknown][] = [
      ['missing', undefined],
      ['empty', ''],
      ['signed by another key', await activationProof(other, code)],
      ['wrong typ', await activationProof(gw, code, { header: { typ: 'JWT' } })],
      ['over another code', await activationProof(gw, wrongSecret(code))],
      ['payload not JSON', await activationProof(gw, code, { payload: code })],
      [
        'alg none',
        `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ code })).toString('base64url')}.`,
      ],
      ['huge', 'a'.repeat(5000)],
    ];
    const before = f.hashes();
    for (const [label, proof] of proofs) {
      const body = { code, publicKey: gw.publicJwk, ...(proof === undefined ? {} : { proof }) };
      const r = await f.call('POST', '/v1/activate', { body });
      expect([label, r.status, r.body.code]).toEqual([label, 401, 'unauthenticated']);
    }
    expect(f.hashes()).toBe(before); // proofs are checked before the secret is hashed
    await expectPending(f, issued.gateway);
  });

  it('refuses unknown codes, malformed codes and unknown fields', async () => {
    const f = await setup({ perIpPerMinute: 100 });
    const unknown = await gatewayActivation('ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ');
    expect((await f.call('POST', '/v1/activate', { body: unknown.body })).status).toBe(401);
    const malformed = await gatewayActivation('not a code');
    expect((await f.call('POST', '/v1/activate', { body: malformed.body })).status).toBe(401);
    const extra = await f.call('POST', '/v1/activate', { body: { ...unknown.body, gateway: 'gw-x' } });
    expect(extra.status).toBe(400);
    expect(extra.body.message).toContain('gateway');
    const proto = await f.call('POST', '/v1/activate', {
      body: `{"code":"x","publicKey":{},"proof":"x","__proto__":{"polluted":true}}`,
    });
    expect(proto.status).toBe(400);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses to activate a gateway revoked before activation', async () => {
    const f = await setup();
    const issued = await f.issue();
    expect((await f.call('DELETE', `/v1/admin/gateways/${issued.gateway}`, { admin: true })).status).toBe(200);
    const r = await f.call('POST', '/v1/activate', { body: (await gatewayActivation(issued.activationCode)).body });
    expect(r.status).toBe(403);
    expect(r.body.code).toBe('revoked');
  });
});
