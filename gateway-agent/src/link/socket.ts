/**
 * The link's view of one connection to the relay, whatever carries it. The link's state machine, heartbeat,
 * pacing and resume logic are written against this; `transport-ws.ts` (WebSocket, `ws`) and
 * `transport-webtransport.ts` (WebTransport, one bidirectional stream with length-prefixed frames) implement
 * it. Both carry the same protocol v1 frames and the same close codes, so nothing above this file changes
 * with the transport.
 */

/** The transports a link connection can use. */
export type TransportKind = 'websocket' | 'webtransport';

/** What a connection reports. Never called synchronously from `OpenSocket` itself. */
export interface SocketHandlers {
  /** The connection is open and `protocol` holds the relay's chosen subprotocol. */
  open(): void;
  /** One protocol frame: bytes, and whether it was binary (msgpack) or text (json). */
  message(data: Buffer, isBinary: boolean): void;
  /** Transport-level liveness traffic (WebSocket ping/pong frames): counts as "the relay is there". */
  traffic(): void;
  /**
   * Something went wrong; a `close` always follows. `localViolation`: this side detected a protocol violation
   * by the peer and closes itself, so the close code is our complaint, not the relay's verdict.
   */
  error(message: string, localViolation: boolean): void;
  /** The connection is gone, with the relay's close code and reason (1006 when it just dropped). */
  close(code: number, reason: string): void;
}

/** One open (or opening) connection. */
export interface LinkSocket {
  readonly kind: TransportKind;
  /** The subprotocol the relay chose ('' until open). */
  readonly protocol: string;
  /** Bytes queued locally and not yet written to the network. */
  readonly bufferedAmount: number;
  readonly isOpen: boolean;
  readonly isClosed: boolean;
  /** Resolves once the connection is closed (after `close` was reported). */
  readonly whenClosed: Promise<void>;
  send(frame: string | Uint8Array): void;
  /** A transport-level ping (WebSocket ping frame); nothing where the transport has none (protocol pings suffice). */
  ping(): void;
  /** Close with a code and reason the relay sees. */
  close(code: number, reason: string): void;
  /** Drop the connection now, without a closing handshake (a half-open or abandoned connection). */
  terminate(): void;
}

/** Opens a connection to `url` offering `subprotocol`. */
export type OpenSocket = (url: string, subprotocol: string, handlers: SocketHandlers) => LinkSocket;
