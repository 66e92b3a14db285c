/**
 * Decrypting a command's encrypted `args` (`{ jwe }`), called only after the command token's signature,
 * audience, site and expiry verified — so nothing here runs for an unsigned or foreign token.
 *
 * The profile is narrow on purpose (jose CVE-2024-28176 was a `zip` bomb): the protected header is parsed
 * and checked against an allowlist before jose sees the JWE, and jose is then held to the same algorithms.
 * Every refusal has a stable reason (relay/protocol ARGS_ENCRYPTION_REASONS) and a message that never echoes
 * the ciphertext or the plaintext.
 */
import {
  ARGS_JWE_ALG,
  ARGS_JWE_CTY,
  ARGS_JWE_ENC,
  ARGS_JWE_HEADER_MEMBERS,
  isCompactJweShape,
  MAX_ARGS_JWE_LENGTH,
} from '@scanrelay/protocol';
import { compactDecrypt } from 'jose';
import type { EncryptionKey } from '../keys/encryption-key.js';
import { CommandRejected } from './verifier.js';

/** Decrypt and JSON-parse encrypted args. Throws CommandRejected with a stable reason. */
export async function decryptArgs(jwe: string, key: EncryptionKey): Promise<unknown> {
  if (jwe.length > MAX_ARGS_JWE_LENGTH)
    throw new CommandRejected('too_large', `the encrypted args are longer than ${MAX_ARGS_JWE_LENGTH} characters`);
  if (!isCompactJweShape(jwe))
    throw new CommandRejected('encryption_refused', 'the encrypted args are not a compact JWE');
  const header = parseProtectedHeader(jwe);
  for (const name of Object.keys(header)) {
    if (!ARGS_JWE_HEADER_MEMBERS.includes(name))
      throw new CommandRejected(
        'encryption_refused',
        `the args JWE header carries "${name.slice(0, 16)}", which this gateway refuses`,
      );
  }
  if (header.alg !== ARGS_JWE_ALG || header.enc !== ARGS_JWE_ENC)
    throw new CommandRejected('encryption_refused', `the args JWE must use ${ARGS_JWE_ALG} with ${ARGS_JWE_ENC}`);
  if (header.cty !== undefined && header.cty !== ARGS_JWE_CTY)
    throw new CommandRejected('encryption_refused', 'the args JWE has an unexpected cty');
  if (header.kid !== key.thumbprint)
    throw new CommandRejected(
      'wrong_encryption_key',
      "the args are not encrypted to this gateway's current key (compare thumbprints: scanrelay-gateway status)",
    );
  let plaintext: Uint8Array;
  try {
    ({ plaintext } = await compactDecrypt(jwe, key.privateKey, {
      keyManagementAlgorithms: [ARGS_JWE_ALG],
      contentEncryptionAlgorithms: [ARGS_JWE_ENC],
    }));
  } catch {
    // Same kid but it does not open: tampered, truncated tag, or an epk made for another key.
    throw new CommandRejected('decryption_failed', 'the encrypted args do not decrypt (tampered or not for this key)');
  }
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plaintext)) as unknown;
  } catch {
    throw new CommandRejected('bad_args', 'the decrypted args are not JSON');
  }
}

function parseProtectedHeader(jwe: string): Record<string, unknown> {
  const b64 = jwe.slice(0, jwe.indexOf('.'));
  try {
    const json = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(b64, 'base64url'));
    const header = JSON.parse(json) as unknown;
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new Error('not an object');
    return header as Record<string, unknown>;
  } catch {
    throw new CommandRejected('encryption_refused', 'the args JWE protected header is not a JSON object');
  }
}
