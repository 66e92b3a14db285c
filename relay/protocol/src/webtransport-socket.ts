/**
 * A WebSocket-shaped client over WebTransport, so clients written against the WebSocket API (the web client,
 * the gateway agent) can use WebTransport by swapping the constructor they are given.
 *
 * It speaks the relay's WebTransport mapping (see `framing.ts`): one bidirectional stream, length-prefixed
 * frames, the subprotocol offer as the first frame and the relay's choice as the first frame back. Close codes
 * and reasons travel in the session's close info, so `onclose` sees the same codes a WebSocket would.
 *
 * Works with the browser's native `WebTransport` and with any implementation of the same API (in Node:
 * `@fails-components/webtransport`'s `WebTransport`, with `forceReliable` for its HTTP/2 transport).
 *
 * ```ts
 * const Socket = webTransportSocketClass(globalThis.WebTransport);
 * const ws = new Socket('https://relay.example:4433/v1/browser', ['scanrelay.v1.msgpack']);
 * ```
 */
import { encodeStreamFrame, StreamFrameReader } from './framing.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from './limits.js';

/** The parts of the W3C WebTransport API this wrapper uses. */
export interface WebTransportLike {
  readonly ready: Promise<unknown>;
  readonly closed: Promise<{ closeCode?: number; reason?: string }>;
  createBidirectionalStream(): Promise<{
    readable: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }> } };
    writable: { getWriter(): { write(chunk: Uint8Array): Promise<void>; close(): Promise<void> } };
  }>;
  close(info?: { closeCode?: number; reason?: string }): void;
}

export type WebTransportConstructor = new (url: string, options?: Record<string, unknown>) => WebTransportLike;

export interface SocketMessageEvent {
  type: 'message';
  data: string | ArrayBuffer;
}
export interface SocketCloseEvent {
  type: 'close';
  code: number;
  reason: string;
  wasClean: boolean;
}
export interface SocketEvent {
  type: 'open' | 'error';
  error?: unknown;
}
type AnySocketEvent = SocketMessageEvent | SocketCloseEvent | SocketEvent;
type Listener = (event: never) => void;

/** Longest a session close waits for the stream reader to deliver what had already arrived, ms. */
const CLOSE_GRACE_MS = 1000;

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

interface Decoder {
  decode(input: Uint8Array): string;
}
interface Encoder {
  encode(input: string): Uint8Array;
}
const g = globalThis as unknown as {
  TextDecoder: new (label?: string, o?: { fatal?: boolean }) => Decoder;
  TextEncoder: new () => Encoder;
  setTimeout(fn: () => void, ms: number): unknown;
};
const utf8 = new g.TextDecoder('utf-8', { fatal: true });
const enc = new g.TextEncoder();

/**
 * Make a WebSocket-compatible class bound to a WebTransport implementation and its connection options
 * (e.g. `{ serverCertificateHashes, forceReliable: true }` for Node), constructible as `new C(url, protocols)`.
 */
export function webTransportSocketClass(
  Impl: WebTransportConstructor,
  transportOptions: Record<string, unknown> = {},
): WebTransportSocketClass {
  return class extends WebTransportSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, Impl, transportOptions);
    }
  };
}

/** A WebSocket-shaped connection over one WebTransport session. See {@link webTransportSocketClass}. */
export class WebTransportSocket {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSING = CLOSING;
  readonly CLOSED = CLOSED;

  readyState = CONNECTING;
  /** The subprotocol the relay chose (empty until open). */
  protocol = '';
  binaryType: 'arraybuffer' | 'blob' | 'nodebuffer' = 'arraybuffer';
  readonly url: string;
  bufferedAmount = 0;
  onopen: ((e: SocketEvent) => void) | null = null;
  onmessage: ((e: SocketMessageEvent) => void) | null = null;
  onclose: ((e: SocketCloseEvent) => void) | null = null;
  onerror: ((e: SocketEvent) => void) | null = null;

  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly transport: WebTransportLike;
  private writer: { write(chunk: Uint8Array): Promise<void>; close(): Promise<void> } | undefined;
  private closeSent = false;
  private closeFired = false;

  constructor(
    url: string,
    protocols: string | string[] | undefined,
    Impl: WebTransportConstructor,
    transportOptions: Record<string, unknown> = {},
  ) {
    this.url = url;
    const offer = (Array.isArray(protocols) ? protocols : protocols ? [protocols] : []).join(',');
    this.transport = new Impl(url, transportOptions);
    let sessionClosed = false;
    const closeInfo = this.transport.closed.then(
      (info) => ({ code: info?.closeCode ?? 1005, reason: info?.reason ?? '', clean: true }),
      () => ({ code: 1006, reason: '', clean: false }),
    );
    // `close` fires only after the stream reader is done, so every frame that arrived before the session's
    // close info is delivered first (as on a WebSocket, where the close frame queues behind the data) — but
    // it never waits on a reader that does not finish (an implementation that leaves its stream hanging after
    // the session closed): the close is reported at the latest CLOSE_GRACE_MS after the close info.
    void closeInfo.then((i) => {
      sessionClosed = true;
      g.setTimeout(() => this.fireClose(i.code, i.reason, i.clean), CLOSE_GRACE_MS);
    });
    this.start(offer).then(
      () => closeInfo.then((i) => this.fireClose(i.code, i.reason, i.clean)),
      async (error: unknown) => {
        // A session closing errors its streams: that is the close, not a failure, when the close info is in.
        await Promise.race([closeInfo, new Promise<void>((r) => g.setTimeout(r, 0))]);
        if (sessionClosed) {
          const i = await closeInfo;
          this.fireClose(i.code, i.reason, i.clean);
          return;
        }
        this.emit({ type: 'error', error });
        this.fireClose(1006, '', false);
        try {
          this.transport.close({ closeCode: 1006, reason: '' });
        } catch {
          // already gone
        }
      },
    );
  }

  private async start(offer: string): Promise<void> {
    await this.transport.ready;
    const stream = await this.transport.createBidirectionalStream();
    this.writer = stream.writable.getWriter();
    await this.writer.write(encodeStreamFrame(enc.encode(offer)));
    const reader = stream.readable.getReader();
    const frames = new StreamFrameReader(DEFAULT_MAX_MESSAGE_BYTES * 64);
    let opened = false;
    for (;;) {
      const { done, value } = await reader.read();
      if (done || !value) break;
      for (const payload of frames.push(value)) {
        if (!opened) {
          opened = true;
          this.protocol = utf8.decode(payload);
          this.readyState = OPEN;
          this.emit({ type: 'open' });
          continue;
        }
        if (this.readyState !== OPEN) continue;
        const data = this.protocol.endsWith('.json')
          ? utf8.decode(payload)
          : (payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.byteLength) as ArrayBuffer);
        this.emit({ type: 'message', data });
      }
    }
  }

  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (this.readyState === CONNECTING) throw new Error('InvalidStateError: still connecting');
    if (this.readyState !== OPEN || !this.writer) return;
    const bytes =
      typeof data === 'string'
        ? enc.encode(data)
        : data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const frame = encodeStreamFrame(bytes);
    this.bufferedAmount += frame.byteLength;
    this.writer.write(frame).then(
      () => {
        this.bufferedAmount -= frame.byteLength;
      },
      () => {
        this.bufferedAmount -= frame.byteLength;
      },
    );
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState === CLOSED || this.closeSent) return;
    this.closeSent = true;
    this.readyState = CLOSING;
    try {
      this.transport.close({ closeCode: code, reason });
    } catch {
      this.fireClose(code, reason, false);
    }
  }

  addEventListener(type: string, listener: Listener): void {
    const set = this.listeners.get(type) ?? new Set<Listener>();
    this.listeners.set(type, set);
    set.add(listener);
  }

  removeEventListener(type: string, listener: Listener): void {
    this.listeners.get(type)?.delete(listener);
  }

  private fireClose(code: number, reason: string, wasClean: boolean): void {
    if (this.closeFired) return;
    this.closeFired = true;
    this.readyState = CLOSED;
    this.emit({ type: 'close', code, reason, wasClean });
  }

  private emit(event: AnySocketEvent): void {
    const handler = (this as unknown as Record<string, ((e: AnySocketEvent) => void) | null>)[`on${event.type}`];
    handler?.call(this, event);
    for (const l of this.listeners.get(event.type) ?? []) (l as (e: AnySocketEvent) => void)(event);
  }
}

/** A WebSocket-compatible constructor bound to one WebTransport implementation. */
export interface WebTransportSocketClass {
  new (url: string, protocols?: string | string[]): WebTransportSocket;
  readonly CONNECTING: number;
  readonly OPEN: number;
  readonly CLOSING: number;
  readonly CLOSED: number;
}
