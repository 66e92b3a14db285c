/**
 * The manage app's public keys (its JWKS), pinned by the relay.
 *
 * Source: `SCANRELAY_MANAGE_JWKS` — a file path (re-read when it changes: checked every `fileCheckMs` and on an
 * unknown `kid`) or an https URL (fetched with a timeout and a size cap, refreshed every `refreshMs`, on an
 * unknown `kid` at most once per `minRefreshMs`, with exponential backoff after failures). Plain `http://` is
 * refused except on loopback, which only tests use.
 *
 * Each key is imported bound to exactly one algorithm (its JWK `alg`, or the only one its type allows) and held in
 * a `Map` keyed by issuer, then `kid`. A token's header only ever selects a key by `kid` from that Map: `jku`,
 * `x5u`, `x5c` and `jwk` are never read. Keys with private parts, symmetric keys, RSA keys under 2048 bits,
 * keys without a `kid`, duplicate `kid`s and algorithms outside MANAGE_ALGORITHMS are skipped with a warning.
 *
 * A reload that fails or yields no usable key keeps the previous set (a half-written file must not lock every
 * user out) and logs an error; only start-up refuses an empty set.
 */
import { readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type ManageAlgorithm, manageKeyAlgorithm } from '@scanrelay/protocol';
import { type CryptoKey, importJWK, type JWK } from 'jose';
import type { Logger } from 'pino';
import type { Clock, Timer } from '../clock.js';

export type { ManageAlgorithm };

/** One pinned key. */
export interface PinnedKey {
  kid: string;
  alg: ManageAlgorithm;
  key: CryptoKey;
}

/** Start-up problem with the auth configuration: the message names the setting and the fix. */
export class AuthConfigError extends Error {
  readonly code = 'invalid_config' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuthConfigError';
  }
}

export interface ManageKeysOptions {
  /** File path, `file:` URL or https URL (`SCANRELAY_MANAGE_JWKS`). */
  source: string;
  /** The manage app's issuer (`SCANRELAY_MANAGE_ISSUER`); keys are pinned to it. */
  issuer: string;
  clock: Clock;
  logger: Logger;
  fetch?: typeof fetch;
  /** URL source: periodic refresh. Default 5 min. */
  refreshMs?: number;
  /** Least time between two refreshes triggered by unknown `kid`s. Default 30 s (URL), 1 s (file). */
  minRefreshMs?: number;
  /** File source: how often to check whether the file changed. Default 5 s. */
  fileCheckMs?: number;
  /** URL source: fetch timeout. Default 5 s. */
  timeoutMs?: number;
}

const SETTING = 'SCANRELAY_MANAGE_JWKS';
const MAX_JWKS_BYTES = 256 * 1024;
const MAX_KEYS = 100;
const MAX_BACKOFF_MS = 5 * 60_000;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

type Source = { kind: 'file'; path: string } | { kind: 'url'; url: URL };

function parseSource(source: string): Source {
  if (source.trim() === '') {
    throw new AuthConfigError(`${SETTING} is empty: set it to the manage app's JWKS file path or https URL`);
  }
  if (source.startsWith('file:')) return { kind: 'file', path: fileURLToPath(source) };
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) return { kind: 'file', path: source };
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    throw new AuthConfigError(`${SETTING} is not a valid URL or file path: give an https URL or a file path`);
  }
  if (url.protocol === 'https:') return { kind: 'url', url };
  if (url.protocol === 'http:' && (LOOPBACK_HOSTS.has(url.hostname) || isLoopbackIp(url.hostname))) {
    return { kind: 'url', url };
  }
  throw new AuthConfigError(
    `${SETTING} must be an https URL or a file path (got ${url.protocol}//${url.host}): keys fetched over plain ` +
      'http could be replaced in transit',
  );
}

function isLoopbackIp(host: string): boolean {
  return isIP(host) === 4 && host.startsWith('127.');
}

function publicMembers(jwk: Record<string, unknown>): JWK {
  const out: JWK = {};
  for (const name of ['kty', 'crv', 'x', 'y', 'n', 'e'] as const) {
    if (typeof jwk[name] === 'string') out[name] = jwk[name] as string;
  }
  return out;
}

/** Parse and import a JWKS document. Returns the usable keys and a warning per skipped one. */
export async function importJwks(doc: unknown): Promise<{ keys: Map<string, PinnedKey>; skipped: string[] }> {
  const keys = new Map<string, PinnedKey>();
  const skipped: string[] = [];
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    throw new Error('not a JWKS document (expected {"keys": [...]})');
  }
  const list = (doc as { keys: unknown[] }).keys;
  if (list.length > MAX_KEYS) throw new Error(`holds ${list.length} keys (at most ${MAX_KEYS})`);
  const duplicates = new Set<string>();
  for (const [i, raw] of list.entries()) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      skipped.push(`key #${i} is not an object`);
      continue;
    }
    const jwk = raw as Record<string, unknown>;
    const kid = jwk.kid;
    if (typeof kid !== 'string' || kid.length === 0 || kid.length > 256) {
      skipped.push(`key #${i} has no usable "kid" (tokens select keys by kid)`);
      continue;
    }
    const label = `key ${JSON.stringify(kid)}`;
    if (keys.has(kid) || duplicates.has(kid)) {
      // Two keys under one kid: neither can be chosen safely.
      keys.delete(kid);
      duplicates.add(kid);
      skipped.push(`${label} appears more than once; both copies ignored`);
      continue;
    }
    const verdict = manageKeyAlgorithm(jwk);
    if (!verdict.ok) {
      skipped.push(`${label} ignored: ${verdict.reason}`);
      continue;
    }
    const { alg } = verdict;
    try {
      const key = await importJWK(publicMembers(jwk), alg);
      keys.set(kid, { kid, alg, key: key as CryptoKey });
    } catch (err) {
      skipped.push(`${label} ignored: cannot import (${(err as Error).message})`);
    }
  }
  return { keys, skipped };
}

/** The pinned key set with its reload policy. */
export class ManageKeys {
  readonly #opts: ManageKeysOptions;
  readonly #source: Source;
  readonly #log: Logger;
  /** issuer → kid → key. Replaced as a whole on every successful reload. */
  #byIssuer = new Map<string, Map<string, PinnedKey>>();
  #fileStamp = '';
  #lastAttempt = Number.NEGATIVE_INFINITY;
  #failures = 0;
  #nextAllowed = 0;
  #inFlight: Promise<void> | undefined;
  #timer: Timer | undefined;

  private constructor(opts: ManageKeysOptions, source: Source) {
    this.#opts = opts;
    this.#source = source;
    this.#log = opts.logger.child({ component: 'manage-jwks' });
  }

  /** Load the key set; throws AuthConfigError if it cannot be read or holds no usable key. */
  static async open(opts: ManageKeysOptions): Promise<ManageKeys> {
    const source = parseSource(opts.source);
    const keys = new ManageKeys(opts, source);
    const where = source.kind === 'file' ? source.path : source.url.href;
    let loaded: Map<string, PinnedKey>;
    keys.#lastAttempt = opts.clock.now();
    try {
      loaded = (await keys.#load(true)) ?? new Map();
    } catch (err) {
      throw new AuthConfigError(
        `${SETTING}: cannot load the manage app's keys from ${where}: ${(err as Error).message}. ` +
          'Point it at a readable JWKS file or a reachable https URL.',
        { cause: err },
      );
    }
    if (loaded.size === 0) {
      throw new AuthConfigError(
        `${SETTING}: ${where} holds no usable signing key (need public ES256, EdDSA, RS256 or PS256 keys, ` +
          'each with a kid). The relay refuses to start without keys to verify tokens.',
      );
    }
    keys.#install(loaded);
    const period = source.kind === 'file' ? (opts.fileCheckMs ?? 5_000) : Math.max(opts.refreshMs ?? 5 * 60_000, 1_000);
    keys.#timer = opts.clock.setInterval(() => {
      void keys.#refresh(source.kind === 'file').catch(() => {});
    }, period);
    return keys;
  }

  /** Number of pinned keys. */
  get size(): number {
    return this.#byIssuer.get(this.#opts.issuer)?.size ?? 0;
  }

  /** The key pinned for (issuer, kid), if any. Never reloads. */
  get(issuer: string, kid: string): PinnedKey | undefined {
    return this.#byIssuer.get(issuer)?.get(kid);
  }

  /**
   * The key for (issuer, kid); on a miss, reload (rate-limited: a flood of made-up kids costs at most one
   * reload per `minRefreshMs`) and look again — this is how a newly rotated-in key is picked up at once.
   */
  async resolve(issuer: string, kid: string): Promise<PinnedKey | undefined> {
    const hit = this.get(issuer, kid);
    if (hit || issuer !== this.#opts.issuer) return hit;
    const now = this.#opts.clock.now();
    const min = this.#opts.minRefreshMs ?? (this.#source.kind === 'file' ? 1_000 : 30_000);
    if (this.#inFlight || (now - this.#lastAttempt >= min && now >= this.#nextAllowed)) {
      await this.#refresh(false).catch(() => {});
    }
    return this.get(issuer, kid);
  }

  /** Reload now (joins a reload already under way). Resolves with the number of pinned keys. */
  async refresh(): Promise<number> {
    await this.#refresh(false).catch(() => {});
    return this.size;
  }

  close(): void {
    if (this.#timer !== undefined) this.#opts.clock.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #refresh(onlyIfChanged: boolean): Promise<void> {
    if (this.#inFlight) return this.#inFlight;
    if (this.#source.kind === 'url' && this.#opts.clock.now() < this.#nextAllowed) return Promise.resolve();
    this.#lastAttempt = this.#opts.clock.now();
    const run = (async () => {
      try {
        const loaded = await this.#load(!onlyIfChanged);
        if (loaded === undefined) return;
        if (loaded.size === 0) {
          this.#log.error(
            `the manage app's key set now holds no usable key; keeping the ${this.size} previous key(s). Fix ${SETTING}.`,
          );
          return;
        }
        this.#failures = 0;
        this.#nextAllowed = 0;
        this.#install(loaded);
      } catch (err) {
        this.#failures += 1;
        const backoff = Math.min(MAX_BACKOFF_MS, 1_000 * 2 ** Math.min(this.#failures, 12));
        this.#nextAllowed = this.#opts.clock.now() + backoff;
        this.#log.error(
          { err: (err as Error).message, retryInMs: backoff, keys: this.size },
          `cannot reload the manage app's keys (${SETTING}); keeping the previous set`,
        );
        throw err;
      } finally {
        this.#inFlight = undefined;
      }
    })();
    this.#inFlight = run;
    return run;
  }

  /** Read and import the set; `undefined` when a file is unchanged and `force` is false. */
  async #load(force: boolean): Promise<Map<string, PinnedKey> | undefined> {
    let text: string;
    if (this.#source.kind === 'file') {
      const st = await stat(this.#source.path);
      const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (!force && stamp === this.#fileStamp) return undefined;
      if (st.size > MAX_JWKS_BYTES) throw new Error(`file is ${st.size} bytes (at most ${MAX_JWKS_BYTES})`);
      text = await readFile(this.#source.path, 'utf8');
      this.#fileStamp = stamp;
    } else {
      text = await this.#fetch(this.#source.url);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new Error('not valid JSON');
    }
    const { keys, skipped } = await importJwks(doc);
    for (const why of skipped) this.#log.warn(`manage app JWKS: ${why}`);
    return keys;
  }

  async #fetch(url: URL): Promise<string> {
    const doFetch = this.#opts.fetch ?? fetch;
    const res = await doFetch(url, {
      redirect: 'error',
      headers: { accept: 'application/jwk-set+json, application/json' },
      signal: AbortSignal.timeout(this.#opts.timeoutMs ?? 5_000),
    });
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new Error(`HTTP ${res.status}`);
    }
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > MAX_JWKS_BYTES) {
      await res.body?.cancel().catch(() => {});
      throw new Error(`response is ${declared} bytes (at most ${MAX_JWKS_BYTES})`);
    }
    if (!res.body) return '';
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > MAX_JWKS_BYTES) {
        await reader.cancel().catch(() => {});
        throw new Error(`response exceeds ${MAX_JWKS_BYTES} bytes`);
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  #install(keys: Map<string, PinnedKey>): void {
    const before = this.#byIssuer.get(this.#opts.issuer);
    const added = [...keys.keys()].filter((k) => !before?.has(k));
    const removed = before ? [...before.keys()].filter((k) => !keys.has(k)) : [];
    this.#byIssuer = new Map([[this.#opts.issuer, keys]]);
    if (before === undefined || added.length > 0 || removed.length > 0) {
      this.#log.info({ kids: [...keys.keys()], added, removed }, "manage app's signing keys loaded");
    }
  }
}
