/** The WebSocket transport of the relay link (`ws`): binary frames for msgpack, text for json. */
import { type RawData, WebSocket } from 'ws';
import type { Logger } from '../log.js';
import type { LinkSocket, OpenSocket, SocketHandlers } from './socket.js';

export interface WebSocketOptions {
  /** Largest frame accepted from the relay, bytes. */
  maxPayload: number;
  /** Time allowed for the TCP + TLS + upgrade handshake, ms. */
  handshakeTimeoutMs: number;
  logger: Logger;
}

/** An `OpenSocket` over WebSocket. TLS (wss) is validated by Node against its CA store, host name included. */
export function webSocketOpener(options: WebSocketOptions): OpenSocket {
  return (url: string, subprotocol: string, handlers: SocketHandlers): LinkSocket => {
    const ws = new WebSocket(url, [subprotocol], {
      maxPayload: options.maxPayload,
      perMessageDeflate: false,
      handshakeTimeout: options.handshakeTimeoutMs,
      followRedirects: false,
    });
    let resolveClosed!: () => void;
    const whenClosed = new Promise<void>((resolve) => {
      resolveClosed = resolve;
    });
    ws.on('open', () => handlers.open());
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const bytes = Buffer.isBuffer(data)
        ? data
        : Array.isArray(data)
          ? Buffer.concat(data)
          : Buffer.from(data as ArrayBuffer);
      handlers.message(bytes, isBinary);
    });
    ws.on('pong', () => handlers.traffic());
    ws.on('ping', () => handlers.traffic());
    ws.on('unexpected-response', (_req, res) => {
      options.logger.warn({ url, status: res.statusCode }, 'relay link: the relay refused the WebSocket upgrade');
      res.resume();
      ws.terminate();
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // ws reports protocol violations by the peer (oversized frame, bad opcode …) as WS_ERR_* and then
      // closes the socket itself with the matching code.
      handlers.error(err.message, err.code?.startsWith('WS_ERR_') ?? false);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      resolveClosed();
      handlers.close(code, reason.toString('utf8').slice(0, 123));
    });
    return {
      kind: 'websocket',
      get protocol() {
        return ws.protocol;
      },
      get bufferedAmount() {
        return ws.bufferedAmount;
      },
      get isOpen() {
        return ws.readyState === WebSocket.OPEN;
      },
      get isClosed() {
        return ws.readyState === WebSocket.CLOSED;
      },
      whenClosed,
      send: (frame) => ws.send(frame, { binary: typeof frame !== 'string' }),
      ping: () => ws.ping(),
      close: (code, reason) => ws.close(code, reason),
      terminate: () => ws.terminate(),
    };
  };
}
