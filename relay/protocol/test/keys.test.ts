/**
 * The wire words two programs must agree on, tested once against their one definition: the manage-key policy
 * (used by relay/src/auth/jwks.ts and gateway-agent/src/commands/pinned-keys.ts) and the command-id pattern
 * (used by the relay's core and ports, the message schema and the gateway's verifier).
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  COMMAND_ID_PATTERN,
  isCommandId,
  MAX_COMMAND_ID_LENGTH,
  manageKeyAlgorithm,
  PRIVATE_JWK_MEMBERS,
  validateMessage,
} from '../src/index.js';

const publicJwk = (type: 'ec' | 'ed25519' | 'rsa', bits = 2048): Record<string, unknown> => {
  const pair =
    type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: bits })
        : generateKeyPairSync('ed25519');
  return pair.publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
};

describe('manageKeyAlgorithm: one policy for both verifiers of the manage JWKS', () => {
  const ec = publicJwk('ec');
  const ed = publicJwk('ed25519');
  const rsa = publicJwk('rsa');

  it('binds EC P-256 to ES256 and Ed25519 to EdDSA, with or without alg', () => {
    expect(manageKeyAlgorithm(ec)).toEqual({ ok: true, alg: 'ES256' });
    expect(manageKeyAlgorithm({ ...ec, alg: 'ES256', use: 'sig' })).toEqual({ ok: true, alg: 'ES256' });
    expect(manageKeyAlgorithm(ed)).toEqual({ ok: true, alg: 'EdDSA' });
    expect(manageKeyAlgorithm({ ...ed, alg: 'EdDSA' })).toEqual({ ok: true, alg: 'EdDSA' });
  });

  it('binds an RSA key only to the alg it names; without alg it is refused (RS256 and PS256 both fit)', () => {
    expect(manageKeyAlgorithm({ ...rsa, alg: 'RS256' })).toEqual({ ok: true, alg: 'RS256' });
    expect(manageKeyAlgorithm({ ...rsa, alg: 'PS256' })).toEqual({ ok: true, alg: 'PS256' });
    expect(manageKeyAlgorithm(rsa)).toEqual({ ok: false, reason: 'an RSA key must name its alg (RS256 or PS256)' });
  });

  it('refuses RSA moduli under 2048 bits', () => {
    const small = manageKeyAlgorithm({ ...publicJwk('rsa', 1024), alg: 'RS256' });
    expect(small).toEqual({ ok: false, reason: 'its RSA modulus has 1024 bits (at least 2048 required)' });
  });

  it('refuses private material, non-signing use, unlisted algs and mismatched types', () => {
    for (const member of PRIVATE_JWK_MEMBERS) {
      const verdict = manageKeyAlgorithm({ ...ec, [member]: 'AAAA' });
      expect(verdict).toEqual({ ok: false, reason: `it contains private or symmetric key material ("${member}")` });
    }
    expect(manageKeyAlgorithm({ ...ec, use: 'enc' })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('"enc"'),
    });
    expect(manageKeyAlgorithm({ ...ec, alg: 'HS256' })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('HS256'),
    });
    expect(manageKeyAlgorithm({ ...ec, alg: 'EdDSA' })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('does not fit'),
    });
    expect(manageKeyAlgorithm({ ...ed, alg: 'ES256' })).toMatchObject({ ok: false });
    expect(manageKeyAlgorithm({ ...rsa, alg: 'ES256' })).toMatchObject({ ok: false });
    expect(manageKeyAlgorithm({ kty: 'EC', crv: 'P-384', x: 'AA', y: 'AA' })).toMatchObject({ ok: false });
    expect(manageKeyAlgorithm({ kty: 'oct', k: 'AA' })).toMatchObject({ ok: false });
    expect(manageKeyAlgorithm({})).toMatchObject({ ok: false });
  });
});

describe('command id: one pattern and length', () => {
  it('accepts UUIDs, ULIDs and dotted ids up to the maximum length', () => {
    expect(MAX_COMMAND_ID_LENGTH).toBe(128);
    for (const id of [
      '0190f6d4-5b7e-7c8a-9d2e-3f4a5b6c7d8e',
      '01J1ZQ4X6W8K9M2N3P4Q5R6S7T',
      'a.b:c_d-e',
      'x'.repeat(128),
    ])
      expect(isCommandId(id), id).toBe(true);
  });

  it('refuses empty, too long, and characters that could make keys or globs', () => {
    for (const id of ['', 'x'.repeat(129), 'a b', 'a/b', 'a{b}', 'a*', 'a+b=', 'é', 42, undefined])
      expect(isCommandId(id), String(id)).toBe(false);
    expect(COMMAND_ID_PATTERN.test('a/b')).toBe(false);
  });

  it('the message schema checks `command` with the same pattern', () => {
    const status = (command: string) => ({ type: 'command.status', command, state: 'verified' });
    expect(() => validateMessage('gateway→relay', status('x'.repeat(128)))).not.toThrow();
    expect(() => validateMessage('gateway→relay', status('x'.repeat(129)))).toThrow();
    expect(() => validateMessage('gateway→relay', status('a/b'))).toThrow();
  });
});
