/**
 * The embedded default Registry: one JSON file, `registry.json` in the data directory, loaded at start and
 * rewritten atomically after every change (write `registry.json.<random>.tmp` with mode 0600, fsync it,
 * rename it over the old file, fsync the directory), so a crash leaves either the old or the new file, never
 * a torn one. The file holds public keys and scrypt hashes only: never a secret or a private key.
 *
 * Only one relay process may use a data directory: this registry is not shared between processes (use the
 * Redis registry for several nodes).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ID_PATTERN } from '@scanrelay/protocol';
import type { Clock } from '../clock.js';
import { PortError } from './errors.js';
import { isTokenIdOk } from './ids.js';
import type { ActivationRecord, GatewayRecord } from './registry.js';
import { emptyRegistryState, MemoryRegistry, type RegistryState } from './registry-memory.js';

export const REGISTRY_FILE = 'registry.json';

interface RegistryFileV1 {
  version: 1;
  gateways: GatewayRecord[];
  activations: ActivationRecord[];
  revokedSessions: [string, number][];
}

export class FileRegistry extends MemoryRegistry {
  /** Absolute path of the registry file. */
  readonly path: string;

  private constructor(clock: Clock, path: string, initial: RegistryState, dir: string) {
    super(clock, initial, (state) => writeAtomically(dir, path, serialise(state, clock.now())));
    this.path = path;
  }

  /** Load (or create empty) the registry in `dataDir`. Throws `corrupt` if the file cannot be parsed. */
  static async open(dataDir: string, clock: Clock): Promise<FileRegistry> {
    try {
      await mkdir(dataDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new PortError(
        'unavailable',
        `cannot create data directory ${dataDir} (SCANRELAY_DATA_DIR): ${(err as Error).message}`,
        { cause: err },
      );
    }
    const path = join(dataDir, REGISTRY_FILE);
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new PortError('unavailable', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
      }
    }
    const state = text === undefined ? emptyRegistryState() : parse(text, path);
    return new FileRegistry(clock, path, state, dataDir);
  }
}

function serialise(state: RegistryState, now: number): string {
  const file: RegistryFileV1 = {
    version: 1,
    gateways: [...state.gateways.values()],
    activations: [...state.activations.values()],
    revokedSessions: [...state.revokedSessions].filter(([, until]) => until > now),
  };
  return `${JSON.stringify(file, null, 1)}\n`;
}

function parse(text: string, path: string): RegistryState {
  const fail = (what: string): never => {
    throw new PortError(
      'corrupt',
      `registry file ${path} is not valid (${what}); restore it from backup or move it aside to start empty`,
    );
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail('not JSON');
  }
  if (typeof raw !== 'object' || raw === null) return fail('not an object');
  const file = raw as Partial<RegistryFileV1>;
  if (file.version !== 1) return fail(`unknown version ${String(file.version)}`);
  if (!Array.isArray(file.gateways) || !Array.isArray(file.activations) || !Array.isArray(file.revokedSessions)) {
    return fail('missing gateways, activations or revokedSessions');
  }
  const state = emptyRegistryState();
  for (const g of file.gateways) {
    if (typeof g !== 'object' || g === null || !ID_PATTERN.test(String(g.id)) || !ID_PATTERN.test(String(g.site))) {
      return fail('a gateway entry has a bad id or site');
    }
    state.gateways.set(g.id, g);
  }
  for (const a of file.activations) {
    if (typeof a !== 'object' || a === null || !isTokenIdOk(a.lookup) || !ID_PATTERN.test(String(a.gateway))) {
      return fail('an activation entry has a bad lookup or gateway');
    }
    state.activations.set(a.lookup, a);
  }
  for (const entry of file.revokedSessions) {
    if (!Array.isArray(entry) || !isTokenIdOk(entry[0]) || typeof entry[1] !== 'number') {
      return fail('a revoked session entry is malformed');
    }
    state.revokedSessions.set(entry[0], entry[1]);
  }
  return state;
}

async function writeAtomically(dir: string, path: string, content: string): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    // fsync the directory so the rename itself survives a power cut.
    const dirHandle = await open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw new PortError(
      'unavailable',
      `cannot write registry file ${path} (check SCANRELAY_DATA_DIR is writable and not full): ${(err as Error).message}`,
      { cause: err },
    );
  }
}
