/**
 * Small durability helpers: private directories, fsync of directories, atomic file replacement.
 *
 * POSIX only guarantees a new or renamed file survives a crash once its directory has been fsync'd too, so
 * every create/rename here is followed by `fsyncDir`.
 */
import { constants } from 'node:fs';
import { chmod, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { GatewayError } from '../errors.js';

/** fsync a directory so that entries created, renamed or removed in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Create `dir` (and parents) if needed and make it readable by its owner only (0700). Refuses a directory
 * owned by another user: the state dir holds the gateway's private key and patient-related events.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await stat(dir);
  if (!st.isDirectory()) throw new GatewayError('state_dir_unsafe', `${dir} exists and is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw new GatewayError(
      'state_dir_unsafe',
      `${dir} is owned by uid ${st.uid}, not by the agent's uid ${uid}: chown it to the agent's user`,
    );
  if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
}

/**
 * Replace `path` atomically with `data`: write a temporary file, fsync it, rename it over `path`, fsync the
 * directory. A crash leaves either the old or the new content, never a mix.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}
