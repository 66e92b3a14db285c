/**
 * Property-based: whatever arrives as a token — random text, random JOSE-shaped structures, real tokens with
 * random header or claim changes — every verifier refuses it with a typed AuthError carrying a protocol code and
 * a reason, never an unmapped (`internal`) failure, and never accepts a token the manage app did not sign.
 */

import { isErrorCode } from '@scanrelay/protocol';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeParts, mintSession, signRaw } from '../helpers/tokens.js';
import { type AuthFixture, authFixture, registerGateway } from './fixture.js';

let fx: AuthFixture;
beforeAll(async () => {
  fx = await authFixture();
  await registerGateway(fx, { id: 'gw-1', site: 'site-a' });
});
afterAll(async () => {
  await fx.close();
});

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

async function refusedCleanly(token: string): Promise<void> {
  for (const verify of [
    fx.auth.verifySession,
    fx.auth.verifyCommand,
    fx.auth.verifyAdmin,
    fx.auth.verifyGatewayAssertion,
  ] as ((t: string) => Promise<unknown>)[]) {
    const err = await verify(token).then(
      () => undefined,
      (e: unknown) => e as { name?: string; code?: unknown; reason?: unknown },
    );
    expect(err, 'a forged token was accepted').toBeDefined();
    expect(err!.name).toBe('AuthError');
    expect(isErrorCode(err!.code)).toBe(true);
    expect(err!.code).not.toBe('internal');
    expect(typeof err!.reason).toBe('string');
  }
}

const json = fc.jsonValue({ maxDepth: 3 });
const header = () =>
  fc.record(
    {
      alg: fc.constantFrom('ES256', 'EdDSA', 'RS256', 'none', 'HS256', 'ES384', ''),
      typ: fc.constantFrom('scanrelay-session+jwt', 'scanrelay-command+jwt', 'JWT', 'scanrelay-gateway+jwt'),
      kid: fc.oneof(fc.string(), fc.constant(fx.manage.kid)),
      crit: fc.array(fc.string(), { maxLength: 2 }),
      b64: fc.boolean(),
      jku: fc.webUrl(),
    },
    { requiredKeys: ['alg'] },
  );

describe('token fuzz', () => {
  it('refuses arbitrary strings', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ maxLength: 200 }), refusedCleanly), { numRuns: 150 });
  });

  it('refuses JOSE-shaped tokens with random headers, payloads and signatures', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(header(), json), json, fc.base64String({ maxLength: 100 }), async (h, p, sig) => {
        await refusedCleanly(`${b64(h)}.${b64(p)}.${sig.replace(/=/g, '')}`);
      }),
      { numRuns: 150 },
    );
  });

  it('refuses real signatures over randomly altered claims', async () => {
    const base = decodeParts(await mintSession(fx.manage, { now: fx.clock.now() })).payload;
    const claim = fc.constantFrom('iss', 'aud', 'sub', 'sid', 'sites', 'iat', 'exp', 'jti', 'nbf');
    await fc.assert(
      fc.asyncProperty(claim, json, async (name, value) => {
        fc.pre(JSON.stringify(base[name]) !== JSON.stringify(value));
        const payload = { ...base, [name]: value };
        const token = await signRaw(fx.manage, payload, { typ: 'scanrelay-session+jwt' });
        const result = await fx.auth.verifySession(token).then(
          () => 'accepted',
          (e: { name?: string; code?: string }) => `${e.name}:${e.code}`,
        );
        // Some changes are harmless (e.g. a different jti or sub); anything refused is refused cleanly.
        if (result !== 'accepted') {
          expect(result).toMatch(/^AuthError:/);
          expect(result).not.toBe('AuthError:internal');
        }
      }),
      { numRuns: 150 },
    );
  });
});
