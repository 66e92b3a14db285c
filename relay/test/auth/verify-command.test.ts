/**
 * The relay's pre-check of command tokens (SECURITY.md cases 1–13 as they apply before routing): signature by
 * the manage app, typ, lifetime ≤ 300 s, a single-string aud naming an active gateway of the `site` claim,
 * a v1 command name.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  decodeParts,
  forgeHmac,
  forgeUnsigned,
  generateManageKey,
  mintCommand,
  mintSession,
  oversizedToken,
  publicKeyPem,
  TEST_AUDIENCE,
  tamperPayload,
} from '../helpers/tokens.js';
import { type AuthFixture, authFailure, authFixture, registerGateway } from './fixture.js';

let fx: AuthFixture;
let gwA: { id: string; site: string };
let gwB: { id: string; site: string };
beforeEach(async () => {
  fx = await authFixture();
  gwA = await registerGateway(fx, { site: 'site-a' });
  gwB = await registerGateway(fx, { site: 'site-b' });
});
afterEach(async () => {
  await fx.close();
});

const mint = (claims: Record<string, unknown> = {}, extra: Parameters<typeof mintCommand>[1] = {}) =>
  mintCommand(fx.manage, { now: fx.clock.now(), ...extra, claims: { aud: gwA.id, site: 'site-a', ...claims } });

describe('command pre-check', () => {
  it('accepts a valid command and names its gateway (case 1)', async () => {
    const token = await mint({ cmd: 'worklist.cancel', args: { accession: 'ACC1' } });
    const v = await fx.auth.verifyCommand(token);
    expect(v.gateway.id).toBe(gwA.id);
    expect(v.claims.cmd).toBe('worklist.cancel');
    expect(v.claims.jti).toBe(decodeParts(token).payload.jti);
    expect(v.expiresAt).toBe((decodeParts(token).payload.exp as number) * 1000);
  });

  it('issue 17: accepts args encrypted to the gateway ({ jwe }) and passes them on unread', async () => {
    // A well-formed compact JWE the relay has no key for: it must check the envelope, never the args.
    const jwe = ['eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9', 'a2V5', 'aXY', 'Y2lwaGVy', 'dGFn'].join('.');
    const token = await mint({ cmd: 'worklist.add', args: { jwe } });
    const v = await fx.auth.verifyCommand(token);
    expect(v.gateway.id).toBe(gwA.id);
    expect(v.claims.args).toEqual({ jwe });
  });

  it('issue 17: with SCANRELAY_REQUIRE_ENCRYPTED_PAYLOADS, clear args are refused (args_not_encrypted)', async () => {
    const strict = await authFixture({ requireEncryptedArgs: true });
    try {
      const gw = await registerGateway(strict, { site: 'site-a' });
      const m = (args: unknown) =>
        mintCommand(strict.manage, {
          now: strict.clock.now(),
          claims: { aud: gw.id, site: 'site-a', cmd: 'worklist.cancel', args },
        });
      const e = await authFailure(strict.auth.verifyCommand(await m({ accession: 'ACC1' })));
      expect([e.code, e.reason]).toEqual(['forbidden', 'args_not_encrypted']);
      const jwe = ['eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9', 'a2V5', 'aXY', 'Y2lwaGVy', 'dGFn'].join('.');
      expect((await strict.auth.verifyCommand(await m({ jwe }))).gateway.id).toBe(gw.id);
    } finally {
      await strict.close();
    }
  });

  it('refuses alg none, HS256 with the public key, tampering and oversize (cases 2, 3, 12, 13)', async () => {
    const { header, payload } = decodeParts(await mint());
    expect((await authFailure(fx.auth.verifyCommand(forgeUnsigned(header, payload)))).reason).toBe('alg_not_allowed');
    const hs = forgeHmac(await publicKeyPem(fx.manage), header, payload);
    expect((await authFailure(fx.auth.verifyCommand(hs))).reason).toBe('alg_not_allowed');
    const edited = tamperPayload(await mint(), { cmd: 'pacs.retrieve' });
    expect((await authFailure(fx.auth.verifyCommand(edited))).reason).toBe('bad_signature');
    expect((await authFailure(fx.auth.verifyCommand(oversizedToken()))).reason).toBe('too_large');
  });

  it.each(['exp', 'iat', 'jti', 'site', 'cmd', 'args', 'sub'])('refuses a command missing %s (case 5)', async (c) => {
    const e = await authFailure(fx.auth.verifyCommand(await mint({}, { omit: [c] })));
    expect(e.reason).toBe('missing_claim');
  });

  it('refuses expiry, future iat and a lifetime over 300 s (case 6)', async () => {
    const token = await mint({}, { ttlSeconds: 60 });
    fx.clock.advance(120_000);
    expect((await authFailure(fx.auth.verifyCommand(token))).code).toBe('token_expired');
    const future = await mint({}, { now: fx.clock.now() + 120_000 });
    expect((await authFailure(fx.auth.verifyCommand(future))).reason).toBe('not_yet_valid');
    const long = await mint({}, { ttlSeconds: 301 });
    expect((await authFailure(fx.auth.verifyCommand(long))).reason).toBe('lifetime_too_long');
  });

  it('refuses an aud array containing the gateway, and an aud that is no gateway id (case 7)', async () => {
    const array = await authFailure(fx.auth.verifyCommand(await mint({ aud: [gwA.id] })));
    expect(array.code).toBe('unauthenticated');
    expect(array.reason).toBe('wrong_aud');
    const relay = await authFailure(fx.auth.verifyCommand(await mint({ aud: 'Not An Id' })));
    expect(relay.reason).toBe('wrong_aud');
  });

  it('refuses an aud naming an unknown gateway as unknown_site', async () => {
    const e = await authFailure(fx.auth.verifyCommand(await mint({ aud: 'gw-nobody' })));
    expect(e.code).toBe('unknown_site');
  });

  it('refuses a session token offered as a command (case 9)', async () => {
    const session = await mintSession(fx.manage, { now: fx.clock.now(), claims: { aud: gwA.id, site: 'site-a' } });
    expect((await authFailure(fx.auth.verifyCommand(session))).reason).toBe('wrong_typ');
  });

  it("refuses the right aud with another site's claim, both ways (case 10)", async () => {
    const toA = await authFailure(fx.auth.verifyCommand(await mint({ site: 'site-b' })));
    expect(toA.code).toBe('forbidden');
    expect(toA.reason).toBe('site_mismatch');
    const toB = await authFailure(fx.auth.verifyCommand(await mint({ aud: gwB.id, site: 'site-a' })));
    expect(toB.code).toBe('forbidden');
  });

  it('refuses a command for a revoked or never-activated gateway', async () => {
    await fx.registry.revoke(gwA.id, fx.clock.now());
    const revoked = await authFailure(fx.auth.verifyCommand(await mint()));
    expect(revoked.code).toBe('forbidden');
    expect(revoked.reason).toBe('gateway_inactive');
    const pending = await registerGateway(fx, { site: 'site-a', status: 'pending' });
    const e = await authFailure(fx.auth.verifyCommand(await mint({ aud: pending.id })));
    expect(e.code).toBe('forbidden');
  });

  it('refuses a cmd that is not a v1 command and args that are not an object', async () => {
    expect((await authFailure(fx.auth.verifyCommand(await mint({ cmd: 'shell.exec' })))).code).toBe('forbidden');
    expect((await authFailure(fx.auth.verifyCommand(await mint({ args: ['x'] })))).reason).toBe('bad_claim');
  });

  it('does not check the relay audience for commands but does check the issuer', async () => {
    const e = await authFailure(fx.auth.verifyCommand(await mint({ iss: 'https://other.test', aud: TEST_AUDIENCE })));
    expect(e.reason).toBe('wrong_iss');
  });
});

describe('key rotation (case 11)', () => {
  it('accepts a new kid as soon as it is published and refuses a removed kid after reload', async () => {
    const next = await generateManageKey({ kid: 'manage-next' });
    const old = fx.manage;
    await fx.jwks.rewrite([old, next]);
    // The unknown kid triggers a reload, rate-limited per second of (manual) clock time.
    fx.clock.advance(1_000);
    await expect(
      fx.auth.verifyCommand(await mintCommand(next, { now: fx.clock.now(), claims: { aud: gwA.id } })),
    ).resolves.toBeDefined();
    // Overlap: both work.
    await expect(fx.auth.verifyCommand(await mint())).resolves.toBeDefined();
    await fx.jwks.rewrite([next]);
    await fx.auth.refreshKeys();
    expect((await authFailure(fx.auth.verifyCommand(await mint()))).reason).toBe('unknown_kid');
    await expect(
      fx.auth.verifyCommand(await mintCommand(next, { now: fx.clock.now(), claims: { aud: gwA.id } })),
    ).resolves.toBeDefined();
  });

  it('drops a removed kid on its own when the periodic file check sees the change', async () => {
    const next = await generateManageKey({ kid: 'manage-periodic' });
    await fx.jwks.rewrite([next]);
    await expect(fx.auth.verifyCommand(await mint())).resolves.toBeDefined(); // not yet re-read
    fx.clock.advance(5_000); // the periodic check fires and re-reads the file
    await vi.waitFor(async () => {
      expect((await authFailure(fx.auth.verifyCommand(await mint()))).reason).toBe('unknown_kid');
    });
  });
});
