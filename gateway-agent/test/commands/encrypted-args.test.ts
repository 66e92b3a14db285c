/**
 * Issue 17: command args encrypted to the gateway's enrolled key. Real keys, real JWEs (jose), the manage
 * app's real pinning code (web-client/demo/gateway-keys.ts); each refusal checked by its stable reason.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ARGS_ENCRYPTION_REASONS, GATEWAY_ENC_KEY_TYP, MAX_ARGS_JWE_LENGTH } from '@scanrelay/protocol';
import { CompactEncrypt, compactVerify, exportJWK, generateKeyPair, importJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeParts,
  generateManageKey,
  type JwksFile,
  mintCommand,
  TEST_ISSUER,
  type TestKey,
  writeJwksFile,
} from '../../../relay/test/helpers/tokens.js';
import { GatewayKeyError, GatewayKeyPins } from '../../../web-client/demo/gateway-keys.js';
import { PinnedKeys } from '../../src/commands/pinned-keys.js';
import { CommandRejected, CommandVerifier } from '../../src/commands/verifier.js';
import {
  ENC_KEY_FILE,
  type EncryptionKey,
  loadOrCreateEncryptionKey,
  signEncryptionKey,
} from '../../src/keys/encryption-key.js';
import { silentLogger } from '../../src/log.js';
import { WORKLIST_ARGS } from '../helpers/fake-dicom.js';

let manage: TestKey;
let jwks: JwksFile;
let stateDir: string;
let gwKey: EncryptionKey;
let verifier: CommandVerifier;
let strict: CommandVerifier;
let pins: GatewayKeyPins;

beforeAll(async () => {
  manage = await generateManageKey({ kid: 'manage-1' });
  jwks = await writeJwksFile([manage]);
  const keys = await PinnedKeys.open(jwks.path, silentLogger());
  stateDir = await mkdtemp(join(tmpdir(), 'enc-key-'));
  gwKey = await loadOrCreateEncryptionKey(stateDir);
  const base = { keys, issuer: TEST_ISSUER, gatewayId: 'gw-1', site: 'site-a', encryptionKey: gwKey };
  verifier = new CommandVerifier(base);
  strict = new CommandVerifier({ ...base, requireEncryptedArgs: true });
  pins = new GatewayKeyPins();
  await pins.offer('gw-1', gwKey.publicJwk);
  pins.confirm('gw-1', gwKey.thumbprint);
});
afterAll(async () => {
  await jwks.cleanup();
  await rm(stateDir, { recursive: true, force: true });
});

async function reason(token: string, v: CommandVerifier = verifier): Promise<string> {
  try {
    await v.verify(token);
  } catch (err) {
    expect(err).toBeInstanceOf(CommandRejected);
    return (err as CommandRejected).reason;
  }
  return 'accepted';
}

const worklist = (args: unknown) => mintCommand(manage, { claims: { cmd: 'worklist.add', args } });

/** Re-encode a compact JWE with another protected header (the tag then no longer matches, but the header
 * allowlist must refuse it before any decryption is attempted). */
function withHeader(jwe: string, extra: Record<string, unknown>): string {
  const parts = jwe.split('.');
  const header = JSON.parse(Buffer.from(parts[0] as string, 'base64url').toString('utf8')) as object;
  parts[0] = Buffer.from(JSON.stringify({ ...header, ...extra })).toString('base64url');
  return parts.join('.');
}

describe('encrypted command args', () => {
  it('the encryption key is made once, stored 0600, and its public part is signed by the signing key', async () => {
    const again = await loadOrCreateEncryptionKey(stateDir);
    expect(again.created).toBe(false);
    expect(again.thumbprint).toBe(gwKey.thumbprint);
    expect((await stat(join(stateDir, ENC_KEY_FILE))).mode & 0o777).toBe(0o600);
    expect(gwKey.publicJwk.d).toBeUndefined();
    const signing = await generateKeyPair('ES256', { extractable: true });
    const jws = await signEncryptionKey(
      {
        gateway: 'gw-1',
        site: 'site-a',
        relay: 'http://x',
        alg: 'ES256',
        thumbprint: 't',
        activatedAt: 0,
        privateKey: signing.privateKey,
      },
      gwKey,
    );
    const { payload, protectedHeader } = await compactVerify(jws, signing.publicKey);
    expect(protectedHeader.typ).toBe(GATEWAY_ENC_KEY_TYP);
    expect(JSON.parse(new TextDecoder().decode(payload)).key.kid).toBe(gwKey.thumbprint);
  });

  it('args encrypted to the confirmed key verify and decrypt; the signed token holds no patient data', async () => {
    const token = await worklist(await pins.encryptArgs('gw-1', WORKLIST_ARGS));
    const raw = JSON.stringify(decodeParts(token).payload);
    for (const needle of [WORKLIST_ARGS.patientName, WORKLIST_ARGS.patientId, WORKLIST_ARGS.birthDate])
      expect(raw).not.toContain(needle);
    const v = await strict.verify(token);
    expect(v.args).toEqual(WORKLIST_ARGS);
  });

  it('clear args are refused when the gateway requires encryption: args_not_encrypted', async () => {
    expect(await reason(await worklist(WORKLIST_ARGS), strict)).toBe('args_not_encrypted');
    expect(await reason(await worklist(WORKLIST_ARGS), verifier)).toBe('accepted');
  });

  it('a relay swapping in its own key: the manage app refuses to encrypt to an unconfirmed thumbprint', async () => {
    const relayPins = new GatewayKeyPins();
    const rogue = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256', extractable: true });
    const rogueThumb = await relayPins.offer('gw-1', await exportJWK(rogue.publicKey));
    await expect(relayPins.encryptArgs('gw-1', WORKLIST_ARGS)).rejects.toMatchObject({
      code: 'encryption_key_unconfirmed',
    });
    // The administrator types the thumbprint the site console shows: it is not the rogue key's.
    expect(() => relayPins.confirm('gw-1', gwKey.thumbprint)).toThrow(GatewayKeyError);
    expect(relayPins.state('gw-1')).toEqual({ offered: rogueThumb, confirmed: undefined });
    // Once confirmed, a later swap is only *offered*; encryption stays on the confirmed key.
    await pins.offer('gw-1', await exportJWK(rogue.publicKey));
    const token = await worklist(await pins.encryptArgs('gw-1', WORKLIST_ARGS));
    expect(await reason(token, strict)).toBe('accepted');
    await pins.offer('gw-1', gwKey.publicJwk);
  });

  it('args encrypted to another key are refused: wrong_encryption_key, or decryption_failed under a forged kid', async () => {
    const rogue = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256', extractable: true });
    const other = new GatewayKeyPins();
    const thumb = await other.offer('gw-1', await exportJWK(rogue.publicKey));
    other.confirm('gw-1', thumb);
    const toRogue = await other.encryptArgs('gw-1', WORKLIST_ARGS);
    expect(await reason(await worklist(toRogue))).toBe('wrong_encryption_key');
    const forgedKid = { jwe: await encryptRaw(rogue.publicKey, { kid: gwKey.thumbprint }) };
    expect(await reason(await worklist(forgedKid))).toBe('decryption_failed');
  });

  it('zip, crit, unknown header members, other algorithms: encryption_refused before any decryption', async () => {
    const { jwe } = await pins.encryptArgs('gw-1', WORKLIST_ARGS);
    for (const extra of [
      { zip: 'DEF' },
      { crit: ['exp'], exp: 1 },
      { jku: 'https://evil.test/k' },
      { alg: 'ECDH-ES' },
      { enc: 'A128GCM' },
      { alg: 'RSA-OAEP' },
    ])
      expect(await reason(await worklist({ jwe: withHeader(jwe, extra) })), JSON.stringify(extra)).toBe(
        'encryption_refused',
      );
    const pub = await importJWK(gwKey.publicJwk, 'ECDH-ES');
    const direct = await new CompactEncrypt(new TextEncoder().encode('{}'))
      .setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM', kid: gwKey.thumbprint })
      .encrypt(pub);
    expect(await reason(await worklist({ jwe: direct }))).toBe('encryption_refused');
    expect(await reason(await worklist({ jwe: 'not.a.jwe' }))).toBe('encryption_refused');
  });

  it('tampered ciphertext and a truncated tag: decryption_failed', async () => {
    const { jwe } = await pins.encryptArgs('gw-1', WORKLIST_ARGS);
    const parts = jwe.split('.');
    const ct = Buffer.from(parts[3] as string, 'base64url');
    ct[0] = (ct[0] as number) ^ 1;
    const tampered = [...parts.slice(0, 3), ct.toString('base64url'), parts[4]].join('.');
    expect(await reason(await worklist({ jwe: tampered }))).toBe('decryption_failed');
    const tag = Buffer.from(parts[4] as string, 'base64url')
      .subarray(0, 8)
      .toString('base64url');
    expect(await reason(await worklist({ jwe: [...parts.slice(0, 4), tag].join('.') }))).toBe('decryption_failed');
  });

  it('an oversized JWE is refused before parsing: too_large', async () => {
    const { jwe } = await pins.encryptArgs('gw-1', WORKLIST_ARGS);
    const parts = jwe.split('.');
    parts[3] = 'A'.repeat(MAX_ARGS_JWE_LENGTH);
    expect(await reason(await worklist({ jwe: parts.join('.') }))).toBe('too_large');
  });

  it('every refusal reason is one the protocol lists', () => {
    expect(ARGS_ENCRYPTION_REASONS).toEqual([
      'args_not_encrypted',
      'wrong_encryption_key',
      'encryption_refused',
      'decryption_failed',
    ]);
  });
});

function encryptRaw(key: CryptoKey, header: Record<string, string>): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(WORKLIST_ARGS)))
    .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', ...header })
    .encrypt(key);
}
