/**
 * Append-only journal files shared by the outbox and the replay guard.
 *
 * Format: one record per line, `<crc32 of the JSON, 8 hex digits> <JSON>\n`, UTF-8. The checksum catches
 * a torn or garbled line; the newline marks a complete record. Recovery after a crash (kill -9, power loss):
 * a last line without its newline, or whose checksum does not match, is a torn write — it is cut off (the
 * file is truncated to the last good record) and start-up continues. A bad line in the middle of a file is
 * skipped and reported, never fatal.
 *
 * Appends are group-committed: records queued while a write+fdatasync is in flight go out together in the
 * next one, so many concurrent appenders cost one fsync per batch, and each append resolves only once its
 * record is on disk.
 */

import { type FileHandle, open, readFile, truncate } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

export function encodeRecord(value: unknown): string {
  const json = JSON.stringify(value);
  return `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
}

export interface ReadResult {
  /** Parsed records, in file order. */
  records: unknown[];
  /** Byte length of the good prefix of the file. */
  validBytes: number;
  /** Bytes cut off the end (torn last write). */
  tornBytes: number;
  /** Complete lines in the middle that failed their checksum or did not parse (skipped). */
  corruptLines: number;
}

/** Parse a journal's bytes. Does not touch the file; see `recoverJournal`. */
export function parseJournal(buf: Uint8Array): ReadResult {
  const records: unknown[] = [];
  let corruptLines = 0;
  let pos = 0;
  let validBytes = 0;
  const text = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  while (pos < text.length) {
    const nl = text.indexOf(0x0a, pos);
    if (nl === -1) break; // no newline: a torn last write
    const line = text.toString('utf8', pos, nl);
    const parsed = parseLine(line);
    const next = nl + 1;
    if (parsed.ok) {
      records.push(parsed.value);
      validBytes = next;
    } else if (next >= text.length) {
      // A complete but bad last line is also a torn write (e.g. the disk kept a garbage tail): cut it.
      break;
    } else {
      corruptLines++;
      validBytes = next;
    }
    pos = next;
  }
  return { records, validBytes, tornBytes: text.length - validBytes, corruptLines };
}

function parseLine(line: string): { ok: true; value: unknown } | { ok: false } {
  if (line.length < 10 || line[8] !== ' ') return { ok: false };
  const json = line.slice(9);
  const sum = Number.parseInt(line.slice(0, 8), 16);
  if (!/^[0-9a-f]{8}$/.test(line.slice(0, 8)) || crc32(json) !== sum) return { ok: false };
  try {
    return { ok: true, value: JSON.parse(json) as unknown };
  } catch {
    return { ok: false };
  }
}

/** Read a journal file and cut off a torn tail, durably. A missing file reads as empty. */
export async function recoverJournal(path: string): Promise<ReadResult> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { records: [], validBytes: 0, tornBytes: 0, corruptLines: 0 };
    throw err;
  }
  const result = parseJournal(buf);
  if (result.tornBytes > 0) {
    await truncate(path, result.validBytes);
    const fh = await open(path, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  return result;
}

/** An append-only file opened for durable appends. */
export class AppendFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private bytes: number,
  ) {}

  /** Open (creating, mode 0600) for appending. */
  static async open(path: string): Promise<AppendFile> {
    const fh = await open(path, 'a', 0o600);
    const st = await fh.stat();
    return new AppendFile(path, fh, st.size);
  }

  /** Current size in bytes. */
  get size(): number {
    return this.bytes;
  }

  /** Append `text` and fdatasync before resolving. */
  async appendDurably(text: string): Promise<void> {
    const data = Buffer.from(text, 'utf8');
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await this.fh.write(data, off, data.length - off);
      off += bytesWritten;
    }
    await this.fh.datasync();
    this.bytes += data.length;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/**
 * Batches concurrent submissions into one flush. `flush(batch)` runs one at a time; each `submit` resolves
 * when the flush that carried its item succeeded, or rejects with that flush's error.
 */
export class GroupCommit<T> {
  private queue: { item: T; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private running = false;

  constructor(private readonly flush: (batch: T[]) => Promise<void>) {}

  submit(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  /** Resolves once everything submitted so far has been flushed (or failed). */
  async drain(): Promise<void> {
    while (this.running || this.queue.length > 0) await new Promise<void>((r) => setImmediate(r));
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0);
        try {
          await this.flush(batch.map((b) => b.item));
          for (const b of batch) b.resolve();
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
