/**
 * Framing of protocol v1 over a byte stream (WebTransport bidirectional stream, or any reliable stream).
 *
 * WebSocket frames delimit messages for us; a stream does not. On a stream every message is
 *
 * ```
 * ┌──────────────────────┬──────────────────────────────┐
 * │ length: uint32 BE    │ payload: `length` bytes      │
 * └──────────────────────┴──────────────────────────────┘
 * ```
 *
 * and the first frame each side sends is the subprotocol name (UTF-8), standing in for
 * `Sec-WebSocket-Protocol`: the client sends the names it offers joined by `,`, the relay answers with the one
 * it chose (or closes the session with 4500 when none is acceptable). JSON payloads are UTF-8 text; msgpack
 * payloads are binary — the same envelopes as on WebSocket.
 *
 * The reader checks each length against the limit *before* buffering the payload, so an oversized frame costs
 * four bytes of memory, not its declared size.
 */
import { ProtocolError } from './codes.js';

/** Bytes of the length prefix. */
export const FRAME_HEADER_BYTES = 4;

/** Prefix one payload with its length. */
export function encodeStreamFrame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  const n = payload.byteLength;
  out[0] = (n >>> 24) & 0xff;
  out[1] = (n >>> 16) & 0xff;
  out[2] = (n >>> 8) & 0xff;
  out[3] = n & 0xff;
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Incremental reader of length-prefixed frames. Feed it chunks as they arrive; it returns every complete
 * payload. Throws `ProtocolError('too_large')` as soon as a header declares more than `maxBytes`.
 */
export class StreamFrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private expected = -1;

  constructor(private readonly maxBytes: number) {}

  /** Bytes held waiting for the rest of a frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    if (chunk.byteLength > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.byteLength;
    }
    const frames: Uint8Array[] = [];
    for (;;) {
      if (this.expected < 0) {
        if (this.buffered < FRAME_HEADER_BYTES) break;
        const head = this.take(FRAME_HEADER_BYTES);
        const length = ((head[0]! << 24) >>> 0) + (head[1]! << 16) + (head[2]! << 8) + head[3]!;
        if (length > this.maxBytes)
          throw new ProtocolError('too_large', `frame of ${length} bytes exceeds the ${this.maxBytes}-byte limit`);
        this.expected = length;
      }
      if (this.buffered < this.expected) break;
      frames.push(this.take(this.expected));
      this.expected = -1;
    }
    return frames;
  }

  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const first = this.chunks[0]!;
      const need = n - filled;
      if (first.byteLength <= need) {
        out.set(first, filled);
        filled += first.byteLength;
        this.chunks.shift();
      } else {
        out.set(first.subarray(0, need), filled);
        this.chunks[0] = first.subarray(need);
        filled += need;
      }
    }
    this.buffered -= n;
    return out;
  }
}
