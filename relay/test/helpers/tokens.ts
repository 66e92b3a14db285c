/**
 * Test helpers for ScanRelay tokens: key pairs, JWKS files, and minting of every token kind — valid by default,
 * forgeable on demand.
 *
 * Shared by every suite that needs a token (relay auth and core, gateway agent, web client, bench, deploy).
 * Everything is real cryptography (jose + node:crypto); nothing here stubs a verifier.
 *
 * ```ts
 * const manage = await generateManageKey();                 // ES256, kid 'manage-1'
 * const jwks = await writeJwksFile([manage]);                // temp dir; jwks.cleanup() in afterAll
 * const session = await mintSession(manage, { claims: { sites: ['site-a'] } });
 * const command = await mintCommand(manage, { claims: { aud: 'gw-1', site: 'site-a', cmd: 'echo', args: { aet: 'MOD' } } });
 * const forged = await mintCommand(manage, { claims: { aud: ['gw-1', 'x'] }, omit: ['jti'] });
 * const gw = await generateGatewayKey();                     // ES256 (P-256); 'EdDSA' for Ed25519
 * const proof = await activationProof(gw, code);             // body for POST /v1/activate: { code, publicKey: gw.publicJwk, proof }
 * const hello = await mintGatewayAssertion(gw, { gateway: 'gw-1' });
 * ```
 *
 * Time: every minting function takes `now` (ms epoch, default `Date.now()`), so tests driven by a manual clock
 * mint tokens that are valid at that clock's time.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_AUDIENCE, TOKEN_TYP } from '@scanrelay/protocol';
import {
  CompactSign,
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
} from 'jose';

/** Issuer used by default for manage-app tokens in tests (set `SCANRELAY_MANAGE_ISSUER` / options to match). */
export const TEST_ISSUER = 'https://manage.scanrelay.test';
/** Audience of session, admin and gateway-assertion tokens by default (the protocol's default relay id). */
export const TEST_AUDIENCE = DEFAULT_AUDIENCE;

/** Algorithms a manage-app test key can use. */
export type ManageAlg = 'ES256' | 'EdDSA' | 'RS256' | 'PS256';
/** Algorithms a gateway test key can use (P-256 or Ed25519, as the relay accepts at activation). */
export type GatewayAlg = 'ES256' | 'EdDSA';

/** A signing key pair with its public JWK (carrying `kid`, `alg`, `use`). */
export interface TestKey {
  alg: ManageAlg;
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** Public JWK as it goes into a JWKS: kty/crv/x/y or n/e, plus kid, alg, use = 'sig'. */
  publicJwk: JWK;
}

/** A gateway's key pair: what `scanrelay-gateway activate` makes locally. */
export interface GatewayKey {
  alg: GatewayAlg;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** Public JWK (kty/crv/x[/y] and `alg`), as sent in `POST /v1/activate`. No `kid`. */
  publicJwk: JWK;
  /** RFC 7638 thumbprint (SHA-256, base64url) of `publicJwk`, as the relay stores it. */
  thumbprint: string;
}

let kidCounter = 0;

/**
 * Make a manage-app signing key. ES256 by default; EdDSA (Ed25519), RS256 and PS256 (RSA, 2048 bits unless
 * `modulusLength` says otherwise) too. `kid` defaults to `manage-<n>`.
 */
export async function generateManageKey(
  opts: { alg?: ManageAlg; kid?: string; modulusLength?: number } = {},
): Promise<TestKey> {
  const alg = opts.alg ?? 'ES256';
  const kid = opts.kid ?? `manage-${++kidCounter}`;
  const pair = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
    ...(alg === 'RS256' || alg === 'PS256' ? { modulusLength: opts.modulusLength ?? 2048 } : {}),
  });
  const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey: pair.privateKey, publicKey: pair.publicKey, publicJwk };
}

/** The public key as an SPKI PEM (for "HS256 keyed with the public key" forgeries). */
export function publicKeyPem(key: { publicKey: CryptoKey }): Promise<string> {
  return exportSPKI(key.publicKey);
}

/** A JWKS document `{ keys: [...] }` holding the public JWKs of `keys`. */
export function jwksOf(keys: readonly TestKey[]): { keys: JWK[] } {
  return { keys: keys.map((k) => ({ ...k.publicJwk })) };
}

/** A JWKS file in its own temp directory. */
export interface JwksFile {
  /** Absolute path of the JSON file (use as `SCANRELAY_MANAGE_JWKS` / `manageJwks`). */
  path: string;
  dir: string;
  /** Atomically replace the file's content (key rotation): write a temp file, then rename over. */
  rewrite(keys: readonly TestKey[] | { keys: unknown[] }): Promise<void>;
  /** Remove the temp directory. Call in afterAll/afterEach. */
  cleanup(): Promise<void>;
}

/**
 * Write a JWKS file holding `keys` (or a raw JWKS object, to test malformed sets) into a new temp directory.
 */
export async function writeJwksFile(keys: readonly TestKey[] | { keys: unknown[] }): Promise<JwksFile> {
  const dir = await mkdtemp(join(tmpdir(), 'scanrelay-jwks-'));
  const path = join(dir, 'jwks.json');
  let n = 0;
  const rewrite = async (next: readonly TestKey[] | { keys: unknown[] }): Promise<void> => {
    const doc = Array.isArray(next) ? jwksOf(next as readonly TestKey[]) : next;
    const tmp = join(dir, `.jwks.${++n}.tmp`);
    await writeFile(tmp, JSON.stringify(doc));
    await rename(tmp, path);
  };
  await rewrite(keys);
  return { path, dir, rewrite, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Options common to every minting function. */
export interface MintOptions {
  /** Claims merged over the defaults (a value of `undefined` removes that claim). */
  claims?: Record<string, unknown>;
  /** Header parameters merged over the defaults `{ alg, kid, typ }` (e.g. `{ typ: 'JWT' }`, `{ kid: 'x' }`).
   *  `alg` here must stay the key's own (use `forgeUnsigned` / `forgeHmac` for other algorithms). */
  header?: Record<string, unknown>;
  /** Claim names to leave out entirely (e.g. `['jti']`). */
  omit?: readonly string[];
  /** Clock, ms epoch; `iat` = floor(now / 1000). Default `Date.now()`. */
  now?: number;
  /** Lifetime in seconds: `exp` = `iat` + ttl. Defaults per kind. */
  ttlSeconds?: number;
}

function buildPayload(
  defaults: Record<string, unknown>,
  opts: MintOptions,
  defaultTtl: number,
): Record<string, unknown> {
  const iat = Math.floor((opts.now ?? Date.now()) / 1000);
  const payload: Record<string, unknown> = {
    ...defaults,
    iat,
    exp: iat + (opts.ttlSeconds ?? defaultTtl),
    jti: randomUUID(),
  };
  for (const [k, v] of Object.entries(opts.claims ?? {})) {
    if (v === undefined) delete payload[k];
    else payload[k] = v;
  }
  for (const k of opts.omit ?? []) delete payload[k];
  return payload;
}

/**
 * Sign an arbitrary JSON payload with `key` as a compact JWS. Header = `{ alg: key.alg, kid?, typ? }` merged
 * with `header`. The lowest-level helper; the `mint*` functions use it.
 */
export async function signRaw(
  key: { alg: string; privateKey: CryptoKey; kid?: string },
  payload: unknown,
  header: Record<string, unknown> = {},
): Promise<string> {
  const protectedHeader = { alg: key.alg, ...(key.kid ? { kid: key.kid } : {}), ...header };
  for (const [k, v] of Object.entries(protectedHeader)) {
    if (v === undefined) delete (protectedHeader as Record<string, unknown>)[k];
  }
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(protectedHeader as { alg: string })
    .sign(key.privateKey);
}

/**
 * A browser session token (typ `scanrelay-session+jwt`). Defaults: iss TEST_ISSUER, aud TEST_AUDIENCE,
 * sub `user-1`, a random `sid`, sites `['site-a']`, 10 min lifetime, random jti.
 */
export function mintSession(key: TestKey, opts: MintOptions = {}): Promise<string> {
  const payload = buildPayload(
    { iss: TEST_ISSUER, aud: TEST_AUDIENCE, sub: 'user-1', sid: `sid-${randomUUID()}`, sites: ['site-a'] },
    opts,
    600,
  );
  return signRaw(key, payload, { typ: TOKEN_TYP.session, ...opts.header });
}

/**
 * A command token (typ `scanrelay-command+jwt`). Defaults: iss TEST_ISSUER, aud `gw-1`, site `site-a`,
 * sub `user-1`, cmd `echo`, args `{ aet: 'MODALITY' }`, 2 min lifetime, random jti.
 */
export function mintCommand(key: TestKey, opts: MintOptions = {}): Promise<string> {
  const payload = buildPayload(
    { iss: TEST_ISSUER, aud: 'gw-1', site: 'site-a', sub: 'user-1', cmd: 'echo', args: { aet: 'MODALITY' } },
    opts,
    120,
  );
  return signRaw(key, payload, { typ: TOKEN_TYP.command, ...opts.header });
}

/**
 * An admin token for the relay's admin HTTP API (typ `scanrelay-admin+jwt`). Defaults: iss TEST_ISSUER,
 * aud TEST_AUDIENCE, sub `admin-1`, scope `admin`, 5 min lifetime, random jti.
 */
export function mintAdmin(key: TestKey, opts: MintOptions = {}): Promise<string> {
  const payload = buildPayload({ iss: TEST_ISSUER, aud: TEST_AUDIENCE, sub: 'admin-1', scope: 'admin' }, opts, 300);
  return signRaw(key, payload, { typ: TOKEN_TYP.admin, ...opts.header });
}

/**
 * Make a gateway key pair as `scanrelay-gateway activate` would: ES256 (P-256) by default, or EdDSA (Ed25519).
 * The public JWK carries `alg` and no `kid`.
 */
export async function generateGatewayKey(alg: GatewayAlg = 'ES256'): Promise<GatewayKey> {
  const pair = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), alg };
  const thumbprint = await calculateJwkThumbprint(publicJwk, 'sha256');
  return { alg, privateKey: pair.privateKey, publicKey: pair.publicKey, publicJwk, thumbprint };
}

/**
 * A gateway assertion (typ `scanrelay-gateway+jwt`) signed with the gateway's private key: iss = sub =
 * `gateway`, aud TEST_AUDIENCE, 30 s lifetime (the relay allows ≤ 60 s), random jti. No `kid` header (the relay
 * finds the key by `iss`).
 */
export function mintGatewayAssertion(gw: GatewayKey, opts: MintOptions & { gateway: string }): Promise<string> {
  const payload = buildPayload({ iss: opts.gateway, sub: opts.gateway, aud: TEST_AUDIENCE }, opts, 30);
  return signRaw(gw, payload, { typ: TOKEN_TYP.gateway, ...opts.header });
}

/** `typ` of the activation proof JWS (see relay/src/auth/activation.ts for the full format). */
export const ACTIVATION_PROOF_TYP = 'scanrelay-activation+jwt';

/**
 * The proof of possession for `POST /v1/activate`: a compact JWS signed with the gateway's new private key,
 * header `{ alg: 'ES256' | 'EdDSA', typ: 'scanrelay-activation+jwt' }`, payload the JSON object
 * `{ "code": <the activation code exactly as sent in the request body> }`. `payload` / `header` override for
 * forgeries.
 */
export function activationProof(
  gw: GatewayKey,
  code: string,
  opts: { payload?: unknown; header?: Record<string, unknown> } = {},
): Promise<string> {
  return signRaw(gw, opts.payload ?? { code }, { typ: ACTIVATION_PROOF_TYP, ...opts.header });
}

/** A gateway key pair and a ready `POST /v1/activate` body for `code`. */
export async function gatewayActivation(
  code: string,
  alg: GatewayAlg = 'ES256',
): Promise<{ key: GatewayKey; body: { code: string; publicKey: JWK; proof: string } }> {
  const key = await generateGatewayKey(alg);
  return { key, body: { code, publicKey: key.publicJwk, proof: await activationProof(key, code) } };
}

// ── forgeries ──────────────────────────────────────────────────────────────────────────────────────────────

function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** An unsecured JWS (`alg: none`, empty signature) — must always be refused. */
export function forgeUnsigned(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return `${b64url({ ...header, alg: 'none' })}.${b64url(payload)}.`;
}

/**
 * An HMAC-signed JWS (HS256 by default) keyed with `secret` — e.g. the manage app's public key PEM, the classic
 * algorithm-confusion forgery. Must always be refused.
 */
export function forgeHmac(
  secret: string | Buffer,
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  alg: 'HS256' | 'HS384' | 'HS512' = 'HS256',
): string {
  const input = `${b64url({ ...header, alg })}.${b64url(payload)}`;
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

/** Decode (without verifying) a compact JWS's header and payload — for building forgeries from a real token. */
export function decodeParts(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h = '', p = ''] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>,
  };
}

/** Replace a signed token's payload with `changes` merged in, keeping its header and (now invalid) signature. */
export function tamperPayload(token: string, changes: Record<string, unknown>): string {
  const [h, , s] = token.split('.');
  const payload = { ...decodeParts(token).payload, ...changes };
  return `${h}.${b64url(payload)}.${s}`;
}

/** A syntactically plausible token of about `bytes` characters (default 1 MiB) — must be refused unparsed. */
export function oversizedToken(bytes = 1024 * 1024): string {
  const header = b64url({ alg: 'ES256', typ: TOKEN_TYP.session, kid: 'manage-1' });
  const body = 'A'.repeat(Math.max(0, bytes - header.length - 90));
  return `${header}.${body}.${'B'.repeat(86)}`;
}
