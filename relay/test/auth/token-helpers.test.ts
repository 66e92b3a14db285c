/**
 * The shared token helpers (relay/test/helpers/tokens.ts) produce what they promise: real signatures that
 * jose verifies against the written JWKS, and forgeries shaped as documented.
 */
import { readFile } from 'node:fs/promises';
import { compactVerify, createLocalJWKSet, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import {
  activationProof,
  decodeParts,
  forgeUnsigned,
  generateGatewayKey,
  generateManageKey,
  type JwksFile,
  mintAdmin,
  mintCommand,
  mintGatewayAssertion,
  mintSession,
  TEST_AUDIENCE,
  TEST_ISSUER,
  writeJwksFile,
} from '../helpers/tokens.js';

const files: JwksFile[] = [];
afterAll(async () => {
  await Promise.all(files.map((f) => f.cleanup()));
});

describe('token helpers', () => {
  it.each(['ES256', 'EdDSA', 'RS256', 'PS256'] as const)(
    'mints %s tokens that verify against the JWKS file',
    async (alg) => {
      const key = await generateManageKey({ alg });
      const file = await writeJwksFile([key]);
      files.push(file);
      const jwks = createLocalJWKSet(JSON.parse(await readFile(file.path, 'utf8')));
      for (const [mint, typ] of [
        [mintSession, 'scanrelay-session+jwt'],
        [mintCommand, 'scanrelay-command+jwt'],
        [mintAdmin, 'scanrelay-admin+jwt'],
      ] as const) {
        const token = await mint(key);
        const { payload, protectedHeader } = await jwtVerify(token, jwks, {
          issuer: TEST_ISSUER,
          typ,
          algorithms: [alg],
        });
        expect(protectedHeader.kid).toBe(key.kid);
        expect(typeof payload.jti).toBe('string');
        expect(payload.exp! - payload.iat!).toBeGreaterThan(0);
      }
    },
  );

  it('applies claim overrides, removals and omissions', async () => {
    const key = await generateManageKey();
    const token = await mintCommand(key, {
      claims: { aud: ['gw-1', 'gw-2'], site: undefined },
      omit: ['jti'],
      now: 1_000_000,
    });
    const { payload } = decodeParts(token);
    expect(payload.aud).toEqual(['gw-1', 'gw-2']);
    expect(payload).not.toHaveProperty('site');
    expect(payload).not.toHaveProperty('jti');
    expect(payload.iat).toBe(1000);
    expect(forgeUnsigned({ typ: 'x' }, payload).endsWith('.')).toBe(true);
  });

  it('makes gateway assertions and activation proofs verifiable with the gateway public key', async () => {
    for (const alg of ['ES256', 'EdDSA'] as const) {
      const gw = await generateGatewayKey(alg);
      const pub = await importJWK(gw.publicJwk, alg);
      const assertion = await mintGatewayAssertion(gw, { gateway: 'gw-7' });
      const { payload } = await jwtVerify(assertion, pub, { issuer: 'gw-7', subject: 'gw-7', audience: TEST_AUDIENCE });
      expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(60);
      const proof = await activationProof(gw, 'ABCD-EFGH-JKMN-PQRS-TVWX');
      expect(decodeProtectedHeader(proof).typ).toBe('scanrelay-activation+jwt');
      const verified = await compactVerify(proof, pub);
      expect(JSON.parse(new TextDecoder().decode(verified.payload))).toEqual({ code: 'ABCD-EFGH-JKMN-PQRS-TVWX' });
    }
  });
});
