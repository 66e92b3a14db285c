/**
 * End-to-end payload encryption: the wire words the manage app, the gateway and the relay agree on.
 *
 * Command `args` may travel encrypted to the gateway's enrolled encryption key: the signed command token then
 * carries `args: { jwe: "<compact JWE>" }` instead of the clear object. The relay checks signature, `aud`,
 * `site`, `exp` and `jti` as before and never decodes the JWE (it has no key for it anyway). The gateway
 * decrypts only after the signature verified, and only this profile:
 *
 *   protected header { alg: "ECDH-ES+A256KW", enc: "A256GCM", kid: <RFC 7638 thumbprint of its key>,
 *                      epk, cty?: "scanrelay-args+json" } — no `zip`, no `crit`, nothing else unknown.
 *
 * The encryption key is a P-256 ECDH key made at enrolment beside the signing key; its public JWK is published
 * signed by the signing key (`GATEWAY_ENC_KEY_TYP`), and a site administrator pins it in the manage app only
 * after confirming its thumbprint against the one `scanrelay-gateway status` prints at the site.
 */

/** Key-management algorithm of an args JWE (the only one accepted). */
export const ARGS_JWE_ALG = 'ECDH-ES+A256KW';
/** Content-encryption algorithm of an args JWE (the only one accepted). */
export const ARGS_JWE_ENC = 'A256GCM';
/** `cty` of an args JWE: the plaintext is the JSON args object. */
export const ARGS_JWE_CTY = 'scanrelay-args+json';
/** Protected-header members an args JWE may carry; anything else (notably `zip`, `crit`, `jku`) is refused. */
export const ARGS_JWE_HEADER_MEMBERS: readonly string[] = Object.freeze(['alg', 'enc', 'kid', 'epk', 'cty']);
/** Longest args JWE accepted, characters (checked before any parsing; the whole token is capped too). */
export const MAX_ARGS_JWE_LENGTH = 6144;
/** `typ` of the JWS in which a gateway publishes its encryption public key, signed by its signing key. */
export const GATEWAY_ENC_KEY_TYP = 'scanrelay-gateway-enc-key+jwt';

/**
 * Reasons a gateway refuses encrypted args, as sent in `command.status rejected {detail.reason}`. Stable.
 * - `args_not_encrypted`: the gateway requires encrypted args and got clear ones
 * - `wrong_encryption_key`: encrypted to another key than this gateway's current one (a relay swapping keys)
 * - `encryption_refused`: a JWE feature outside the profile (`zip`, `crit`, other alg/enc, extra header)
 * - `decryption_failed`: tampered ciphertext, truncated tag, wrong key material
 */
export const ARGS_ENCRYPTION_REASONS = Object.freeze([
  'args_not_encrypted',
  'wrong_encryption_key',
  'encryption_refused',
  'decryption_failed',
] as const);
export type ArgsEncryptionReason = (typeof ARGS_ENCRYPTION_REASONS)[number];

/** The form of `args` when encrypted. */
export interface EncryptedArgs {
  jwe: string;
}

const COMPACT_JWE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** True when `args` is exactly `{ jwe: <string> }` (shape only; says nothing about the JWE's validity). */
export function isEncryptedArgs(args: unknown): args is EncryptedArgs {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return false;
  if (Object.getPrototypeOf(args) !== Object.prototype) return false;
  const keys = Object.keys(args);
  return keys.length === 1 && keys[0] === 'jwe' && typeof (args as { jwe: unknown }).jwe === 'string';
}

/** True when `jwe` has the five-part compact shape and fits MAX_ARGS_JWE_LENGTH. */
export function isCompactJweShape(jwe: string): boolean {
  return jwe.length <= MAX_ARGS_JWE_LENGTH && COMPACT_JWE.test(jwe);
}
