/**
 * Frame codecs for the two v1 subprotocols.
 *
 * `scanrelay.v1.json` — one JSON object per text frame.
 * `scanrelay.v1.msgpack` — one msgpack map per binary frame, decoded by a hardened msgpackr: no records, no
 * structured clone, every extension type refused, 64-bit integers as strings (which the schemas then reject),
 * one message per frame (trailing bytes refused), size checked before decoding. Decoder error text is never
 * passed on: it can contain decoded bytes.
 */
import { addExtension, Packr, Unpackr } from 'msgpackr';
import { ProtocolError } from './codes.js';
import type { AnyMessage } from './messages.js';

export type Codec = 'json' | 'msgpack';

export const SUBPROTOCOLS: Readonly<Record<Codec, string>> = Object.freeze({
  json: 'scanrelay.v1.json',
  msgpack: 'scanrelay.v1.msgpack',
});

/** The codec a negotiated subprotocol stands for, or undefined if it is not one of ours. */
export function codecForSubprotocol(name: string | undefined | null): Codec | undefined {
  if (name === SUBPROTOCOLS.json) return 'json';
  if (name === SUBPROTOCOLS.msgpack) return 'msgpack';
  return undefined;
}

/**
 * Pick the subprotocol to answer an upgrade with: msgpack if offered, else JSON, else none. Only ever returns
 * one of our fixed names, never an echo of the client's text.
 */
export function chooseSubprotocol(offered: Iterable<string>): string | undefined {
  let json = false;
  for (const raw of offered) {
    const name = raw.trim();
    if (name === SUBPROTOCOLS.msgpack) return SUBPROTOCOLS.msgpack;
    if (name === SUBPROTOCOLS.json) json = true;
  }
  return json ? SUBPROTOCOLS.json : undefined;
}

// msgpackr keeps its extension table process-wide. Every built-in extension (undefined 0x00, BigInt 0x42,
// Error 0x65, 0x69/0x70 references, Set 0x73, typed arrays 0x74, RegExp 0x78, 0x62, Date 0xff) and the
// record-definition marker are replaced by one that refuses, so no decoder in a process that loads the
// protocol can produce them. Packing of those types is not needed by v1.
class RefusedExtension extends Error {}
const REFUSED_TYPES = [0x00, 0x42, 0x62, 0x65, 0x69, 0x70, 0x73, 0x74, 0x78, 0xff];
for (const type of REFUSED_TYPES) {
  addExtension({
    type,
    unpack() {
      throw new RefusedExtension();
    },
  } as unknown as Parameters<typeof addExtension>[0]);
}

const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  structuredClone: false,
  moreTypes: false,
  sequential: false,
  int64AsType: 'string',
  copyBuffers: true,
} as ConstructorParameters<typeof Unpackr>[0]);

const packr = new Packr({
  useRecords: false,
  structuredClone: false,
  moreTypes: false,
  encodeUndefinedAsNil: false,
  variableMapSize: true,
} as ConstructorParameters<typeof Packr>[0]);

interface TextDecoderLike {
  decode(input: Uint8Array): string;
}
const TextDecoderCtor = (
  globalThis as unknown as { TextDecoder: new (label?: string, opts?: { fatal?: boolean }) => TextDecoderLike }
).TextDecoder;
const utf8 = new TextDecoderCtor('utf-8', { fatal: true });

interface TextEncoderLike {
  encode(input: string): Uint8Array;
}
const TextEncoderCtor = (globalThis as unknown as { TextEncoder: new () => TextEncoderLike }).TextEncoder;
const utf8Encoder = new TextEncoderCtor();

/** Byte length of a string as UTF-8, without allocating for pure ASCII text. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

export function utf8Encode(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/**
 * Decode one frame into an untyped value (validate it with `validateMessage` next).
 *
 * @param data the frame payload: a string or bytes for JSON text frames, bytes for msgpack binary frames
 * @param isBinary whether the frame was binary; must match the codec
 * @param maxBytes frames larger than this are refused with `too_large` before decoding
 * @throws ProtocolError `too_large` or `bad_message`
 */
export function decodeFrame(codec: Codec, data: string | Uint8Array, isBinary: boolean, maxBytes: number): unknown {
  const size = typeof data === 'string' ? utf8Length(data) : data.byteLength;
  if (size > maxBytes)
    throw new ProtocolError('too_large', `frame of ${size} bytes exceeds the ${maxBytes}-byte limit`);
  if (codec === 'json') {
    if (isBinary) throw new ProtocolError('bad_message', 'binary frame received where scanrelay.v1.json needs text');
    let text: string;
    try {
      text = typeof data === 'string' ? data : utf8.decode(data);
    } catch {
      throw new ProtocolError('bad_message', 'text frame is not valid UTF-8');
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new ProtocolError('bad_message', 'frame is not valid JSON');
    }
  }
  if (!isBinary || typeof data === 'string')
    throw new ProtocolError('bad_message', 'text frame received where scanrelay.v1.msgpack needs binary');
  if (size === 0) throw new ProtocolError('bad_message', 'empty frame');
  try {
    // Non-sequential unpack refuses trailing bytes ("end of buffer not reached"), and record definitions
    // made inside a frame are forgotten before the next one (the structure table is reset per read).
    return unpackr.unpack(data as Parameters<Unpackr['unpack']>[0]) as unknown;
  } catch (err) {
    if (err instanceof RefusedExtension)
      throw new ProtocolError('bad_message', 'msgpack extension types are not allowed');
    throw new ProtocolError('bad_message', 'frame is not valid msgpack (or has trailing bytes)');
  }
}

/** Encode a message for a codec: a string for JSON (send as text), bytes for msgpack (send as binary). */
export function encodeMessage(codec: Codec, message: AnyMessage | Record<string, unknown>): string | Uint8Array {
  if (codec === 'json') return JSON.stringify(message);
  return packr.pack(message);
}
