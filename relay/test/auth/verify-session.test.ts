/**
 * Session and admin tokens against the manage app's pinned keys (SECURITY.md cases 2–6, 11–14, 16), and the
 * generic token rules every kind shares: alg none, HS256 keyed with the public key, unlisted algorithms, missing
 * claims, expiry and future iat/nbf, aud arrays, typ per kind, size cap before parsing, tampering.
 */

import { MAX_TOKEN_LENGTH } from '@scanrelay/protocol';
import { type CryptoKey, exportJWK, generateKeyPair, importJWK } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  decodeParts,
  forgeHmac,
  forgeUnsigned,
  generateManageKey,
  mintAdmin,
  mintCommand,
  mintSession,
  oversizedToken,
  publicKeyPem,
  signRaw,
  TEST_AUDIENCE,
  TEST_ISSUER,
  tamperPayload,
} from '../helpers/tokens.js';
import { type AuthFixture, authFailure, authFixture } from './fixture.js';

let fx: AuthFixture;
beforeEach(async () => {
  fx = await authFixture();
});
afterEach(async () => {
  await fx.close();
});

const now = () => fx.clock.now();

describe('session tokens', () => {
  it('accepts a valid token and returns its claims and expiry (case 14)', async () => {
    const token = await mintSession(fx.manage, { now: now(), claims: { sites: ['site-a', 'site-b'], sid: 's-1' } });
    const v = await fx.auth.verifySession(token);
    expect(v.claims.sites).toEqual(['site-a', 'site-b']);
    expect(v.claims.sid).toBe('s-1');
    expect(v.claims.aud).toBe(TEST_AUDIENCE);
    expect(v.expiresAt).toBe((decodeParts(token).payload.exp as number) * 1000);
  });

  it.each(['EdDSA', 'RS256', 'PS256'] as const)('accepts %s keys from the JWKS', async (alg) => {
    const other = await authFixture({ alg });
    try {
      const v = await other.auth.verifySession(await mintSession(other.manage, { now: other.clock.now() }));
      expect(v.claims.sub).toBe('user-1');
    } finally {
      await other.close();
    }
  });

  it('refuses alg none with an empty signature (case 2)', async () => {
    const { header, payload } = decodeParts(await mintSession(fx.manage, { now: now() }));
    const e = await authFailure(fx.auth.verifySession(forgeUnsigned(header, payload)));
    expect(e.code).toBe('unauthenticated');
    expect(e.reason).toBe('alg_not_allowed');
  });

  it('refuses HS256 keyed with the manage public key PEM or JWK x (case 3)', async () => {
    const { header, payload } = decodeParts(await mintSession(fx.manage, { now: now() }));
    for (const secret of [await publicKeyPem(fx.manage), String(fx.manage.publicJwk.x)]) {
      const e = await authFailure(fx.auth.verifySession(forgeHmac(secret, header, payload)));
      expect(e.code).toBe('unauthenticated');
      expect(e.reason).toBe('alg_not_allowed');
    }
  });

  it('refuses an algorithm outside the allowlist even with a valid signature by a published key (case 4)', async () => {
    const pair = await generateKeyPair('ES384', { extractable: true });
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'p384', alg: 'ES384', use: 'sig' };
    await fx.jwks.rewrite({ keys: [fx.manage.publicJwk, jwk] });
    await fx.auth.refreshKeys();
    const payload = decodeParts(await mintSession(fx.manage, { now: now() })).payload;
    const token = await signRaw({ alg: 'ES384', kid: 'p384', privateKey: pair.privateKey }, payload, {
      typ: 'scanrelay-session+jwt',
    });
    const e = await authFailure(fx.auth.verifySession(token));
    expect(e.reason).toBe('alg_not_allowed');
  });

  it('refuses an RSA token whose header alg differs from the one its key is bound to', async () => {
    const rs = await generateManageKey({ alg: 'RS256', kid: 'rsa' });
    await fx.jwks.rewrite([fx.manage, rs]);
    await fx.auth.refreshKeys();
    const ok = await mintSession(rs, { now: now() });
    await expect(fx.auth.verifySession(ok)).resolves.toBeDefined();
    // Same RSA key material, re-imported for PS256: a valid PS256 signature by the published key.
    const asPss = (await importJWK(await exportJWK(rs.privateKey), 'PS256')) as CryptoKey;
    const token = await signRaw({ alg: 'PS256', kid: 'rsa', privateKey: asPss }, decodeParts(ok).payload, {
      typ: 'scanrelay-session+jwt',
    });
    const e = await authFailure(fx.auth.verifySession(token));
    expect(e.reason).toBe('alg_mismatch');
  });

  it.each(['exp', 'iat', 'jti', 'sub', 'sid', 'sites', 'aud', 'iss'])(
    'refuses a token missing %s (case 5)',
    async (claim) => {
      const e = await authFailure(fx.auth.verifySession(await mintSession(fx.manage, { now: now(), omit: [claim] })));
      expect(e.code).toBe('unauthenticated');
      expect(e.reason).toBe('missing_claim');
      expect(e.message).toContain(claim);
    },
  );

  it('refuses an expired token beyond the clock tolerance, accepts one within it (case 6)', async () => {
    const token = await mintSession(fx.manage, { now: now(), ttlSeconds: 60 });
    fx.clock.advance(60_000 + 20_000);
    await expect(fx.auth.verifySession(token)).resolves.toBeDefined();
    fx.clock.advance(20_000);
    const e = await authFailure(fx.auth.verifySession(token));
    expect(e.code).toBe('token_expired');
    expect(e.reason).toBe('expired');
  });

  it('refuses nbf or iat two minutes in the future (case 6)', async () => {
    const ahead = Math.floor(now() / 1000) + 120;
    const nbf = await mintSession(fx.manage, { now: now(), claims: { nbf: ahead } });
    expect((await authFailure(fx.auth.verifySession(nbf))).reason).toBe('not_yet_valid');
    const iat = await mintSession(fx.manage, { now: now() + 120_000 });
    expect((await authFailure(fx.auth.verifySession(iat))).reason).toBe('not_yet_valid');
  });

  it('refuses a token older than the maximum age or minted to live too long', async () => {
    const long = await mintSession(fx.manage, { now: now(), ttlSeconds: 2 * 24 * 3600 });
    expect((await authFailure(fx.auth.verifySession(long))).reason).toBe('lifetime_too_long');
  });

  it('refuses another audience, and an array that contains this relay (cases 7, 16)', async () => {
    const other = await mintSession(fx.manage, { now: now(), claims: { aud: 'other-relay' } });
    expect((await authFailure(fx.auth.verifySession(other))).reason).toBe('wrong_aud');
    const array = await mintSession(fx.manage, { now: now(), claims: { aud: [TEST_AUDIENCE, 'other'] } });
    const e = await authFailure(fx.auth.verifySession(array));
    expect(e.code).toBe('unauthenticated');
    expect(e.reason).toBe('wrong_aud');
  });

  it('refuses a wrong issuer or typ (case 16)', async () => {
    const iss = await mintSession(fx.manage, { now: now(), claims: { iss: 'https://evil.test' } });
    expect((await authFailure(fx.auth.verifySession(iss))).reason).toBe('wrong_iss');
    for (const typ of ['JWT', 'scanrelay-admin+jwt', undefined]) {
      const t = await mintSession(fx.manage, { now: now(), header: { typ } });
      expect((await authFailure(fx.auth.verifySession(t))).reason).toBe('wrong_typ');
    }
  });

  it('refuses a command token offered as a session and an admin token offered as a session (case 9)', async () => {
    const cmd = await mintCommand(fx.manage, { now: now(), claims: { aud: TEST_AUDIENCE } });
    expect((await authFailure(fx.auth.verifySession(cmd))).reason).toBe('wrong_typ');
    const admin = await mintAdmin(fx.manage, { now: now() });
    expect((await authFailure(fx.auth.verifySession(admin))).reason).toBe('wrong_typ');
  });

  it('refuses bad sites and sid claims', async () => {
    for (const claims of [{ sites: 'site-a' }, { sites: ['Site A'] }, { sid: 'has space' }, { jti: '' }]) {
      const t = await mintSession(fx.manage, { now: now(), claims });
      expect((await authFailure(fx.auth.verifySession(t))).reason).toMatch(/bad_claim|missing_claim/);
    }
  });

  it('refuses an edited payload or a signature by an unpinned key as a signature failure (case 13)', async () => {
    const token = await mintSession(fx.manage, { now: now() });
    const edited = tamperPayload(token, { sites: ['site-a', 'site-z'] });
    expect((await authFailure(fx.auth.verifySession(edited))).reason).toBe('bad_signature');
    const rogue = await generateManageKey({ kid: fx.manage.kid });
    expect((await authFailure(fx.auth.verifySession(await mintSession(rogue, { now: now() })))).reason).toBe(
      'bad_signature',
    );
  });

  it('refuses an unknown or missing kid', async () => {
    const stranger = await generateManageKey({ kid: 'not-published' });
    expect((await authFailure(fx.auth.verifySession(await mintSession(stranger, { now: now() })))).reason).toBe(
      'unknown_kid',
    );
    const noKid = await mintSession(fx.manage, { now: now(), header: { kid: undefined } });
    expect((await authFailure(fx.auth.verifySession(noKid))).reason).toBe('missing_kid');
  });

  it('refuses a 1 MiB token before parsing, and anything past MAX_TOKEN_LENGTH (case 12)', async () => {
    const e = await authFailure(fx.auth.verifySession(oversizedToken()));
    expect(e.code).toBe('unauthenticated');
    expect(e.reason).toBe('too_large');
    // One character past the cap is refused on length alone, even though it is not even a JWT.
    expect((await authFailure(fx.auth.verifySession('x'.repeat(MAX_TOKEN_LENGTH + 1)))).reason).toBe('too_large');
    expect((await authFailure(fx.auth.verifySession('x'.repeat(MAX_TOKEN_LENGTH)))).reason).toBe('malformed');
  });

  it('refuses a revoked session id', async () => {
    const token = await mintSession(fx.manage, { now: now(), claims: { sid: 'sid-revoked' } });
    await expect(fx.auth.isSessionActive('sid-revoked')).resolves.toBe(true);
    await fx.registry.revokeSession('sid-revoked', now() + 3_600_000);
    const e = await authFailure(fx.auth.verifySession(token));
    expect(e.code).toBe('revoked');
    await expect(fx.auth.isSessionActive('sid-revoked')).resolves.toBe(false);
  });

  it('never writes a token into its log lines', async () => {
    const token = await mintSession(fx.manage, { now: now(), claims: { iss: 'https://evil.test' } });
    const e = await authFailure(fx.auth.verifySession(token));
    expect(e.message).not.toContain(token.split('.')[1]!);
    expect(fx.log.lines.join('\n')).not.toContain(token.split('.')[2]!);
  });
});

describe('admin tokens', () => {
  it('accepts scope admin and refuses other scopes, typs and audiences', async () => {
    const ok = await fx.auth.verifyAdmin(await mintAdmin(fx.manage, { now: now() }));
    expect(ok.scope).toBe('admin');
    const scope = await authFailure(
      fx.auth.verifyAdmin(await mintAdmin(fx.manage, { now: now(), claims: { scope: 'read' } })),
    );
    expect(scope.code).toBe('forbidden');
    const session = await authFailure(fx.auth.verifyAdmin(await mintSession(fx.manage, { now: now() })));
    expect(session.reason).toBe('wrong_typ');
    const aud = await authFailure(
      fx.auth.verifyAdmin(await mintAdmin(fx.manage, { now: now(), claims: { aud: [TEST_AUDIENCE] } })),
    );
    expect(aud.reason).toBe('wrong_aud');
    const iss = await authFailure(
      fx.auth.verifyAdmin(await mintAdmin(fx.manage, { now: now(), claims: { iss: `${TEST_ISSUER}/x` } })),
    );
    expect(iss.reason).toBe('wrong_iss');
  });
});
