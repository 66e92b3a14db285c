/**
 * A JSON document kept in one file of the state directory, replaced atomically (temp file, fsync, rename,
 * fsync of the directory) so a crash leaves the old or the new version, never a torn one. Files are 0600,
 * the directory 0700: they hold patient details for the day's worklist.
 */
import { constants } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DicomError } from './errors.js';

/** Create `dir` if needed and make it private to the agent's user. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Write `data` to `path` atomically with mode 0600. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/**
 * One JSON state document. `save()` calls are serialised, so the last state written is the last one saved.
 */
export class JsonStateFile<T> {
  private chain: Promise<void> = Promise.resolve();
  constructor(
    readonly path: string,
    private readonly validate: (value: unknown) => T,
  ) {}

  /** Read the document; `undefined` when the file does not exist yet. */
  async load(): Promise<T | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new DicomError('dicom_state_io', `cannot read ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      return this.validate(JSON.parse(text));
    } catch (err) {
      throw new DicomError(
        'dicom_state_io',
        `${this.path} is not a valid state file (${(err as Error).message}); move it aside and restart — ` +
          'the worklist must then be sent again from the manage app',
        { cause: err },
      );
    }
  }

  /** Persist `value` (a snapshot is taken now, the write happens in order after earlier saves). */
  save(value: T): Promise<void> {
    const text = JSON.stringify(value);
    const next = this.chain.then(() => writeFileAtomic(this.path, text));
    this.chain = next.catch(() => undefined);
    return next.catch((err: unknown) => {
      throw new DicomError('dicom_state_io', `cannot write ${this.path}: ${(err as Error).message}`, { cause: err });
    });
  }
}
