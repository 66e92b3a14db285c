/**
 * Enrolment: `scanrelay-gateway activate --relay <url> --code <code>`.
 *
 * 1. A P-256 key pair is made here; the private key is written (mode 0600) to the state dir before anything
 *    is sent, so a crash after the relay accepted cannot lose it.
 * 2. Proof of possession: a compact JWS signed with the new private key, header
 *    `{ alg: 'ES256', typ: 'scanrelay-activation+jwt' }`, payload `{ "code": <the code as sent> }`
 *    (format defined by the relay, relay/src/auth/activation.ts).
 * 3. `POST <relay>/v1/activate` `{ code, publicKey (public JWK), proof }` → `{ gateway, site }`.
 * 4. The identity is stored; the key file takes its final name.
 *
 * The code is a credential: it is never logged.
 */
import { readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isId } from '@scanrelay/protocol';
import { CompactSign, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { GatewayError } from '../errors.js';
import { ensurePrivateDir, fsyncDir, writeFileAtomic } from '../util/durable.js';
import { ENC_KEY_FILE, loadOrCreateEncryptionKey } from './encryption-key.js';
import { IDENTITY_FILE, type Identity, KEY_FILE } from './identity.js';

/** `typ` of the activation proof JWS. */
export const ACTIVATION_PROOF_TYP = 'scanrelay-activation+jwt';

export interface ActivateOptions {
  /** Relay base URL, http(s) (e.g. https://relay.example.org). */
  relay: string;
  /** The activation code from the relay operator. */
  code: string;
  stateDir: string;
  /** Replace an existing identity (re-enrolment). */
  force?: boolean;
  /** Injected for tests. */
  fetch?: typeof fetch;
  timeoutMs?: number;
  now?: () => number;
}

/** What `activate` resolves: the stored identity, and where a previous identity's outbox was moved, if any. */
export type ActivationResult = Identity & {
  retiredOutbox?: string;
  /** RFC 7638 thumbprint of the encryption key made with this enrolment (printed for the installer). */
  encryptionThumbprint: string;
};

/** Enrol this gateway with the relay. Resolves the stored identity. Throws GatewayError `activation_failed`. */
export async function activate(opts: ActivateOptions): Promise<ActivationResult> {
  const base = parseRelayBase(opts.relay);
  if (!opts.code.trim() || opts.code.length > 64 || /[^\x20-\x7e]/.test(opts.code))
    throw new GatewayError('activation_failed', '--code is empty or malformed: copy the code exactly as given');
  await ensurePrivateDir(opts.stateDir);
  const identityPath = join(opts.stateDir, IDENTITY_FILE);
  const previous = await readIdentity(identityPath);
  if (!opts.force && (await exists(identityPath)))
    throw new GatewayError(
      'activation_failed',
      `this gateway is already activated (${identityPath}); to enrol it again, pass --force (the old identity is replaced)`,
    );

  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const privateJwk = await exportJWK(privateKey);
  const publicJwk = { ...(await exportJWK(publicKey)), alg: 'ES256' };
  const pendingKey = join(opts.stateDir, `${KEY_FILE}.pending`);
  await writeFileAtomic(pendingKey, JSON.stringify(privateJwk), 0o600);

  const proof = await new CompactSign(new TextEncoder().encode(JSON.stringify({ code: opts.code })))
    .setProtectedHeader({ alg: 'ES256', typ: ACTIVATION_PROOF_TYP })
    .sign(privateKey);

  const doFetch = opts.fetch ?? fetch;
  let res: Response;
  try {
    res = await doFetch(new URL('v1/activate', base), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ code: opts.code, publicKey: publicJwk, proof }),
      redirect: 'error',
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
  } catch (err) {
    await unlink(pendingKey).catch(() => undefined);
    throw new GatewayError(
      'activation_failed',
      `could not reach the relay at ${base.href}: ${(err as Error).message}. Check --relay and the network`,
      { cause: err },
    );
  }
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!res.ok) {
    await unlink(pendingKey).catch(() => undefined);
    const code = typeof body.code === 'string' ? body.code : `http_${res.status}`;
    const message = typeof body.message === 'string' ? body.message : `HTTP ${res.status}`;
    throw new GatewayError(
      'activation_failed',
      `the relay refused the activation (${code}): ${message}. Ask the relay operator for a new code if it expired or was used`,
    );
  }
  if (!isId(body.gateway) || !isId(body.site)) {
    await unlink(pendingKey).catch(() => undefined);
    throw new GatewayError('activation_failed', 'the relay answered without a valid gateway and site id');
  }
  // A fresh enrolment gets a fresh encryption key too: the old one (if any) must be re-confirmed anyway.
  await unlink(join(opts.stateDir, ENC_KEY_FILE)).catch(() => undefined);
  const enc = await loadOrCreateEncryptionKey(opts.stateDir);
  const identity: ActivationResult = {
    gateway: body.gateway,
    site: body.site,
    relay: base.href.replace(/\/$/, ''),
    alg: 'ES256',
    thumbprint: await calculateJwkThumbprint(publicJwk, 'sha256'),
    activatedAt: (opts.now ?? Date.now)(),
    encryptionThumbprint: enc.thumbprint,
  };
  await rename(pendingKey, join(opts.stateDir, KEY_FILE));
  await fsyncDir(opts.stateDir);
  await writeFileAtomic(identityPath, `${JSON.stringify(identity, null, 2)}\n`, 0o600);
  if (previous && previous.gateway !== identity.gateway) {
    // Events still in the outbox belong to the old identity (often revoked): they must never be sent as the
    // new gateway's (possibly another site's). Kept aside, not deleted, for the operator to inspect.
    const outbox = join(opts.stateDir, 'outbox');
    if (await exists(outbox)) {
      const retired = join(opts.stateDir, `outbox.retired-${previous.gateway}-${identity.activatedAt}`);
      await rename(outbox, retired);
      await fsyncDir(opts.stateDir);
      identity.retiredOutbox = retired;
    }
  }
  return identity;
}

async function readIdentity(path: string): Promise<Identity | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Identity;
  } catch {
    return undefined;
  }
}

/** Validate a relay base URL (http/https, no credentials, no query) and return it with a trailing slash. */
export function parseRelayBase(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new GatewayError('activation_failed', `--relay "${raw}" is not a URL; use e.g. https://relay.example.org`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new GatewayError('activation_failed', `--relay must be an http or https URL, not ${url.protocol}`);
  if (url.username || url.password || url.search || url.hash)
    throw new GatewayError('activation_failed', '--relay must not contain credentials, a query or a fragment');
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
