/**
 * The manage app's key policy: which public keys in its JWKS may verify manage-app tokens (session and command
 * tokens), and bound to which single algorithm. The relay (relay/src/auth/jwks.ts) and the gateway
 * (gateway-agent/src/commands/pinned-keys.ts) verify tokens against the same key set, so both apply this one
 * function; how each reacts to a refused key differs (the relay skips it with a warning, the gateway refuses
 * the whole pinned file) and is theirs to decide. Pure: no Node imports, no key import.
 */
import { MANAGE_ALGORITHMS } from './tokens.js';

/** An algorithm a manage-app key may be bound to. */
export type ManageAlgorithm = (typeof MANAGE_ALGORITHMS)[number];

/** JWK members that carry private or symmetric key material: a key holding any of them is refused. */
export const PRIVATE_JWK_MEMBERS: readonly string[] = Object.freeze(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);

/** Smallest RSA modulus accepted, bits. */
export const MIN_RSA_MODULUS_BITS = 2048;

/** The verdict on one JWK: the single algorithm it verifies with, or why it may not be used. */
export type ManageKeyVerdict = { ok: true; alg: ManageAlgorithm } | { ok: false; reason: string };

/** Bytes of an unpadded base64url string (padding, if present, is not counted). */
function base64urlBytes(text: string): number {
  return Math.floor((text.replace(/=+$/, '').length * 6) / 8);
}

/**
 * Decide whether `jwk` may verify manage-app tokens, and with which one algorithm.
 *
 * - refused: private or symmetric material; `use` other than `sig`; `alg` outside MANAGE_ALGORITHMS;
 *   a key type / curve the alg does not fit; an RSA modulus under 2048 bits;
 * - an EC P-256 key without `alg` is ES256, an Ed25519 key without `alg` is EdDSA (one algorithm each);
 * - an RSA key without `alg` is REFUSED: RS256 and PS256 both fit it, and guessing one would let a key
 *   published for one scheme verify the other. The manage app must name it.
 */
export function manageKeyAlgorithm(jwk: Readonly<Record<string, unknown>>): ManageKeyVerdict {
  const refuse = (reason: string): ManageKeyVerdict => ({ ok: false, reason });
  const { kty, crv, alg } = jwk;
  const secret = PRIVATE_JWK_MEMBERS.find((m) => m in jwk);
  if (secret !== undefined) return refuse(`it contains private or symmetric key material ("${secret}")`);
  if (jwk.use !== undefined && jwk.use !== 'sig') return refuse(`its "use" is ${JSON.stringify(jwk.use)}, not "sig"`);
  if (alg !== undefined && !(MANAGE_ALGORITHMS as readonly unknown[]).includes(alg))
    return refuse(`its alg ${JSON.stringify(alg)} is not one of ${MANAGE_ALGORITHMS.join(', ')}`);
  if (kty === 'EC' && crv === 'P-256' && (alg === undefined || alg === 'ES256')) return { ok: true, alg: 'ES256' };
  if (kty === 'OKP' && crv === 'Ed25519' && (alg === undefined || alg === 'EdDSA')) return { ok: true, alg: 'EdDSA' };
  if (kty === 'RSA') {
    const bits = typeof jwk.n === 'string' ? base64urlBytes(jwk.n) * 8 : 0;
    if (bits < MIN_RSA_MODULUS_BITS)
      return refuse(`its RSA modulus has ${bits} bits (at least ${MIN_RSA_MODULUS_BITS} required)`);
    if (alg === 'RS256' || alg === 'PS256') return { ok: true, alg };
    if (alg === undefined) return refuse('an RSA key must name its alg (RS256 or PS256)');
  }
  const type = `${JSON.stringify(kty)}${crv !== undefined ? `/${JSON.stringify(crv)}` : ''}`;
  return refuse(`key type ${type} does not fit alg ${JSON.stringify(alg ?? 'none')}`);
}
