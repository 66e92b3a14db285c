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
} from './types.js';

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

class WsConnection implements TransportConnection {
  #high = false;
  handlers: ConnectionHandlers | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly maxBuffered: number,
  ) {}

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  send(frame: string | Uint8Array): boolean {
    const ws = this.ws;
    if (ws.readyState !== ws.OPEN) return false;
    const buffered = ws.bufferedAmount;
    if (buffered > this.maxBuffered) return false;
    if (buffered > this.maxBuffered / 2) {
      // Only watch for drain while the buffer is high: a write callback per frame costs on the fast path.
      this.#high = true;
      ws.send(frame, () => this.#checkDrain());
    } else {
      ws.send(frame);
    }
    return true;
  }

  #checkDrain(): void {
    if (this.#high && this.ws.bufferedAmount <= this.maxBuffered / 4) {
      this.#high = false;
      this.handlers?.drain();
    }
  }

  cork(fn: () => void): void {
    // ws writes each frame with one socket write already; there is nothing public to cork.
    fn();
  }

  close(code: number, reason: string): void {
    const ws = this.ws;
    if (ws.readyState === ws.CLOSING || ws.readyState === ws.CLOSED) return;
    let r = reason;
    while (Buffer.byteLength(r) > MAX_REASON_BYTES) r = r.slice(0, -1);
    try {
      ws.close(code, r);
    } catch {
      ws.terminate();
    }
  }

  terminate(): void {
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
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#open(ws, decision));
    });
  }

  #open(ws: WebSocket, decision: Extract<UpgradeDecision, { ok: true }>): void {
    const conn = new WsConnection(ws, this.options.maxBufferedBytes);
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
