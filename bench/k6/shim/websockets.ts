/**
 * `k6/websockets` for the shim, on top of ws: the browser-like API k6 exposes (`onopen`/`onmessage`/…,
 * `addEventListener`, `binaryType`, `send`, `close`, `readyState`), with k6's built-in ws metrics. A socket
 * keeps its VU's iteration open until it is closed, as in k6.
 */
import WsSocket from 'ws';
import { addSample, currentVu, hold, inVu, release, state } from './state.js';

type Listener = (event: Record<string, unknown>) => void;

export interface Params {
  headers?: Record<string, string>;
}

export class WebSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;

  binaryType: 'arraybuffer' | 'blob' = 'blob';
  onopen: Listener | null = null;
  onmessage: Listener | null = null;
  onclose: Listener | null = null;
  onerror: Listener | null = null;
  onping: Listener | null = null;
  onpong: Listener | null = null;
  private readonly listeners = new Map<string, Listener[]>();
  private readonly ws: WsSocket;
  private readonly token = {};

  constructor(url: string, protocols?: string | string[] | null, params?: Params) {
    const ctx = currentVu();
    hold(ctx, this.token);
    const started = performance.now();
    this.ws = new WsSocket(url, protocols ?? undefined, {
      perMessageDeflate: false,
      ...(params?.headers?.Origin || params?.headers?.origin
        ? { origin: params.headers.Origin ?? params.headers.origin }
        : {}),
      headers: params?.headers ?? {},
    });
    addSample('ws_sessions', 'counter', 1);
    const handle = { terminate: () => this.ws.terminate() };
    state().sockets.add(handle);
    this.ws.on('open', () => {
      addSample('ws_connecting', 'trend', performance.now() - started);
      inVu(ctx, () => this.emit('open', {}));
    });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      addSample('ws_msgs_received', 'counter', 1);
      const payload = isBinary
        ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)
        : data.toString('utf8');
      inVu(ctx, () => this.emit('message', { data: payload, type: 'message' }));
    });
    this.ws.on('ping', () => inVu(ctx, () => this.emit('ping', {})));
    this.ws.on('pong', () => inVu(ctx, () => this.emit('pong', {})));
    this.ws.on('error', (err: Error) => inVu(ctx, () => this.emit('error', { error: err.message })));
    this.ws.on('unexpected-response', (_req, res) => {
      inVu(ctx, () => this.emit('error', { error: `unexpected HTTP ${res.statusCode}` }));
      this.ws.terminate();
    });
    this.ws.on('close', (code: number, reason: Buffer) => {
      state().sockets.delete(handle);
      try {
        inVu(ctx, () => this.emit('close', { code, reason: reason.toString() }));
      } finally {
        release(ctx, this.token);
      }
    });
  }

  get readyState(): number {
    return this.ws.readyState;
  }

  get protocol(): string {
    return this.ws.protocol;
  }

  get url(): string {
    return this.ws.url;
  }

  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (this.ws.readyState !== WsSocket.OPEN) return;
    addSample('ws_msgs_sent', 'counter', 1);
    if (typeof data === 'string') this.ws.send(data);
    else
      this.ws.send(
        data instanceof ArrayBuffer ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      );
  }

  close(code?: number, reason?: string): void {
    if (this.ws.readyState === WsSocket.CLOSED) return;
    if (this.ws.readyState === WsSocket.CONNECTING) this.ws.terminate();
    else this.ws.close(code ?? 1000, reason);
  }

  ping(): void {
    if (this.ws.readyState === WsSocket.OPEN) this.ws.ping();
  }

  addEventListener(type: string, listener: Listener): void {
    const list = this.listeners.get(type) ?? [];
    list.push(listener);
    this.listeners.set(type, list);
  }

  removeEventListener(type: string, listener: Listener): void {
    this.listeners.set(
      type,
      (this.listeners.get(type) ?? []).filter((l) => l !== listener),
    );
  }

  private emit(type: string, event: Record<string, unknown>): void {
    const handler = (this as unknown as Record<string, Listener | null>)[`on${type}`];
    handler?.call(this, event);
    for (const l of this.listeners.get(type) ?? []) l.call(this, event);
  }
}
