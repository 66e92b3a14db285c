/**
 * WebTransport adapter (`@fails-components/webtransport`): the third transport beside ws and uWebSockets.js.
 *
 * One WebTransport session per client, one bidirectional stream per session, carrying protocol v1 envelopes
 * in length-prefixed frames (`StreamFrameReader` / `encodeStreamFrame` from the protocol package). The first
 * frame each way is the subprotocol: the client offers `scanrelay.v1.msgpack,scanrelay.v1.json`, the relay
 * answers with the one it chose — the stand-in for `Sec-WebSocket-Protocol`.
 *
 * ```
 *  client ── CONNECT /v1/gateway (HTTP/2 extended CONNECT, or HTTP/3 with the native module) ──▶ adapter
 *    request callback: hooks.admit(path, Origin, ip, both codecs) ── refused ─▶ HTTP 403/404/429/503
 *  client ── bidi stream: [len|"scanrelay.v1.msgpack,scanrelay.v1.json"] ──▶ hooks.admit(real offer)
 *  client ◀── [len|"scanrelay.v1.msgpack"] ── then hooks.open(conn) and frames both ways
 *  close(code, reason) ─▶ session close info {closeCode, reason} — the same codes as WebSocket closes
 * ```
 *
 * Transports: the pure-JS HTTP/2 transport ships in the npm package and always runs. HTTP/3 (QUIC, what
 * browsers use) needs the native `@fails-components/webtransport-transport-http3-quiche` module; when it is
 * installed and loads, the adapter serves HTTP/3 on the same port (UDP) too. The adapter logs which are live.
 *
 * Liveness: WebTransport has no ping frame the library exposes. `ping()` therefore arms a flag and the next
 * inbound frame counts as the pong; clients send protocol `ping` messages every `limits.pingIntervalMs`
 * (the web client and the gateway agent do), so a live peer always answers within the core's pong deadline
 * and a dead one is cut exactly as on WebSocket.
 */
import { randomBytes } from 'node:crypto';
import { encodeStreamFrame, ProtocolError, StreamFrameReader, SUBPROTOCOLS, utf8Encode } from '@scanrelay/protocol';
import type {
  ConnectionHandlers,
  TransportConnection,
  TransportHooks,
  TransportOptions,
  TransportServer,
  UpgradeDecision,
} from '../core/transport.js';
import { type SidecarOptions, SidecarWtServer } from './wt-sidecar.js';

/** TLS material for the WebTransport listener (HTTP/2 needs TLS; HTTP/3 always does). */
export interface WebTransportListenOptions extends TransportOptions {
  /** PEM certificate chain. */
  cert: string;
  /** PEM private key. */
  key: string;
  /** Try to load the native HTTP/3 module (default true). */
  http3?: boolean;
  /**
   * Serve HTTP/3 through the Go sidecar instead of the npm library (see `wt-sidecar.ts`); `cert`/`key`
   * are then unused (the sidecar reads `sidecar.certFile`/`keyFile`, or makes a dev certificate).
   */
  sidecar?: Omit<SidecarOptions, 'logger' | 'paths'>;
}

export interface WebTransportServer extends TransportServer {
  /** Which WebTransport flavours are live, for the start-up log and /version. */
  readonly flavours: { http2: boolean; http3: boolean; http3Reason?: string };
  /** The HTTP/3 sidecar's dev certificate hash (base64 SHA-256) after `listen()`; '' otherwise. */
  readonly certHash: string;
}

// Structural types for the parts of the library we use (its own .d.ts drag in DOM stream types).
interface WtReader {
  read(): Promise<{ done: boolean; value?: Uint8Array }>;
  cancel(reason?: unknown): Promise<void>;
}
interface WtWriter {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
  readonly desiredSize: number | null;
}
interface WtStream {
  readable: { getReader(): WtReader };
  writable: { getWriter(): WtWriter };
}
interface WtSession {
  ready: Promise<void>;
  closed: Promise<{ closeCode?: number; reason?: string }>;
  incomingBidirectionalStreams: { getReader(): { read(): Promise<{ done: boolean; value?: WtStream }> } };
  close(info?: { closeCode: number; reason: string }): void;
  readonly header?: Record<string, string | string[] | undefined>;
  readonly peerAddress?: string;
}
interface WtServer {
  ready: Promise<unknown>;
  closed: Promise<unknown>;
  startServer(): void;
  stopServer(): void;
  address(): { port: number; host: string } | null;
  sessionStream(path: string): { getReader(): { read(): Promise<{ done: boolean; value?: WtSession }> } };
  setRequestCallback(cb: (req: { header: Record<string, string | string[] | undefined> }) => Promise<unknown>): void;
}
type WtServerCtor = new (init: Record<string, unknown>) => WtServer;

const PATHS = ['/v1/browser', '/v1/gateway'] as const;
const HTTP3_MODULE = '@fails-components/webtransport-transport-http3-quiche';
const OFFER_ALL = [SUBPROTOCOLS.msgpack, SUBPROTOCOLS.json];
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Close codes that stand for an HTTP refusal when it comes after the session is up (preamble stage). */
const STATUS_CLOSE: Record<number, number> = { 400: 4500, 403: 4503, 404: 4500, 429: 4001, 503: 1001 };

function headerValue(h: Record<string, string | string[] | undefined> | undefined, name: string): string | undefined {
  const v = h?.[name];
  return Array.isArray(v) ? v[0] : v;
}

function peerIp(peer: string | undefined): string {
  if (!peer) return 'unknown';
  const i = peer.lastIndexOf(':');
  const host = i > 0 ? peer.slice(0, i) : peer;
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host; // [::1]:port from Go
}

function pathOf(raw: string | undefined): string {
  const p = raw ?? '';
  const q = p.indexOf('?');
  return q >= 0 ? p.slice(0, q) : p; // the query string is never read
}

async function loadLibrary(wantHttp3: boolean): Promise<{ ctor: WtServerCtor; http3: boolean; http3Reason?: string }> {
  const lib = (await import('@fails-components/webtransport')) as unknown as {
    Http2Server: WtServerCtor;
    HttpServer: WtServerCtor;
    quicheLoaded: Promise<unknown>;
  };
  if (!wantHttp3) return { ctor: lib.Http2Server, http3: false, http3Reason: 'disabled by configuration' };
  // The library's own `quicheLoaded` resolves even when the native module is missing, so probe the module.
  try {
    await import(HTTP3_MODULE);
    await lib.quicheLoaded;
    return { ctor: lib.HttpServer, http3: true };
  } catch {
    return {
      ctor: lib.Http2Server,
      http3: false,
      http3Reason: `native module ${HTTP3_MODULE} is not installed or did not load`,
    };
  }
}

/**
 * Create the WebTransport listener. Non-WebTransport HTTP is not served here (the WebSocket transport's port
 * serves /healthz, /metrics and the admin API); `hooks.http` is unused.
 */
export async function createWebTransportTransport(
  options: WebTransportListenOptions,
  hooks: Pick<TransportHooks, 'admit' | 'open'> & Partial<Pick<TransportHooks, 'http'>>,
): Promise<WebTransportServer> {
  const sidecar = options.sidecar
    ? new SidecarWtServer({
        ...options.sidecar,
        paths: PATHS,
        logger: options.logger.child({ transport: 'webtransport-h3' }),
      })
    : undefined;
  const { ctor, http3, http3Reason } = sidecar
    ? { ctor: undefined, http3: true, http3Reason: undefined }
    : await loadLibrary(options.http3 !== false);
  const log = options.logger.child({ transport: sidecar ? 'webtransport-h3' : 'webtransport' });
  const server: WtServer =
    sidecar ??
    new ctor!({
      port: options.port,
      host: options.host,
      secret: randomBytes(32).toString('hex'),
      cert: options.cert,
      privKey: options.key,
      // One stream per session: refuse more than a couple of client-opened streams.
      initialBidirectionalStreams: 2,
      initialUnidirectionalStreams: 0,
    });
  let accepting = true;
  const live = new Set<WtSession>();

  server.setRequestCallback(async ({ header }) => {
    const path = pathOf(headerValue(header, ':path'));
    if (!accepting) return { status: 503, path, header };
    // Preliminary admission on HTTP facts (path, Origin, caps); the codec is settled by the preamble.
    const decision = hooks.admit({
      path,
      origin: headerValue(header, 'origin'),
      // Only the sidecar supplies the peer here (the npm library does not expose it at the request stage).
      ip: peerIp(headerValue(header, ':peer-address')),
      protocols: OFFER_ALL,
    });
    return { status: decision.ok ? 200 : decision.status, path, header };
  });

  const acceptLoop = async (path: string): Promise<void> => {
    const reader = server.sessionStream(path).getReader();
    for (;;) {
      const { done, value: session } = await reader.read();
      if (done || !session) return;
      live.add(session);
      session.closed.finally(() => live.delete(session)).catch(() => {});
      startSession(session, path).catch((err: unknown) => {
        log.warn({ err: (err as Error).message }, 'WebTransport session failed before it was admitted');
        safeClose(session, 4500, 'bad_message');
      });
    }
  };

  const startSession = async (session: WtSession, path: string): Promise<void> => {
    await session.ready;
    const next = await withTimeout(session.incomingBidirectionalStreams.getReader().read(), options.headersTimeoutMs);
    if (!next || next.done || !next.value) {
      safeClose(session, 4501, 'unauthenticated');
      return;
    }
    const stream = next.value;
    const reader = stream.readable.getReader();
    const writer = stream.writable.getWriter();
    const frames = new StreamFrameReader(options.maxPayloadBytes);
    // Preamble: the client's offered subprotocols.
    let pending: Uint8Array[] = [];
    while (pending.length === 0) {
      const r = await withTimeout(reader.read(), options.headersTimeoutMs);
      if (!r || r.done || !r.value) {
        safeClose(session, 4501, 'unauthenticated');
        return;
      }
      pending = frames.push(r.value);
    }
    const offer = utf8.decode(pending.shift()!).split(',');
    const decision = hooks.admit({
      path,
      origin: headerValue(session.header, 'origin'),
      ip: peerIp(session.peerAddress),
      protocols: offer,
    });
    if (!decision.ok) {
      safeClose(session, STATUS_CLOSE[decision.status] ?? 4500, decision.message.slice(0, 100));
      return;
    }
    await writer.write(encodeStreamFrame(utf8Encode(decision.subprotocol)));
    const conn = new WtConnection(session, writer, options.maxBufferedBytes);
    const handlers = hooks.open(conn, decision);
    conn.attach(handlers);
    // Frames that came in the same chunk as the preamble.
    for (const payload of pending) conn.deliver(payload, decision);
    readLoop(reader, frames, conn, decision).catch(() => conn.terminate());
  };

  const readLoop = async (
    reader: WtReader,
    frames: StreamFrameReader,
    conn: WtConnection,
    decision: Extract<UpgradeDecision, { ok: true }>,
  ): Promise<void> => {
    for (;;) {
      const r = await reader.read();
      if (r.done || !r.value) return;
      let payloads: Uint8Array[];
      try {
        payloads = frames.push(r.value);
      } catch (err) {
        if (err instanceof ProtocolError && err.code === 'too_large') conn.close(1009, 'too_large');
        else conn.terminate();
        return;
      }
      for (const payload of payloads) conn.deliver(payload, decision);
    }
  };

  return {
    flavours: { http2: !sidecar, http3, ...(http3Reason ? { http3Reason } : {}) },
    get certHash() {
      return sidecar?.certHash ?? '';
    },
    async listen() {
      server.startServer();
      await server.ready;
      if (sidecar) {
        for (const path of PATHS) acceptLoop(path).catch(() => {});
        const addr = server.address();
        log.info(
          { port: addr?.port, devCert: sidecar.certHash !== '' },
          'WebTransport live over HTTP/3 (UDP, Go sidecar)',
        );
        return { host: addr?.host ?? options.host, port: addr?.port ?? options.port };
      }
      for (const path of PATHS) acceptLoop(path).catch(() => {});
      const addr = server.address();
      log.info(
        { port: addr?.port, http2: true, http3, http3Reason },
        http3
          ? 'WebTransport live over HTTP/2 (TCP) and HTTP/3 (UDP)'
          : `WebTransport live over HTTP/2 only; HTTP/3 off: ${http3Reason}`,
      );
      return { host: addr?.host ?? options.host, port: addr?.port ?? options.port };
    },
    async stopAccepting() {
      accepting = false;
    },
    async close() {
      accepting = false;
      for (const s of live) safeClose(s, 1001, 'shutting_down');
      server.stopServer();
      await Promise.race([server.closed, new Promise((r) => setTimeout(r, 1000).unref())]);
    },
  };
}

/** How long a close waits for already-sent frames to reach a peer that has stopped reading. */
const CLOSE_FLUSH_MS = 1_000;

function safeClose(session: WtSession, code: number, reason: string): void {
  try {
    session.close({ closeCode: code, reason: reason.slice(0, 123) });
  } catch {
    // already closed
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<undefined>((r) => {
    timer = setTimeout(() => r(undefined), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** One admitted WebTransport session seen as a {@link TransportConnection}. */
class WtConnection implements TransportConnection {
  private handlers: ConnectionHandlers | undefined;
  private queued = 0;
  private corkBuffer: Uint8Array[] | undefined;
  private closed = false;
  private closing = false;
  private pingArmed = false;
  private overCap = false;
  /** Settles when every write issued so far has been taken by the stream (see {@link close}). */
  private lastWrite: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly session: WtSession,
    private readonly writer: WtWriter,
    private readonly maxBuffered: number,
  ) {
    session.closed.then(
      (info) => this.finish(info.closeCode ?? 1006, info.reason ?? ''),
      () => this.finish(1006, ''),
    );
  }

  attach(handlers: ConnectionHandlers): void {
    this.handlers = handlers;
  }

  get bufferedAmount(): number {
    return this.queued;
  }

  deliver(payload: Uint8Array, decision: Extract<UpgradeDecision, { ok: true }>): void {
    if (this.closed || !this.handlers) return;
    if (this.pingArmed) {
      this.pingArmed = false;
      this.handlers.pong();
    }
    if (decision.codec === 'json') {
      let text: string;
      try {
        text = utf8.decode(payload);
      } catch {
        this.close(1007, 'bad_message');
        return;
      }
      this.handlers.message(text, false);
    } else this.handlers.message(payload, true);
  }

  send(frame: string | Uint8Array): boolean {
    if (this.closed || this.closing) return false;
    if (this.queued > this.maxBuffered) return false;
    const bytes = encodeStreamFrame(typeof frame === 'string' ? utf8Encode(frame) : frame);
    if (this.corkBuffer) this.corkBuffer.push(bytes);
    else this.write(bytes);
    return true;
  }

  cork(fn: () => void): void {
    if (this.corkBuffer) {
      fn();
      return;
    }
    this.corkBuffer = [];
    try {
      fn();
    } finally {
      const parts = this.corkBuffer;
      this.corkBuffer = undefined;
      if (parts.length === 1) this.write(parts[0]!);
      else if (parts.length > 1) {
        const total = parts.reduce((n, p) => n + p.byteLength, 0);
        const joined = new Uint8Array(total);
        let o = 0;
        for (const p of parts) {
          joined.set(p, o);
          o += p.byteLength;
        }
        this.write(joined);
      }
    }
  }

  private write(bytes: Uint8Array): void {
    this.queued += bytes.byteLength;
    if (this.queued > this.maxBuffered) this.overCap = true;
    const written = this.writer.write(bytes);
    this.lastWrite = written.catch(() => {});
    written.then(
      () => {
        this.queued -= bytes.byteLength;
        if (this.overCap && this.queued <= this.maxBuffered / 2) {
          this.overCap = false;
          if (!this.closed) this.handlers?.drain();
        }
      },
      () => this.terminate(),
    );
  }

  /**
   * Close the session once the frames already sent have reached the stream: closing the session at once
   * would reset the stream and drop them (e.g. the `error` that explains a 4506, or the acks before a 4001),
   * where a WebSocket close frame queues behind its data. A peer that stops reading gets at most {@link CLOSE_FLUSH_MS} more.
   */
  close(code: number, reason: string): void {
    if (this.closed || this.closing) return;
    this.closing = true;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((r) => {
      timer = setTimeout(r, CLOSE_FLUSH_MS);
    });
    // FIN the stream after the last frame, so the peer's reader ends cleanly before the session close
    // capsule errors its streams (which would drop frames still queued in the peer's readable).
    const flushed = this.lastWrite.then(() => this.writer.close().catch(() => {}));
    Promise.race([flushed, deadline]).then(() => {
      clearTimeout(timer);
      safeClose(this.session, code, reason);
    });
  }

  terminate(): void {
    if (this.closed) return;
    this.writer.abort().catch(() => {});
    safeClose(this.session, 1006, '');
    this.finish(1006, '');
  }

  ping(): void {
    this.pingArmed = true;
  }

  private finish(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.handlers?.close(code, reason);
  }
}
