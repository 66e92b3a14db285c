/**
 * Gateway enrolment: one-time activation codes and `POST /v1/activate`.
 *
 * ## Activation code
 *
 * 20 characters of Crockford base32 (`0123456789ABCDEFGHJKMNPQRSTVWXYZ`) in five groups of four, e.g.
 * `7K3M-QX2F-4F9T-BHR8-WN5C`:
 *
 * - groups 1–2 (8 characters, 40 bits): the **lookup** part. It names the activation record and is not secret.
 * - groups 3–5 (12 characters, 60 bits): the **secret** part. The relay stores only `scrypt(secret, salt)`.
 *
 * Input is read forgivingly: case-insensitive, spaces and dashes ignored, `O` read as `0`, `I`/`L` as `1`.
 * A code expires (default 1 h), is locked after 5 wrong secrets, and is used at most once.
 *
 * ## `POST /v1/activate` (the client side is `scanrelay-gateway activate`)
 *
 * `Content-Type: application/json`, body at most 16 KiB, exactly these members:
 *
 * ```json
 * { "code": "7K3M-QX2F-4F9T-BHR8-WN5C", "publicKey": { "kty": "EC", "crv": "P-256", "x": "…", "y": "…" },
 *   "proof": "<compact JWS>", "site": "site-a" }
 * ```
 *
 * - `code`: the activation code, as the operator typed it (≤ 64 characters).
 * - `publicKey`: the gateway's freshly generated **public** JWK: EC P-256 (`kty` EC, `crv` P-256, `x`, `y`) or
 *   Ed25519 (`kty` OKP, `crv` Ed25519, `x`). Optional `alg` must be `ES256` (P-256) or `EdDSA` (Ed25519);
 *   optional `use` must be `sig`; `kid`, `key_ops`, `ext` are ignored. Private members (`d`, …), symmetric
 *   (`oct`) and RSA keys are refused.
 * - `proof`: proof of possession of the matching private key — a compact JWS (≤ 2048 characters) with
 *   protected header `{ "alg": "ES256" | "EdDSA", "typ": "scanrelay-activation+jwt" }` (`alg` must match the key
 *   type; other header members such as `kid`, `jwk`, `jku`, `x5c` are ignored) and payload the UTF-8 JSON
 *   object `{ "code": "<exactly the body's code string>" }` (other payload members are ignored), signed with
 *   the new private key.
 * - `site` (optional): the site the gateway believes it belongs to; if given it must equal the code's site.
 *
 * Success: `200 { "gateway": "<gateway id>", "site": "<site id>" }`. The gateway then connects to `/v1/gateway`
 * with assertions `iss = sub = gateway id`, signed with the same key. Errors are `{ code, message }`:
 * 400 `bad_message` (malformed body or key), 401 `unauthenticated` (unknown code, wrong secret, bad proof),
 * 401 `token_expired` (code expired), 403 `forbidden` (locked, or site mismatch), 403 `revoked` (gateway revoked
 * before activation), 409 `conflict` (code already used), 413, 415, 429 `rate_limited` (with `Retry-After`).
 *
 * Order of checks — cheap before costly, and every limit before scrypt (scrypt is a DoS lever):
 * per-IP and global rate limits → body shape → key → proof → record (unknown / used / expired / locked) →
 * scrypt + timingSafeEqual (a miss counts a failure) → site → atomic `registry.activate` (exactly one of
 * concurrent callers wins).
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { isId } from '@scanrelay/protocol';
import { type CryptoKey, calculateJwkThumbprint, compactVerify, importJWK, type JWK } from 'jose';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Registry } from '../ports/registry.js';
import { ApiError } from './api-error.js';
import { WindowLimiter } from './rate-limit.js';

/** `typ` header of the activation proof JWS. */
export const ACTIVATION_PROOF_TYP = 'scanrelay-activation+jwt';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const LOOKUP_CHARS = 8;
const SECRET_CHARS = 12;
const MAX_CODE_INPUT = 64;
const MAX_PROOF_LENGTH = 2048;
const MAX_NAME_LENGTH = 128;

/** Hashes an activation secret with a salt. Injectable so tests can count how often hashing runs. */
export type SecretHasher = (secret: string, salt: Buffer) => Promise<Buffer>;

/** scrypt cost parameters. Default N = 2^15, r = 8, p = 1 (32 MiB, ~0.1 s). */
export interface ScryptCost {
  N: number;
  r: number;
  p: number;
}

/** scrypt with `maxmem` raised to fit the cost (Node's 32 MiB default refuses N = 2^15, r = 8). */
export function scryptHasher(cost: ScryptCost = { N: 2 ** 15, r: 8, p: 1 }): SecretHasher {
  const maxmem = 256 * cost.N * cost.r * cost.p + 16 * 1024 * 1024;
  return (secret, salt) =>
    new Promise((resolve, reject) => {
      scrypt(secret, salt, 32, { ...cost, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
    });
}

function randomChars(n: number, random: (n: number) => Buffer): string {
  // 256 is a multiple of 32, so `byte & 31` is uniform.
  return [...random(n)].map((b) => ALPHABET[b & 31]).join('');
}

/** A fresh code: `{ code, lookup, secret }`. */
export function generateActivationCode(random: (n: number) => Buffer = randomBytes): {
  code: string;
  lookup: string;
  secret: string;
} {
  const lookup = randomChars(LOOKUP_CHARS, random);
  const secret = randomChars(SECRET_CHARS, random);
  const all = lookup + secret;
  return { code: all.match(/.{4}/g)!.join('-'), lookup, secret };
}

/** Normalise and split a code as typed; undefined if it cannot be one. */
export function parseActivationCode(input: unknown): { lookup: string; secret: string } | undefined {
  if (typeof input !== 'string' || input.length > MAX_CODE_INPUT) return undefined;
  const s = input.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1');
  if (s.length !== LOOKUP_CHARS + SECRET_CHARS || ![...s].every((c) => ALPHABET.includes(c))) return undefined;
  return { lookup: s.slice(0, LOOKUP_CHARS), secret: s.slice(LOOKUP_CHARS) };
}

/** The algorithm a stored gateway public JWK is used with, or undefined if it is not one we accept. */
export function gatewayJwkAlgorithm(jwk: JWK): 'ES256' | 'EdDSA' | undefined {
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  return undefined;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

function badKey(what: string): ApiError {
  return new ApiError(400, 'bad_message', `publicKey refused: ${what}`, { reason: 'bad_key' });
}

function b64Len(v: unknown): number {
  return typeof v === 'string' && /^[A-Za-z0-9_-]+$/.test(v) ? Buffer.from(v, 'base64url').length : -1;
}

/**
 * Validate a gateway's public JWK. Returns the canonical public JWK (only kty, crv, x, y and alg) and the
 * imported key, or throws a 400 ApiError saying what is wrong.
 */
export async function parseGatewayJwk(value: unknown): Promise<{ jwk: JWK; alg: 'ES256' | 'EdDSA'; key: CryptoKey }> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badKey('it must be a JWK object');
  const raw = value as Record<string, unknown>;
  if (PRIVATE_MEMBERS.some((m) => Object.hasOwn(raw, m))) {
    throw badKey('it contains private or symmetric key material; send the public key only');
  }
  if (raw.kty === 'oct') throw badKey('symmetric keys are not accepted; use EC P-256 or Ed25519');
  if (raw.kty === 'RSA') throw badKey('RSA keys are not accepted; use EC P-256 or Ed25519');
  if (raw.use !== undefined && raw.use !== 'sig') throw badKey('its "use" must be "sig"');
  let jwk: JWK;
  let alg: 'ES256' | 'EdDSA';
  if (raw.kty === 'EC' && raw.crv === 'P-256') {
    if (b64Len(raw.x) !== 32 || b64Len(raw.y) !== 32) throw badKey('P-256 x and y must be 32-byte base64url values');
    alg = 'ES256';
    jwk = { kty: 'EC', crv: 'P-256', x: raw.x as string, y: raw.y as string, alg };
  } else if (raw.kty === 'OKP' && raw.crv === 'Ed25519') {
    if (b64Len(raw.x) !== 32) throw badKey('Ed25519 x must be a 32-byte base64url value');
    alg = 'EdDSA';
    jwk = { kty: 'OKP', crv: 'Ed25519', x: raw.x as string, alg };
  } else {
    throw badKey('only EC P-256 and Ed25519 (OKP) keys are accepted');
  }
  if (raw.alg !== undefined && raw.alg !== alg) throw badKey(`its alg must be ${alg} for this key type`);
  try {
    return { jwk, alg, key: (await importJWK(jwk, alg)) as CryptoKey };
  } catch {
    throw badKey('it is not a valid point on its curve');
  }
}

/** Verify the proof of possession; throws a 401 ApiError if it does not prove it. */
export async function verifyProof(proof: unknown, key: CryptoKey, alg: string, code: string): Promise<void> {
  const fail = (what: string) =>
    new ApiError(401, 'unauthenticated', `proof refused: ${what}`, { reason: 'bad_proof' });
  if (typeof proof !== 'string' || proof.length === 0 || proof.length > MAX_PROOF_LENGTH) {
    throw fail(`it must be a compact JWS of at most ${MAX_PROOF_LENGTH} characters`);
  }
  let result: Awaited<ReturnType<typeof compactVerify>>;
  try {
    result = await compactVerify(proof, key, { algorithms: [alg] });
  } catch {
    throw fail(`it is not a JWS signed with the submitted key using ${alg}`);
  }
  if (result.protectedHeader.typ !== ACTIVATION_PROOF_TYP) throw fail(`its typ must be ${ACTIVATION_PROOF_TYP}`);
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(result.payload));
  } catch {
    throw fail('its payload must be the JSON object {"code": …}');
  }
  if (typeof payload !== 'object' || payload === null || (payload as { code?: unknown }).code !== code) {
    throw fail('its payload "code" must equal the code in the request');
  }
}

/**
 * At most `max` hashes at once. scrypt runs on libuv's small thread pool (4 threads by default), which file
 * and DNS work share: a burst of activations must queue here rather than occupy every thread (and 32 MiB each).
 */
export class HashGate {
  readonly #max: number;
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(max: number) {
    this.#max = Math.max(1, max);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active >= this.#max) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#active++;
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter, or release it.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#active--;
    }
  }
}

export interface EnrolmentOptions {
  registry: Registry;
  clock: Clock;
  logger: Logger;
  /** Code lifetime. Default 1 h. */
  ttlMs?: number;
  /** Wrong secrets before a code locks. Default 5. */
  maxFailures?: number;
  /** Activation attempts per client IP per minute. Default 10. */
  perIpPerMinute?: number;
  /** Activation attempts per minute in total (bounds scrypt work). Default 60. */
  globalPerMinute?: number;
  /** Secret hasher. Default `scryptHasher()`. */
  hashSecret?: SecretHasher;
  /** Hashes allowed to run at once (the rest queue; arrivals are already rate-limited). Default 2. */
  maxConcurrentHashes?: number;
  /** Randomness (codes, salts, ids). Default `crypto.randomBytes`. */
  random?: (n: number) => Buffer;
}

export interface IssuedCode {
  gateway: string;
  site: string;
  activationCode: string;
  /** ms epoch. */
  expiresAt: number;
}

/** Issues codes (admin API) and redeems them (`POST /v1/activate`). */
export class Enrolment {
  readonly #registry: Registry;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #ttlMs: number;
  readonly #maxFailures: number;
  readonly #hash: SecretHasher;
  readonly #random: (n: number) => Buffer;
  readonly #perIp: WindowLimiter;
  readonly #global: WindowLimiter;

  constructor(opts: EnrolmentOptions) {
    this.#registry = opts.registry;
    this.#clock = opts.clock;
    this.#log = opts.logger.child({ component: 'enrolment' });
    this.#ttlMs = opts.ttlMs ?? 3_600_000;
    this.#maxFailures = opts.maxFailures ?? 5;
    const hash = opts.hashSecret ?? scryptHasher();
    const gate = new HashGate(opts.maxConcurrentHashes ?? 2);
    this.#hash = (secret, salt) => gate.run(() => hash(secret, salt));
    this.#random = opts.random ?? randomBytes;
    this.#perIp = new WindowLimiter({ limit: opts.perIpPerMinute ?? 10, windowMs: 60_000, clock: opts.clock });
    this.#global = new WindowLimiter({ limit: opts.globalPerMinute ?? 60, windowMs: 60_000, clock: opts.clock });
  }

  /** Create a pending gateway for `site` and its one-time code. */
  async issue(site: unknown, name: unknown, by: string): Promise<IssuedCode> {
    if (!isId(site)) throw new ApiError(400, 'bad_message', 'site must be a site id (a-z, 0-9, -; up to 64)');
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH || /\p{Cc}/u.test(name)) {
      throw new ApiError(400, 'bad_message', `name must be 1–${MAX_NAME_LENGTH} printable characters`);
    }
    const now = this.#clock.now();
    const expiresAt = now + this.#ttlMs;
    for (let attempt = 0; ; attempt++) {
      const id = `gw-${randomChars(16, this.#random).toLowerCase()}`;
      const { code, lookup, secret } = generateActivationCode(this.#random);
      const salt = this.#random(16);
      const hash = await this.#hash(secret, salt);
      try {
        await this.#registry.createGateway(
          { id, site, name, status: 'pending', createdAt: now },
          {
            lookup,
            gateway: id,
            site,
            hash: hash.toString('base64url'),
            salt: salt.toString('base64url'),
            expiresAt,
            failures: 0,
            used: false,
          },
        );
      } catch (err) {
        // A random id or lookup collided (vanishingly rare): draw again.
        if ((err as { code?: unknown }).code === 'conflict' && attempt < 3) continue;
        throw err;
      }
      this.#log.info({ gateway: id, site, lookup, expiresAt, by }, 'gateway created; activation code issued');
      return { gateway: id, site, activationCode: code, expiresAt };
    }
  }

  /** Redeem a code: bind the submitted public key to the code's gateway. See the file header for the format. */
  async activate(body: Record<string, unknown>, clientIp: string): Promise<{ gateway: string; site: string }> {
    try {
      return await this.#activate(body, clientIp);
    } catch (err) {
      if (err instanceof ApiError) {
        this.#log.warn({ reason: err.reason, ip: clientIp }, `gateway activation refused: ${err.message}`);
      }
      throw err;
    }
  }

  async #activate(body: Record<string, unknown>, clientIp: string): Promise<{ gateway: string; site: string }> {
    for (const [limiter, key, who] of [
      [this.#perIp, clientIp, 'from this address'],
      [this.#global, '*', 'in total'],
    ] as const) {
      const d = limiter.take(key);
      if (!d.ok) {
        throw new ApiError(429, 'rate_limited', `too many activation attempts ${who}; retry in ${d.retryAfterS} s`, {
          reason: 'rate_limited',
          retryAfterS: d.retryAfterS,
        });
      }
    }
    for (const field of Object.keys(body)) {
      if (!['code', 'publicKey', 'proof', 'site'].includes(field)) {
        throw new ApiError(400, 'bad_message', `unknown field "${field.slice(0, 40)}"`);
      }
    }
    const { code, site } = body;
    if (typeof code !== 'string') throw new ApiError(400, 'bad_message', 'code is required (a string)');
    if (site !== undefined && !isId(site)) throw new ApiError(400, 'bad_message', 'site must be a site id');
    const parsed = parseActivationCode(code);
    if (!parsed) throw this.#invalidCode('malformed_code');
    const key = await parseGatewayJwk(body.publicKey);
    await verifyProof(body.proof, key.key, key.alg, code);

    const record = await this.#registry.getActivation(parsed.lookup);
    const now = this.#clock.now();
    if (!record) throw this.#invalidCode('unknown_code');
    if (record.used) throw new ApiError(409, 'conflict', 'this activation code was already used', { reason: 'used' });
    if (record.expiresAt <= now) {
      throw new ApiError(401, 'token_expired', 'this activation code has expired; ask an administrator for a new one', {
        reason: 'expired',
      });
    }
    if (record.failures >= this.#maxFailures) throw this.#locked();

    const expected = Buffer.from(record.hash, 'base64url');
    const actual = await this.#hash(parsed.secret, Buffer.from(record.salt, 'base64url'));
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
      const failures = await this.#registry.recordFailure(parsed.lookup);
      if (failures >= this.#maxFailures) throw this.#locked();
      throw this.#invalidCode('wrong_secret');
    }
    if (site !== undefined && site !== record.site) {
      throw new ApiError(403, 'forbidden', 'this activation code belongs to another site', { reason: 'site_mismatch' });
    }

    const thumbprint = await calculateJwkThumbprint(key.jwk, 'sha256');
    const result = await this.#registry.activate(
      parsed.lookup,
      { publicKey: key.jwk, thumbprint },
      now,
      this.#maxFailures,
    );
    if (!result.ok) {
      switch (result.reason) {
        case 'used':
          throw new ApiError(409, 'conflict', 'this activation code was already used', { reason: 'used' });
        case 'expired':
          throw new ApiError(401, 'token_expired', 'this activation code has expired', { reason: 'expired' });
        case 'locked':
          throw this.#locked();
        case 'revoked':
          throw new ApiError(403, 'revoked', 'this gateway was revoked before activation', { reason: 'revoked' });
        default:
          throw this.#invalidCode('unknown_code');
      }
    }
    const g = result.gateway;
    this.#log.info({ gateway: g.id, site: g.site, thumbprint, ip: clientIp }, 'gateway activated');
    return { gateway: g.id, site: g.site };
  }

  #invalidCode(reason: string): ApiError {
    return new ApiError(401, 'unauthenticated', 'activation code is not valid; check it or ask for a new one', {
      reason,
    });
  }

  #locked(): ApiError {
    return new ApiError(
      403,
      'forbidden',
      'activation code locked after too many wrong attempts; ask an administrator for a new one',
      { reason: 'locked' },
    );
  }
}
