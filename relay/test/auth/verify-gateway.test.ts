/**
 * Gateway assertions (SECURITY.md case 26 and the assertion rules of DESIGN.md): iss = sub = a registered,
 * active gateway; signed by the key it registered; aud the relay; exp − iat ≤ 60 s; jti single use.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  decodeParts,
  forgeUnsigned,
  type GatewayKey,
  generateGatewayKey,
  mintGatewayAssertion,
  oversizedToken,
  signRaw,
  TEST_AUDIENCE,
  tamperPayload,
} from '../helpers/tokens.js';
import { type AuthFixture, authFailure, authFixture, registerGateway } from './fixture.js';

let fx: AuthFixture;
let gw: { id: string; site: string; key: GatewayKey };
beforeEach(async () => {
  fx = await authFixture();
  gw = await registerGateway(fx, { site: 'site-a' });
});
afterEach(async () => {
  await fx.close();
});

const assertion = (opts: Omit<Parameters<typeof mintGatewayAssertion>[1], 'gateway'> & { gateway?: string } = {}) =>
  mintGatewayAssertion(gw.key, { gateway: gw.id, now: fx.clock.now(), ...opts });

describe('gateway assertions', () => {
  it('accepts a fresh assertion signed by the registered key, P-256 and Ed25519', async () => {
    const v = await fx.auth.verifyGatewayAssertion(await assertion());
    expect(v.gateway.id).toBe(gw.id);
    expect(v.gateway.site).toBe('site-a');
    const ed = await registerGateway(fx, { site: 'site-b', alg: 'EdDSA' });
    const token = await mintGatewayAssertion(ed.key, { gateway: ed.id, now: fx.clock.now() });
    expect((await fx.auth.verifyGatewayAssertion(token)).gateway.site).toBe('site-b');
  });

  it('accepts each jti once', async () => {
    const token = await assertion();
    await fx.auth.verifyGatewayAssertion(token);
    const e = await authFailure(fx.auth.verifyGatewayAssertion(token));
    expect(e.code).toBe('unauthenticated');
    expect(e.reason).toBe('replayed');
  });

  it('refuses iss ≠ sub, in either direction of impersonation (case 26)', async () => {
    const other = await registerGateway(fx, { site: 'site-b' });
    const subOther = await assertion({ claims: { sub: other.id } });
    expect((await authFailure(fx.auth.verifyGatewayAssertion(subOther))).reason).toBe('wrong_sub');
    // Claiming to be the other gateway, signed with our key: its registered key does not verify it.
    const issOther = await assertion({ claims: { iss: other.id, sub: other.id } });
    expect((await authFailure(fx.auth.verifyGatewayAssertion(issOther))).reason).toBe('bad_signature');
  });

  it('refuses an unknown gateway and a pending one (case 26)', async () => {
    const unknown = await assertion({ gateway: 'gw-unknown' });
    const e = await authFailure(fx.auth.verifyGatewayAssertion(unknown));
    expect(e.code).toBe('unauthenticated');
    expect(e.reason).toBe('unknown_gateway');
    const pending = await registerGateway(fx, { status: 'pending' });
    const p = await mintGatewayAssertion(pending.key, { gateway: pending.id, now: fx.clock.now() });
    expect((await authFailure(fx.auth.verifyGatewayAssertion(p))).reason).toBe('gateway_pending');
    expect((await authFailure(fx.auth.verifyGatewayAssertion(await assertion({ gateway: 'Bad Id' })))).reason).toBe(
      'wrong_iss',
    );
  });

  it('refuses a revoked gateway with code revoked, and reports it inactive (cases 26, 27)', async () => {
    await expect(fx.auth.isGatewayActive(gw.id)).resolves.toBe(true);
    await fx.registry.revoke(gw.id, fx.clock.now());
    const e = await authFailure(fx.auth.verifyGatewayAssertion(await assertion()));
    expect(e.code).toBe('revoked');
    await expect(fx.auth.isGatewayActive(gw.id)).resolves.toBe(false);
    await expect(fx.auth.isGatewayActive('../etc')).resolves.toBe(false);
  });

  it('refuses another key, tampering, alg none and oversize', async () => {
    const rogue = await generateGatewayKey();
    const forged = await mintGatewayAssertion(rogue, { gateway: gw.id, now: fx.clock.now() });
    expect((await authFailure(fx.auth.verifyGatewayAssertion(forged))).reason).toBe('bad_signature');
    const edited = tamperPayload(await assertion(), { exp: Math.floor(fx.clock.now() / 1000) + 50 });
    expect((await authFailure(fx.auth.verifyGatewayAssertion(edited))).reason).toBe('bad_signature');
    const { header, payload } = decodeParts(await assertion());
    expect((await authFailure(fx.auth.verifyGatewayAssertion(forgeUnsigned(header, payload)))).reason).toBe(
      'alg_not_allowed',
    );
    expect((await authFailure(fx.auth.verifyGatewayAssertion(oversizedToken()))).reason).toBe('too_large');
  });

  it('refuses a lifetime over 60 s, expiry, a wrong or array audience, a wrong typ, missing jti', async () => {
    expect((await authFailure(fx.auth.verifyGatewayAssertion(await assertion({ ttlSeconds: 61 })))).reason).toBe(
      'lifetime_too_long',
    );
    const short = await assertion({ ttlSeconds: 10 });
    fx.clock.advance(60_000);
    expect((await authFailure(fx.auth.verifyGatewayAssertion(short))).code).toBe('token_expired');
    const aud = await assertion({ claims: { aud: 'other-relay' } });
    expect((await authFailure(fx.auth.verifyGatewayAssertion(aud))).reason).toBe('wrong_aud');
    const arr = await assertion({ claims: { aud: [TEST_AUDIENCE] } });
    expect((await authFailure(fx.auth.verifyGatewayAssertion(arr))).reason).toBe('wrong_aud');
    const typ = await assertion({ header: { typ: 'scanrelay-session+jwt' } });
    expect((await authFailure(fx.auth.verifyGatewayAssertion(typ))).reason).toBe('wrong_typ');
    const jti = await assertion({ omit: ['jti'] });
    expect((await authFailure(fx.auth.verifyGatewayAssertion(jti))).reason).toBe('missing_claim');
  });

  it('refuses an assertion signed with a manage-app style algorithm header the gateway key is not bound to', async () => {
    // An Ed25519 gateway cannot be spoken for with an ES256 header, even by a P-256 key with that kid.
    const ed = await registerGateway(fx, { site: 'site-b', alg: 'EdDSA' });
    const p256 = await generateGatewayKey('ES256');
    const payload = decodeParts(await mintGatewayAssertion(ed.key, { gateway: ed.id, now: fx.clock.now() })).payload;
    const token = await signRaw(p256, payload, { typ: 'scanrelay-gateway+jwt' });
    expect((await authFailure(fx.auth.verifyGatewayAssertion(token))).reason).toBe('alg_mismatch');
  });
});
