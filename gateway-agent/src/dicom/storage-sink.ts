/**
 * Streaming C-STORE to disk. dcmjs-dimse's default collects a received dataset in a memory stream (a
 * 300 MB tomosynthesis object would be 300 MB of heap); its `createStoreWritableStream` /
 * `createDatasetFromStoreWritableStream` hooks let the SCP hand it a file instead. `FileSink` writes a
 * DICOM Part 10 file (a zeroed preamble, file meta information, then the dataset bytes exactly as received) and
 * `readStoredHeader` parses only the first attributes back (up to the study/series ones), never the pixels.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { Writable } from 'node:stream';
import dimse from 'dcmjs-dimse';

export interface FileMeta {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  sourceAet: string;
}

/** The attributes read back from a stored object's header. */
export interface StoredHeader {
  StudyInstanceUID?: string;
  SeriesInstanceUID?: string;
  AccessionNumber?: string;
  SOPInstanceUID?: string;
  Modality?: string;
}

const IMPLEMENTATION_VERSION = 'SCANRELAY_1';

function element(group: number, elem: number, vr: string, value: Buffer): Buffer {
  const long = vr === 'OB';
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(elem, 2);
  head.write(vr, 4, 'ascii');
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

function text(value: string, pad: '\0' | ' '): Buffer {
  return Buffer.from(value.length % 2 === 0 ? value : value + pad, 'ascii');
}

/**
 * Preamble, `DICM` and the group 0002 elements (always explicit VR little endian, PS3.10 7.1). The preamble
 * is always 128 zero bytes (PS3.10 §7.5: never let a sender's polyglot preamble reach a stored file).
 */
export function encodeFileMeta(meta: FileMeta): Buffer {
  const body = Buffer.concat([
    element(0x0002, 0x0001, 'OB', Buffer.from([0, 1])),
    element(0x0002, 0x0002, 'UI', text(meta.sopClassUid, '\0')),
    element(0x0002, 0x0003, 'UI', text(meta.sopInstanceUid, '\0')),
    element(0x0002, 0x0010, 'UI', text(meta.transferSyntaxUid, '\0')),
    element(0x0002, 0x0012, 'UI', text(dimse.Implementation.getImplementationClassUid(), '\0')),
    element(0x0002, 0x0013, 'SH', text(IMPLEMENTATION_VERSION, ' ')),
    element(0x0002, 0x0016, 'AE', text(meta.sourceAet.slice(0, 16), ' ')),
  ]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(body.length, 0);
  const group = element(0x0002, 0x0000, 'UL', length);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'ascii'), group, body]);
}

/**
 * A Writable that puts one received object into a new file (mode 0600). Its buffer is 1 MiB (above
 * dcmjs-dimse's largest PDU), so the library's first write never waits; the SCP pauses the socket when the
 * sink asks for a drain.
 */
export class FileSink extends Writable {
  /** Dataset bytes written (without the file meta header). */
  bytes = 0;
  /** Set when writing failed; the C-STORE is then answered with a failure status. */
  failed: string | undefined;
  readonly datasetOffset: number;
  readonly transferSyntaxUid: string;
  private fh: FileHandle | undefined;
  private readonly meta: Buffer;

  constructor(
    readonly path: string,
    meta: FileMeta,
  ) {
    super({ highWaterMark: 1 << 20 });
    this.meta = encodeFileMeta(meta);
    this.datasetOffset = this.meta.length;
    this.transferSyntaxUid = meta.transferSyntaxUid;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.path, 'wx', 0o600)
      .then(async (fh) => {
        this.fh = fh;
        await fh.write(this.meta);
      })
      .then(() => callback(), callback);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.fh!.write(chunk).then(() => {
      this.bytes += chunk.length;
      callback();
    }, callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    this.fh!.writev(buffers).then((r) => {
      this.bytes += r.bytesWritten;
      callback();
    }, callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = undefined;
    if (!fh) {
      callback(error);
      return;
    }
    fh.close().then(
      () => callback(error),
      () => callback(error),
    );
  }

  /** Resolves once the file is complete and closed; rejects if writing failed. */
  done(): Promise<void> {
    return new Promise((resolve, reject) => {
      const settle = () => {
        const err = this.errored;
        if (err) reject(err);
        else if (!this.writableFinished) reject(new Error('the transfer ended before the object was complete'));
        else resolve();
      };
      if (this.closed) settle();
      else this.once('close', settle);
    });
  }
}

/** How much of a stored dataset is read to find the study/series attributes (they precede the pixels). */
const HEADER_READ_BYTES = 1 << 20;

/**
 * Parse the start of a stored object's dataset, stopping after group 0020's UIDs: StudyInstanceUID links
 * it to a worklist item (and AccessionNumber as a fallback).
 */
export async function readStoredHeader(path: string, offset: number, transferSyntaxUid: string): Promise<StoredHeader> {
  const fh = await open(path, 'r');
  let buf: Buffer;
  try {
    const chunk = Buffer.alloc(HEADER_READ_BYTES);
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, offset);
    buf = chunk.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const ds = new dimse.Dataset(buf, transferSyntaxUid, {
    ignoreErrors: true,
    untilTag: '00200010',
    stopOnGreaterTag: true,
  });
  const str = (k: string) => {
    const v = ds.getElement(k) as unknown;
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const header: StoredHeader = {};
  for (const k of ['StudyInstanceUID', 'SeriesInstanceUID', 'AccessionNumber', 'SOPInstanceUID', 'Modality'] as const) {
    const v = str(k);
    if (v !== undefined) header[k] = v;
  }
  return header;
}
