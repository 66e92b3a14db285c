/**
 * The manage app's public keys, pinned from a JWKS file the site operator installed out of band
 * (`SCANRELAY_GATEWAY_MANAGE_JWKS`). Nothing in a token (no `jku`, `x5u`, `jwk` header) ever adds a key.
 *
 * Rotation: the file is re-read whenever its inode, size or mtime changes (checked on every lookup — one
 * `stat`, commands are rare), so a key added during an overlap is accepted and a removed `kid` fails from the
 * next command on. A file that becomes unreadable or invalid fails CLOSED: every command is refused with
 * `keys_unavailable` until it is fixed. An empty key set is refused at start-up.
 *
 * Each key is imported bound to exactly one algorithm (its `alg`, or the only one its type allows), and looked
 * up by `kid` in a Map — never by indexing an object with attacker-controlled text.
 */
import { readFile, stat } from 'node:fs/promises';
import { type ManageAlgorithm, manageKeyAlgorithm } from '@scanrelay/protocol';
import { type CryptoKey, importJWK, type JWK, type KeyObject } from 'jose';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';

export type { ManageAlgorithm };

export interface PinnedKey {
  kid: string | undefined;
  alg: ManageAlgorithm;
  key: CryptoKey | KeyObject | Uint8Array;
}

/** Why a lookup failed: the kid is not pinned (a signature failure), or the key file is unusable. */
export class KeyLookupError extends Error {
  constructor(
    readonly reason: 'bad_signature' | 'keys_unavailable',
    message: string,
  ) {
    super(message);
    this.name = 'KeyLookupError';
  }
}

const MAX_JWKS_BYTES = 1024 * 1024;

/** Parse and import a JWKS document. Throws GatewayError('keys_invalid') naming the bad key. */
export async function importJwks(text: string, source: string): Promise<Map<string, PinnedKey>> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new GatewayError('keys_invalid', `${source} is not valid JSON: it must be a JWKS ({"keys": [...]})`);
  }
  const keys = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0)
    throw new GatewayError(
      'keys_invalid',
      `${source} holds no keys: it must be a JWKS ({"keys": [...]}) with the manage app's public signing keys`,
    );
  const out = new Map<string, PinnedKey>();
  for (const [i, raw] of keys.entries()) {
    const where = `${source} key #${i}`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new GatewayError('keys_invalid', `${where} is not an object`);
    const jwk = raw as JWK & Record<string, unknown>;
    // The one manage-key policy the relay applies too (@scanrelay/protocol keys.ts); pin only public keys.
    const verdict = manageKeyAlgorithm(jwk);
    if (!verdict.ok) throw new GatewayError('keys_invalid', `${where} refused: ${verdict.reason}`);
    const { alg } = verdict;
    const kid = jwk.kid;
    if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > 256))
      throw new GatewayError('keys_invalid', `${where} has an invalid kid`);
    if (kid === undefined && keys.length > 1)
      throw new GatewayError('keys_invalid', `${where} has no kid; with several keys each must have a distinct kid`);
    const mapKey = kid ?? '';
    if (out.has(mapKey)) throw new GatewayError('keys_invalid', `${where} repeats kid "${mapKey}"`);
    let key: PinnedKey['key'];
    try {
      key = await importJWK({ ...jwk, alg }, alg);
    } catch (err) {
      throw new GatewayError('keys_invalid', `${where} could not be imported as an ${alg} public key`, { cause: err });
    }
    out.set(mapKey, { kid, alg, key });
  }
  return out;
}

interface FileStamp {
  ino: number;
  size: number;
  mtimeMs: number;
}

/** The pinned key set, reloaded from its file when the file changes. */
export class PinnedKeys {
  private keys: Map<string, PinnedKey> | undefined;
  private stamp: FileStamp | undefined;
  private reloading: Promise<void> | undefined;

  private constructor(
    private readonly path: string,
    private readonly log: Logger,
  ) {}

  /** Load the key file; refuses (GatewayError `keys_invalid`) a missing, invalid or empty one. */
  static async open(path: string, logger: Logger): Promise<PinnedKeys> {
    const pinned = new PinnedKeys(path, logger);
    const stamp = await statStamp(path).catch((err: unknown) => {
      throw new GatewayError(
        'keys_invalid',
        `cannot read the manage app's key file ${path} (SCANRELAY_GATEWAY_MANAGE_JWKS): ${(err as Error).message}`,
      );
    });
    pinned.keys = await pinned.read(path);
    pinned.stamp = stamp;
    logger.info({ keys: [...pinned.keys.values()].map((k) => ({ kid: k.kid, alg: k.alg })) }, 'pinned manage-app keys');
    return pinned;
  }

  /** Number of keys currently pinned (0 while the file is unusable). */
  get count(): number {
    return this.keys?.size ?? 0;
  }

  /**
   * The key for a token's header. Re-reads the file first if it changed. Throws KeyLookupError:
   * `bad_signature` when no pinned key has that kid or its algorithm differs, `keys_unavailable` when the file
   * is unusable.
   */
  async resolve(kid: unknown, alg: unknown): Promise<PinnedKey> {
    await this.refresh();
    const keys = this.keys;
    if (!keys)
      throw new KeyLookupError(
        'keys_unavailable',
        "the gateway's pinned key file is unusable; the operator must fix it",
      );
    let entry: PinnedKey | undefined;
    if (kid === undefined) entry = keys.size === 1 ? keys.get('') : undefined;
    else if (typeof kid === 'string') entry = keys.get(kid);
    if (!entry) throw new KeyLookupError('bad_signature', 'signed by a key this gateway does not trust');
    if (entry.alg !== alg)
      throw new KeyLookupError('bad_signature', 'signed with an algorithm its pinned key is not bound to');
    return entry;
  }

  private async refresh(): Promise<void> {
    if (this.reloading) return this.reloading;
    let current: FileStamp | undefined;
    try {
      current = await statStamp(this.path);
    } catch {
      current = undefined;
    }
    if (sameStamp(current, this.stamp)) return;
    this.reloading = (async () => {
      try {
        if (!current) throw new GatewayError('keys_invalid', `${this.path} is missing`);
        const keys = await this.read(this.path);
        this.keys = keys;
        this.log.info(
          { keys: [...keys.values()].map((k) => ({ kid: k.kid, alg: k.alg })) },
          'manage-app key file changed; pinned keys reloaded',
        );
      } catch (err) {
        this.keys = undefined;
        this.log.error(
          { err: (err as Error).message },
          'manage-app key file is unusable: every command is refused until SCANRELAY_GATEWAY_MANAGE_JWKS is fixed',
        );
      } finally {
        this.stamp = current;
        this.reloading = undefined;
      }
    })();
    return this.reloading;
  }

  private async read(path: string): Promise<Map<string, PinnedKey>> {
    const buf = await readFile(path);
    if (buf.length > MAX_JWKS_BYTES) throw new GatewayError('keys_invalid', `${path} is larger than 1 MiB`);
    return importJwks(buf.toString('utf8'), path);
  }
}

async function statStamp(path: string): Promise<FileStamp> {
  const st = await stat(path);
  return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
}

function sameStamp(a: FileStamp | undefined, b: FileStamp | undefined): boolean {
  if (!a || !b) return a === b;
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}
