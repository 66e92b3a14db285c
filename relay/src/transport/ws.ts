/**
 * The default transport: node:http + ws (noServer mode, so every upgrade passes the core's `admit` first).
 *
 * Hardening (SECURITY.md "WebSocket and decoding"): `maxPayload` from config (→ 1009), permessage-deflate off,
 * `maxFragments`/`maxBufferedChunks` lowered from ws's 16 Ki/256 Ki (fragment floods), `handleProtocols`
 * answering only the name the core chose, an error handler on every socket and on every raw socket before
 * the upgrade, Node's `headersTimeout`/`requestTimeout`/`maxHeadersCount` lowered, and the send buffer checked
 * before each send.
 */
import { createServer, type IncomingMessage, type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import type {
  ConnectionHandlers,
  CreateTransport,
  TransportConnection,
  TransportHooks,
  TransportOptions,
  TransportServer,
  UpgradeDecision,
} from '../core/transport.js';

/** A message is at most 64 KiB; a peer needs no more than this many fragments or buffered chunks for one. */
const MAX_FRAGMENTS = 128;
const MAX_BUFFERED_CHUNKS = 1024;
/** Longest close reason a close frame can carry (125 − 2 bytes of code). */
const MAX_REASON_BYTES = 123;

/** IPv4 clients on a dual-stack socket show as `::ffff:a.b.c.d`; count them under their IPv4 address. */
export function normaliseIp(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.at(-1) : value;
}

/** Answer a refused upgrade on the raw socket and close it (the same way ws itself aborts a handshake). */
function refuse(socket: Duplex, status: number, message: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** Frames queued for one socket are written at once when they reach this size (net.Socket's highWaterMark). */
const FLUSH_BYTES = 16 * 1024;
/** WebSocket opcodes of the data frames the relay sends (RFC 6455 §5.2). */
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;

/**
 * One complete, unmasked server-to-client frame (FIN set, no extension bits: permessage-deflate is off), header
 * and payload in one buffer, so it costs one write, and the same buffer can be written to every subscriber.
 */
export function wireFrame(frame: string | Uint8Array): Buffer {
  const text = typeof frame === 'string';
  const length = text ? Buffer.byteLength(frame) : frame.byteLength;
  const head = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + length);
  out[0] = 0x80 | (text ? OPCODE_TEXT : OPCODE_BINARY);
  if (length < 126) {
    out[1] = length;
  } else if (length < 65_536) {
    out[1] = 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    out.writeUInt32BE(length >>> 0, 6);
  }
  if (text) out.write(frame, head, 'utf8');
  else out.set(frame, head);
  return out;
}

/**
 * Write coalescing for every socket of one transport. `send` does not write: it encodes the frame (once per
 * distinct frame per turn — fan-out hands every subscriber the same string or bytes) and queues it on its
 * connection; one `setImmediate` per event-loop turn then writes each connection's queue with one `writev`
 * (net.Socket cork/uncork). So a socket that receives several events in one turn costs one syscall, and each
 * delivery costs a queue push instead of ws's per-send header allocation, cork, two writes and uncork.
 */
class WriteCoalescer {
  #dirty: WsConnection[] = [];
  #scheduled = false;
  #lastText: string | undefined;
  #lastTextWire: Buffer | undefined;
  #lastBytes: Uint8Array | undefined;
  #lastBytesWire: Buffer | undefined;

  /** The wire frame for `frame`, reused while the same string/bytes are sent within this turn. */
  wire(frame: string | Uint8Array): Buffer {
    if (typeof frame === 'string') {
      if (frame !== this.#lastText || !this.#lastTextWire) {
        this.#lastText = frame;
        this.#lastTextWire = wireFrame(frame);
      }
      return this.#lastTextWire;
    }
    // Bytes are matched by identity only (a caller may reuse an array for different content across turns; the
    // cache is dropped at every flush, so it never outlives the turn that filled it).
    if (frame !== this.#lastBytes || !this.#lastBytesWire) {
      this.#lastBytes = frame;
      this.#lastBytesWire = wireFrame(frame);
    }
    return this.#lastBytesWire;
  }

  /** `conn` queued its first frame of this turn. */
  mark(conn: WsConnection): void {
    this.#dirty.push(conn);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#flushAll);
  }

  readonly #flushAll = (): void => {
    this.#scheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    this.#lastText = this.#lastTextWire = this.#lastBytes = this.#lastBytesWire = undefined;
    for (let i = 0; i < dirty.length; i++) dirty[i]!.flush();
  };
}

class WsConnection implements TransportConnection {
  #high = false;
  /** Frames queued this turn: the first without an array (the common case), any more in `#more`. */
  #first: Buffer | undefined;
  #more: Buffer[] | undefined;
  #queuedBytes = 0;
  handlers: ConnectionHandlers | undefined;

  constructor(
    private readonly ws: WebSocket,
    /** The upgraded net.Socket under `ws` (from the upgrade event), written directly for coalesced frames. */
    private readonly socket: Duplex,
    private readonly coalescer: WriteCoalescer,
    private readonly maxBuffered: number,
  ) {}

  /** ws's count (kernel-bound bytes in the socket plus ws's own queue) and frames queued for this turn's write. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount + this.#queuedBytes;
  }

  send(frame: string | Uint8Array): boolean {
    const ws = this.ws;
    if (ws.readyState !== ws.OPEN) return false;
    const buffered = this.bufferedAmount;
    if (buffered > this.maxBuffered) return false;
    // Only watch for drain while the buffer is high: a write callback per frame costs on the fast path.
    if (buffered > this.maxBuffered / 2) this.#high = true;
    const wire = this.coalescer.wire(frame);
    this.#queuedBytes += wire.length;
    if (this.#first === undefined) {
      this.#first = wire;
      this.coalescer.mark(this);
    } else if (this.#more === undefined) {
      this.#more = [wire];
    } else {
      this.#more.push(wire);
    }
    // A burst (history catch-up, big events) is written as soon as it fills a write's worth: holding it to the
    // end of the turn would count it against the send-buffer cap and cut a reader that keeps up.
    if (this.#queuedBytes >= FLUSH_BYTES) this.flush();
    return true;
  }

  /** Write this turn's frames in one syscall (called by the coalescer, and before a close frame). */
  flush(): void {
    const first = this.#first;
    if (first === undefined) return;
    const more = this.#more;
    this.#first = this.#more = undefined;
    this.#queuedBytes = 0;
    const ws = this.ws;
    const socket = this.socket;
    // Closing (by either side) or gone: frames after a close frame would break the protocol; drop them.
    if (ws.readyState !== ws.OPEN || !socket.writable) return;
    const done = this.#high ? () => this.#checkDrain() : undefined;
    if (more === undefined) {
      socket.write(first, done);
      return;
    }
    socket.cork();
    socket.write(first);
    const last = more.length - 1;
    for (let i = 0; i < last; i++) socket.write(more[i]!);
    socket.write(more[last]!, done);
    socket.uncork();
  }

  #checkDrain(): void {
    if (this.#high && this.bufferedAmount <= this.maxBuffered / 4) {
      this.#high = false;
      this.handlers?.drain();
    }
  }

  cork(fn: () => void): void {
    // Every send is already held until the end of the turn and written in one go (WriteCoalescer).
    fn();
  }

  close(code: number, reason: string): void {
    const ws = this.ws;
    if (ws.readyState === ws.CLOSING || ws.readyState === ws.CLOSED) return;
    // Frames sent before the close (e.g. the `error` that explains it) must precede the close frame.
    this.flush();
    let r = reason;
    while (Buffer.byteLength(r) > MAX_REASON_BYTES) r = r.slice(0, -1);
    try {
      ws.close(code, r);
    } catch {
      ws.terminate();
    }
  }

  terminate(): void {
    this.#first = this.#more = undefined;
    this.#queuedBytes = 0;
    this.ws.terminate();
  }

  ping(): void {
    const ws = this.ws;
    if (ws.readyState !== ws.OPEN) return;
    try {
      ws.ping();
    } catch {
      // The socket closed between the check and the write: its close event follows.
    }
  }
}

class WsTransport implements TransportServer {
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #sockets = new Set<WebSocket>();
  readonly #decisions = new WeakMap<IncomingMessage, Extract<UpgradeDecision, { ok: true }>>();
  readonly #coalescer = new WriteCoalescer();
  #closing: Promise<void> | undefined;

  constructor(
    private readonly options: TransportOptions,
    private readonly hooks: TransportHooks,
  ) {
    const logger = options.logger;
    this.#server = createServer(
      {
        headersTimeout: options.headersTimeoutMs,
        requestTimeout: options.requestTimeoutMs,
      },
      (req, res) => hooks.http(req, res),
    );
    this.#server.maxHeadersCount = options.maxHeadersCount;
    this.#server.on('clientError', (_err, socket) => {
      refuse(socket, 400, 'bad request');
    });
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: options.maxPayloadBytes,
      perMessageDeflate: false,
      maxFragments: MAX_FRAGMENTS,
      maxBufferedChunks: MAX_BUFFERED_CHUNKS,
      skipUTF8Validation: false,
      handleProtocols: (_offered, req) => this.#decisions.get(req)?.subprotocol ?? false,
    });
    this.#wss.on('error', (err) => logger.warn({ err }, 'websocket server error'));
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
      const header = req.headers['sec-websocket-protocol'];
      const decision = hooks.admit({
        path,
        origin: req.headers.origin,
        ip: normaliseIp(req.socket.remoteAddress),
        protocols: header ? header.split(',') : [],
        forwardedFor: firstHeader(req.headers['x-forwarded-for']),
      });
      if (!decision.ok) {
        refuse(socket, decision.status, decision.message);
        return;
      }
      this.#decisions.set(req, decision);
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(ws, socket, decision));
    });
  }

  #open(ws: WebSocket, socket: Duplex, decision: Extract<UpgradeDecision, { ok: true }>): void {
    const conn = new WsConnection(ws, socket, this.#coalescer, this.options.maxBufferedBytes);
    this.#sockets.add(ws);
    ws.on('error', (err) => {
      // Protocol errors (oversized frame, bad UTF-8, bad opcode): ws closes the socket; `close` follows.
      this.options.logger.debug({ code: (err as { code?: string }).code }, 'websocket error');
    });
    let closed = false;
    const handlers = this.hooks.open(conn, decision);
    conn.handlers = handlers;
    // A throw out of a ws listener would be an uncaught exception: contain it to this socket.
    const guard = (what: string, fn: () => void): void => {
      try {
        fn();
      } catch (err) {
        this.options.logger.error({ err, what }, 'connection handler threw; socket terminated');
        ws.terminate();
      }
    };
    ws.on('message', (data, isBinary) => guard('message', () => handlers.message(data as Buffer, isBinary)));
    ws.on('pong', () => guard('pong', () => handlers.pong()));
    ws.on('close', (code, reason) => {
      this.#sockets.delete(ws);
      if (closed) return;
      closed = true;
      guard('close', () => handlers.close(code, reason.toString('utf8')));
    });
    if (this.#closing) ws.terminate();
  }

  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(this.options.port, this.options.host, () => {
        this.#server.off('error', onError);
        const address = this.#server.address();
        const port = typeof address === 'object' && address ? address.port : this.options.port;
        resolve({ host: this.options.host, port });
      });
    });
  }

  async stopAccepting(): Promise<void> {
    if (this.#closing) return;
    this.#closing = new Promise((resolve) => {
      if (!this.#server.listening) {
        resolve();
        return;
      }
      this.#server.close(() => resolve());
    });
    this.#server.closeIdleConnections();
  }

  async close(): Promise<void> {
    await this.stopAccepting().catch(() => undefined);
    for (const ws of this.#sockets) ws.terminate();
    this.#server.closeAllConnections();
    await this.#closing;
  }
}

/** Build the ws transport. Listens only when `listen()` is called. */
export const createWsTransport: CreateTransport = async (options, hooks) => new WsTransport(options, hooks);
