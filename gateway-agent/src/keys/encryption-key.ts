/**
 * The gateway's encryption key: a P-256 ECDH key pair kept beside the signing key, used only to decrypt what
 * the manage app encrypts to this gateway (command `args`, later the site content keys of `keys.set`).
 *
 * - `gateway-enc-key.jwk` — the private key (JWK, P-256, `use: enc`), mode 0600; never leaves the site.
 *
 * Made at activation; a gateway activated before this key existed gets one on its next start. Its identity
 * for the manage app is the RFC 7638 SHA-256 thumbprint of the public JWK: `scanrelay-gateway status` and
 * `activate` print it, and a site administrator pins the key in the manage app only after comparing it.
 * The public key is published as a JWS signed by the gateway's signing key (typ GATEWAY_ENC_KEY_TYP), so a
 * relay that forwards it cannot alter it unnoticed (it still could substitute the whole thing — which is why
 * the thumbprint is confirmed out of band).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ARGS_JWE_ALG, GATEWAY_ENC_KEY_TYP } from '@scanrelay/protocol';
import {
  CompactSign,
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
} from 'jose';
import { GatewayError } from '../errors.js';
import { ensurePrivateDir, writeFileAtomic } from '../util/durable.js';
import type { LoadedIdentity } from './identity.js';

export const ENC_KEY_FILE = 'gateway-enc-key.jwk';

export interface EncryptionKey {
  privateKey: CryptoKey;
  /** Public JWK (kty, crv, x, y, use, alg, kid = thumbprint). */
  publicJwk: JWK;
  /** RFC 7638 SHA-256 thumbprint of the public key (base64url); also the JWE `kid` the gateway expects. */
  thumbprint: string;
}

/** Load the encryption key from the state dir, making (and durably storing) one if there is none. */
export async function loadOrCreateEncryptionKey(stateDir: string): Promise<EncryptionKey & { created: boolean }> {
  const path = join(stateDir, ENC_KEY_FILE);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new GatewayError('not_activated', `${path} is unreadable: ${(err as Error).message}`);
  }
  if (text === undefined) {
    const { privateKey } = await generateKeyPair(ARGS_JWE_ALG, { crv: 'P-256', extractable: true });
    const jwk = await exportJWK(privateKey);
    await ensurePrivateDir(stateDir);
    await writeFileAtomic(path, JSON.stringify({ ...jwk, use: 'enc', alg: ARGS_JWE_ALG }), 0o600);
    return { ...(await fromPrivateJwk(jwk, path)), created: true };
  }
  let jwk: JWK;
  try {
    jwk = JSON.parse(text) as JWK;
  } catch {
    throw new GatewayError(
      'not_activated',
      `${path} is corrupt; move it aside and restart to make a new encryption key (then re-confirm its thumbprint in the manage app)`,
    );
  }
  return { ...(await fromPrivateJwk(jwk, path)), created: false };
}

async function fromPrivateJwk(jwk: JWK, path: string): Promise<EncryptionKey> {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.d !== 'string' || !jwk.x || !jwk.y)
    throw new GatewayError('not_activated', `${path} is not a P-256 private key`);
  let privateKey: CryptoKey;
  try {
    privateKey = (await importJWK(
      { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, d: jwk.d },
      ARGS_JWE_ALG,
    )) as CryptoKey;
  } catch (err) {
    throw new GatewayError('not_activated', `${path} is not a usable private key`, { cause: err });
  }
  const base = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
  const thumbprint = await calculateJwkThumbprint(base, 'sha256');
  return { privateKey, thumbprint, publicJwk: { ...base, use: 'enc', alg: ARGS_JWE_ALG, kid: thumbprint } };
}

/**
 * The encryption public key, signed by the gateway's signing key: a compact JWS, header
 * `{ alg, typ: GATEWAY_ENC_KEY_TYP }`, payload `{ iss: gateway, site, key: <public JWK>, iat }`.
 */
export async function signEncryptionKey(
  identity: LoadedIdentity,
  key: EncryptionKey,
  now: number = Date.now(),
): Promise<string> {
  const payload = { iss: identity.gateway, site: identity.site, key: key.publicJwk, iat: Math.floor(now / 1000) };
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: identity.alg, typ: GATEWAY_ENC_KEY_TYP })
    .sign(identity.privateKey);
}

/** The thumbprint as an installer reads it aloud: groups of four characters. */
export function formatThumbprint(thumbprint: string): string {
  return thumbprint.match(/.{1,4}/g)?.join(' ') ?? thumbprint;
}
