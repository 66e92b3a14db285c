/**
 * uWebSockets.js transport (`SCANRELAY_TRANSPORT=uws`): the fast path. Implements {@link CreateTransport}.
 *
 * The package is an optional dependency installed under the name `uWebSockets.js` (an npm alias of a
 * published v20 build), loaded lazily so that the ws transport never needs it. Two ways it can be unusable,
 * both refused at start-up with an error naming `SCANRELAY_TRANSPORT`: the module is not installed, or it is
 * installed but has no native binary for this Node ABI — in which case that build prints "not compatible" and
 * silently returns a slow pure-JS fallback; we detect that by the absence of the native constants.
 *
 * uWS rules this adapter follows (each one has a test in relay/test/transport-uws/):
 * 1. Request headers are copied before anything asynchronous (a uWS `HttpRequest` dies with its handler).
 * 2. `onAborted` on every HTTP response that is answered later (see uws-http.ts).
 * 3. `upgrade` and every HTTP write inside `cork`.
 * 4. `maxPayloadLength` (a 1009 close past `maxPayloadBytes`), `maxBackpressure` + `closeOnBackpressureLimit`, `idleTimeout`, compression
 *    `DISABLED` (no permessage-deflate is negotiated).
 * 5. The core is told to resume (`handlers.drain`) when uWS reports the buffer drained.
 * 6. Sends made outside uWS callbacks (timers, Bus/Redis callbacks) are corked; uWS would otherwise write
 *    each one with its own syscall and warn on stderr.
 * 7. Write coalescing: frames sent to one socket during one turn of the event loop are queued and written
 *    in one corked batch — one `send(2)` for many frames — in a `setImmediate` (after every I/O callback of
 *    that turn, e.g. all the Redis messages parsed from one read). `connection.cork(fn)` flushes at once.
 */
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, WebSocket } from 'uWebSockets.js';
import type {
  ConnectionHandlers,
  CreateTransport,
  TransportConnection,
  TransportHooks,
  TransportOptions,
  TransportServer,
  UpgradeDecision,
} from '../core/transport.js';
import { UwsHttpBridge } from './uws-http.js';

type UwsModule = typeof import('uWebSockets.js');
type Admitted = Extract<UpgradeDecision, { ok: true }>;

/** Error raised when the uWS transport cannot start; `code` is stable. */
export class UwsTransportError extends Error {
  constructor(
    readonly code: 'uws_missing' | 'uws_unsupported_runtime' | 'uws_listen_failed',
    message: string,
  ) {
    super(message);
    this.name = 'UwsTransportError';
  }
}

/** Adapter tuning beyond {@link TransportOptions}; defaults suit production, tests shorten them. */
export interface UwsTuning {
  /**
   * Seconds without any inbound data (frames, pongs) after which uWS closes the socket; uWS also sends its
   * own pings before that. 0 disables. uWS needs a multiple of 4, at least 8. Default 120 (the core's own
   * heartbeat closes idle clients sooner; this is the backstop for half-open sockets).
   */
  idleTimeoutSeconds?: number;
  /** Below this many buffered bytes, after having been above it, `handlers.drain` is called. Default ¼ of the cap. */
  drainLowWaterBytes?: number;
}

/** Load uWebSockets.js and prove it is the native build; otherwise throw an operator-readable error. */
export async function loadUws(): Promise<UwsModule> {
  let mod: UwsModule;
  try {
    const imported = (await import('uWebSockets.js')) as UwsModule & { default?: UwsModule };
    mod = imported.default ?? imported;
  } catch {
    throw new UwsTransportError(
      'uws_missing',
      'SCANRELAY_TRANSPORT=uws, but the optional package "uWebSockets.js" is not installed. Install it ' +
        '(npm install uWebSockets.js@npm:@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0, or a build ' +
        'matching this Node version) or set SCANRELAY_TRANSPORT=ws.',
    );
  }
  // The native binding exports the compressor constants; the pure-JS fallback the package switches to on
  // an unsupported Node ABI does not (it only prints a warning). Refuse the fallback: it is slower than ws.
  if (typeof (mod as { DISABLED?: unknown }).DISABLED !== 'number' || typeof mod.App !== 'function') {
    throw new UwsTransportError(
      'uws_unsupported_runtime',
      `SCANRELAY_TRANSPORT=uws, but the installed uWebSockets.js has no native build for Node ` +
        `${process.version} (ABI ${process.versions.modules}) and fell back to a slow JavaScript version. ` +
        'Run the relay on a Node version that build supports (Node 20 for the v20.30 build), install a ' +
        'uWebSockets.js build for this Node, or set SCANRELAY_TRANSPORT=ws.',
    );
  }
  return mod;
}

/** Per-socket state kept in uWS user data. */
interface SocketData {
  decision: Admitted;
  conn?: UwsConnection;
}

const textDecoder = new TextDecoder('utf-8');

/** Queued bytes at which a socket is flushed at once instead of at the end of the turn (uWS's cork buffer). */
const FLUSH_NOW_BYTES = 16 * 1024;

/** uWS's own frame limit, as a multiple of `maxPayloadBytes` (see the `maxPayloadLength` comment). */
const PAYLOAD_HEADROOM = 16;

/** How long `listen` keeps retrying a fixed port that is still held (see UwsTransport.listen). */
const LISTEN_RETRY_MS = 60_000;

/** Truncate a close reason to 123 bytes of ASCII (the WebSocket limit). */
function shortReason(reason: string): string {
  const ascii = reason.replace(/[^\x20-\x7e]/g, '?');
  return ascii.length > 123 ? ascii.slice(0, 123) : ascii;
}

/** Coalescing scheduler: connections with queued frames, flushed together after the current I/O turn. */
class FlushQueue {
  private readonly dirty = new Set<UwsConnection>();
  private scheduled = false;

  add(conn: UwsConnection): void {
    this.dirty.add(conn);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
  }

  delete(conn: UwsConnection): void {
    this.dirty.delete(conn);
  }

  private readonly flushAll = (): void => {
    this.scheduled = false;
    for (const conn of this.dirty) conn.flush();
    this.dirty.clear();
  };
}

class UwsConnection implements TransportConnection {
  handlers: ConnectionHandlers | undefined;
  private pending: Array<string | Uint8Array> = [];
  private pendingBytes = 0;
  private closed = false;
  private closing = false;
  private aboveLowWater = false;

  constructor(
    private readonly ws: WebSocket<SocketData>,
    private readonly queue: FlushQueue,
    private readonly maxBufferedBytes: number,
    private readonly lowWaterBytes: number,
  ) {}

  get bufferedAmount(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount() + this.pendingBytes;
  }

  send(frame: string | Uint8Array): boolean {
    if (this.closed || this.closing) return false;
    const buffered = this.ws.getBufferedAmount() + this.pendingBytes;
    if (buffered > this.maxBufferedBytes) return false;
    this.pending.push(frame);
    // For strings this counts UTF-16 units, not UTF-8 bytes: close enough for a cap (frames are mostly ASCII).
    this.pendingBytes += typeof frame === 'string' ? frame.length : frame.byteLength;
    // Coalesce up to about one cork buffer; past that, write now so that bytes the kernel would take at
    // once are not counted against the socket's cap (a fast reader must never look slow).
    if (this.pendingBytes >= FLUSH_NOW_BYTES) this.flush();
    else if (this.pending.length === 1) this.queue.add(this);
    return true;
  }

  cork(fn: () => void): void {
    fn();
    this.flush();
  }

  /** Write every queued frame in one corked batch. */
  flush(): void {
    if (this.closed || this.pending.length === 0) return;
    const frames = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.queue.delete(this);
    this.ws.cork(() => {
      for (const frame of frames) this.ws.send(frame, typeof frame !== 'string', false);
    });
    // Backpressure is what the kernel did not take: uWS then reports `drain` as it writes the rest.
    if (this.ws.getBufferedAmount() > this.lowWaterBytes) this.aboveLowWater = true;
  }

  close(code: number, reason: string): void {
    if (this.closed || this.closing) return;
    this.closing = true;
    this.flush();
    // end() runs the close handler synchronously, which marks this connection closed.
    this.ws.cork(() => this.ws.end(code, shortReason(reason)));
  }

  terminate(): void {
    if (this.closed) return;
    this.pending = [];
    this.pendingBytes = 0;
    this.queue.delete(this);
    this.ws.close();
  }

  ping(): void {
    if (this.closed || this.closing) return;
    this.ws.cork(() => this.ws.ping());
  }

  /** uWS reported its buffer drained somewhat; tell the core once it is below the low-water mark. */
  onDrain(): void {
    if (this.closed || !this.aboveLowWater) return;
    if (this.ws.getBufferedAmount() <= this.lowWaterBytes) {
      this.aboveLowWater = false;
      this.handlers?.drain();
    }
  }

  /** The socket is gone; nothing may touch `ws` after this. */
  markClosed(): void {
    this.closed = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.queue.delete(this);
  }
}

class UwsTransportServer implements TransportServer {
  private readonly app: TemplatedApp;
  private listenSocket: us_listen_socket | undefined;
  private readonly sockets = new Set<WebSocket<SocketData>>();
  private readonly http: UwsHttpBridge;
  private readonly queue = new FlushQueue();
  private closedAll = false;

  constructor(
    private readonly uws: UwsModule,
    private readonly options: TransportOptions,
    private readonly hooks: TransportHooks,
    tuning: UwsTuning,
  ) {
    const lowWater = tuning.drainLowWaterBytes ?? Math.floor(options.maxBufferedBytes / 4);
    this.http = new UwsHttpBridge((req, res) => hooks.http(req, res), options);
    this.app = uws.App();
    this.app.ws<SocketData>('/*', {
      compression: uws.DISABLED,
      // uWS drops a frame past maxPayloadLength without a close frame (the client sees 1006), but the
      // contract is a 1009 close. So uWS gets headroom and the adapter closes 1009 itself for frames between
      // the two limits; only frames past 16× the limit (1 MiB by default) are dropped by uWS as a backstop.
      maxPayloadLength: options.maxPayloadBytes * PAYLOAD_HEADROOM,
      // Our own cap (send() returns false past maxBufferedBytes) acts first; uWS closes a socket whose
      // buffer still overflows by a whole frame as a backstop.
      maxBackpressure: options.maxBufferedBytes + options.maxPayloadBytes,
      // The v20 typings declare a number; uWS reads it as a boolean.
      closeOnBackpressureLimit: 1,
      idleTimeout: tuning.idleTimeoutSeconds ?? 120,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => this.upgrade(res, req, context),
      open: (ws) => {
        const data = ws.getUserData();
        const conn = new UwsConnection(ws, this.queue, options.maxBufferedBytes, lowWater);
        data.conn = conn;
        this.sockets.add(ws);
        conn.handlers = hooks.open(conn, data.decision);
      },
      message: (ws, message, isBinary) => {
        const conn = ws.getUserData().conn;
        if (!conn?.handlers) return;
        if (message.byteLength > options.maxPayloadBytes) {
          conn.close(1009, 'too_large');
          return;
        }
        // The ArrayBuffer is only valid during this callback: decode or copy it now.
        const data = isBinary ? new Uint8Array(message.slice(0)) : textDecoder.decode(message);
        conn.handlers.message(data, isBinary);
      },
      drain: (ws) => ws.getUserData().conn?.onDrain(),
      pong: (ws) => ws.getUserData().conn?.handlers?.pong(),
      close: (ws, code, message) => {
        this.sockets.delete(ws);
        const conn = ws.getUserData().conn;
        if (!conn) return;
        conn.markClosed();
        const handlers = conn.handlers;
        conn.handlers = undefined;
        handlers?.close(code, textDecoder.decode(message));
      },
    });
    this.app.any('/*', (res, req) => this.http.handle(res, req));
  }

  private upgrade(res: HttpResponse, req: HttpRequest, context: unknown): void {
    // Copy everything from `req` first: it is invalid once this function returns or awaits.
    const key = req.getHeader('sec-websocket-key');
    const protocolHeader = req.getHeader('sec-websocket-protocol');
    const origin = req.getHeader('origin');
    const forwardedFor = req.getHeader('x-forwarded-for');
    const path = req.getUrl();
    const ip = Buffer.from(res.getRemoteAddressAsText()).toString('latin1');
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const decision = this.hooks.admit({
      path,
      origin: origin === '' ? undefined : origin,
      ip,
      protocols: protocolHeader === '' ? [] : protocolHeader.split(','),
      forwardedFor: forwardedFor === '' ? undefined : forwardedFor,
    });
    if (aborted) return;
    res.cork(() => {
      if (!decision.ok) {
        res
          .writeStatus(`${decision.status} ${statusText(decision.status)}`)
          .writeHeader('Content-Type', 'text/plain; charset=utf-8')
          .end(decision.message, true);
        return;
      }
      // No extensions are answered: permessage-deflate is never negotiated.
      res.upgrade<SocketData>({ decision }, key, decision.subprotocol, '', context as never);
    });
  }

  /**
   * Listen; for a fixed port, retry for up to {@link LISTEN_RETRY_MS}. uSockets binds without SO_REUSEADDR, so
   * after a restart on the same port the previous process's server-closed connections (TIME_WAIT, up to
   * 60 s on Linux) make the bind fail; waiting them out beats a crash loop under systemd or compose.
   */
  async listen(): Promise<{ host: string; port: number }> {
    const { host, port } = this.options;
    const deadline = Date.now() + (port === 0 ? 0 : LISTEN_RETRY_MS);
    for (let attempt = 0; ; attempt++) {
      const socket = await new Promise<us_listen_socket | false>((resolve) => this.app.listen(host, port, resolve));
      if (socket) {
        this.listenSocket = socket;
        return { host, port: this.uws.us_socket_local_port(socket) };
      }
      if (Date.now() >= deadline)
        throw new UwsTransportError(
          'uws_listen_failed',
          `cannot listen on ${host}:${port} with the uWS transport (port in use or address not local); ` +
            'change SCANRELAY_HOST / SCANRELAY_PORT',
        );
      if (attempt === 0)
        this.options.logger.warn(
          { host, port },
          'uWS cannot bind the port yet (held by a previous process or its TIME_WAIT connections); retrying for up to 60 s',
        );
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async stopAccepting(): Promise<void> {
    if (this.listenSocket) {
      this.uws.us_listen_socket_close(this.listenSocket);
      this.listenSocket = undefined;
    }
  }

  async close(): Promise<void> {
    await this.stopAccepting();
    if (this.closedAll) return;
    this.closedAll = true;
    // close() runs each socket's close handler synchronously (→ handlers.close with 1006).
    for (const ws of [...this.sockets]) ws.close();
    this.sockets.clear();
    this.http.close();
    // Idle HTTP keep-alive connections are not WebSockets and would keep holding the port, so a node
    // restarted on the same port could not listen (regression test issue-5-restart-same-port on uws).
    // App.close() closes the listen socket and every remaining connection.
    (this.app as unknown as { close?: () => void }).close?.();
  }
}

function statusText(status: number): string {
  switch (status) {
    case 400:
      return 'Bad Request';
    case 403:
      return 'Forbidden';
    case 404:
      return 'Not Found';
    case 429:
      return 'Too Many Requests';
    default:
      return 'Service Unavailable';
  }
}

/**
 * Create the uWebSockets.js transport. Rejects with {@link UwsTransportError} when uWS is missing or not
 * native on this runtime; does not listen before `listen()`.
 */
export const createUwsTransport = async (
  options: TransportOptions,
  hooks: TransportHooks,
  tuning: UwsTuning = {},
): Promise<TransportServer> => {
  const idle = tuning.idleTimeoutSeconds ?? 120;
  if (idle !== 0 && (idle < 8 || idle % 4 !== 0))
    throw new RangeError(`uWS idleTimeoutSeconds must be 0 or a multiple of 4 that is at least 8 (got ${idle})`);
  const uws = await loadUws();
  return new UwsTransportServer(uws, options, hooks, tuning);
};

// Type check: the export satisfies the adapter contract.
const _check: CreateTransport = createUwsTransport;
void _check;
