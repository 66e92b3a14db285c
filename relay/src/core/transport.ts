/**
 * The transport contract: how a WebSocket library (ws, uWebSockets.js, later WebTransport) plugs into the
 * relay core. The core never sees a library object; it sees {@link TransportConnection}s and answers
 * {@link TransportHooks}. One adapter per file: `ws.ts` (default, `createWsTransport`), `uws.ts`
 * (`createUwsTransport`). Each adapter module exports a {@link CreateTransport} under that name.
 *
 * ```
 *  client ──HTTP GET + Upgrade──▶ adapter
 *                                   │ hooks.admit(UpgradeRequest)         (sync; policy lives in the core)
 *                                   ├─ {ok:false,status} ──▶ HTTP 400/403/404/429/503, no upgrade
 *                                   └─ {ok:true,subprotocol}
 *                                        │ finish the handshake answering exactly `subprotocol`
 *                                        │ handlers = hooks.open(conn, decision)   (sync, before any frame)
 *  frames ─────────────────────────▶ handlers.message(data, isBinary)
 *  pong frames ────────────────────▶ handlers.pong()
 *  buffer drained ─────────────────▶ handlers.drain()
 *  socket gone (any reason) ───────▶ handlers.close(code, reason)          (exactly once)
 *
 *  other HTTP requests ────────────▶ hooks.http(req, res)                  (/healthz, /metrics, admin API …)
 * ```
 *
 * Adapter obligations (each is tested against the ws adapter in relay/test/integration/transport.test.ts;
 * a new adapter must pass the same tests):
 * - Call `admit` before upgrading, with the path stripped of its query string (a query string is never read).
 *   Refuse with the decision's HTTP status and a short plain-text body; do not upgrade.
 * - Answer the handshake with `decision.subprotocol` only — never echo client text.
 * - Enforce `maxPayloadBytes`: a bigger frame closes the socket with 1009. Permessage-deflate is off.
 * - Attach an error handler to every socket; socket errors end in `handlers.close`, never an unhandled throw.
 * - Never throw out of `send`/`close`/`terminate`/`ping` on a socket that is already closed: no-op instead.
 * - Deliver `close` exactly once per opened connection, also when the server is closed or the socket errors.
 * - Serve every non-upgrade HTTP request through `hooks.http` with Node's `IncomingMessage`/`ServerResponse`
 *   (the admin API of relay/src/auth uses them). An adapter whose library has its own HTTP objects (uWS)
 *   bridges them: e.g. by running a loopback-only `node:http` server for HTTP and proxying to it, or by
 *   building `IncomingMessage`/`ServerResponse` over a Duplex. Copy uWS headers before any `await`.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Codec } from '@scanrelay/protocol';
import type { Logger } from 'pino';

/** Which WebSocket endpoint a connection came in on: `/v1/browser` or `/v1/gateway`. */
export type Endpoint = 'browser' | 'gateway';

/** Names of the transports `SCANRELAY_TRANSPORT` may select. */
export type TransportKind = 'ws' | 'uws';

/** What the adapter tells the core about an upgrade request, before upgrading. */
export interface UpgradeRequest {
  /** URL path without the query string, e.g. `/v1/browser`. */
  path: string;
  /** The `Origin` header, if sent (browsers always send it). */
  origin: string | undefined;
  /** Peer IP address as the socket sees it (IPv4-mapped IPv6 addresses may be passed as is). */
  ip: string;
  /** Subprotocols offered in `Sec-WebSocket-Protocol`, split on `,` (unparsed entries are fine; the core trims). */
  protocols: readonly string[];
  /**
   * The raw `X-Forwarded-For` header, if any. Adapters should pass it; the core uses it only when
   * `SCANRELAY_TRUST_PROXY` is on (the relay sits behind its own proxy), taking the last hop as the client.
   */
  forwardedFor?: string | undefined;
}

/** The core's answer to an {@link UpgradeRequest}. */
export type UpgradeDecision =
  | {
      ok: true;
      endpoint: Endpoint;
      codec: Codec;
      /** The exact subprotocol to answer with (one of the protocol package's fixed names). */
      subprotocol: string;
      /** Client IP the core accounts the connection to (the socket's, or the proxy-reported one). */
      ip: string;
    }
  | {
      ok: false;
      /** 400 no acceptable subprotocol, 403 Origin not allowed, 404 unknown path, 429 caps, 503 shutting down. */
      status: 400 | 403 | 404 | 429 | 503;
      /** Short plain-text reason for the HTTP body (safe to show; never contains request data). */
      message: string;
    };

/** The per-connection callbacks the core returns from {@link TransportHooks.open}. */
export interface ConnectionHandlers {
  /** One complete frame. `data` is a string for text frames (or bytes; the codec decodes UTF-8), bytes for binary. */
  message(data: string | Uint8Array, isBinary: boolean): void;
  /** A WebSocket pong frame arrived (answer to {@link TransportConnection.ping}). */
  pong(): void;
  /** The send buffer has drained below the adapter's low-water mark after being above it. */
  drain(): void;
  /**
   * The connection is gone: closed by either side, terminated, or errored. Called exactly once.
   * `code` is the close code received or sent (1006 when the socket just died); `reason` may be empty.
   */
  close(code: number, reason: string): void;
}

/** One accepted WebSocket, as the core drives it. */
export interface TransportConnection {
  /**
   * Queue one frame (text for a string, binary for bytes). Returns true when the frame was queued and the
   * send buffer is within `maxBufferedBytes`; false when the buffer is already past the cap, in which case
   * the frame is NOT queued and the core cuts the connection (`slow_consumer`). Never throws; a no-op returning
   * false once the socket is closing.
   */
  send(frame: string | Uint8Array): boolean;
  /**
   * Run `fn` with the socket's writes coalesced (several `send`s → one syscall where the library allows it).
   * uWS requires sends made outside its own callbacks (timers, Bus handlers) to be corked; adapters must also
   * accept an uncorked `send` (corking it themselves if their library needs it).
   */
  cork(fn: () => void): void;
  /** Bytes queued for this socket and not yet written to the kernel. */
  readonly bufferedAmount: number;
  /** Start a closing handshake. `reason` must be short ASCII (≤ 123 bytes); adapters truncate longer ones. */
  close(code: number, reason: string): void;
  /** Destroy the socket at once (no closing handshake). `handlers.close` still follows, with 1006. */
  terminate(): void;
  /** Send a WebSocket ping frame; the peer's pong arrives as `handlers.pong()`. */
  ping(): void;
}

/** What the core gives a transport. All hooks are synchronous so they fit every library's callbacks. */
export interface TransportHooks {
  /** Decide on an upgrade before it happens (path, Origin allowlist, subprotocol, per-IP caps, shutdown). */
  admit(request: UpgradeRequest): UpgradeDecision;
  /**
   * A connection was upgraded after `admit` said yes. Must be called synchronously after the handshake
   * completes, before any frame is delivered. Returns the connection's handlers.
   */
  open(connection: TransportConnection, decision: Extract<UpgradeDecision, { ok: true }>): ConnectionHandlers;
  /** Every HTTP request that is not a WebSocket upgrade. The hook always answers (404 for unknown paths). */
  http(req: IncomingMessage, res: ServerResponse): void;
}

/** Limits the adapter enforces itself (the core enforces the rest: rates, caps, timeouts). */
export interface TransportOptions {
  host: string;
  /** 0 picks a free port; {@link TransportServer.listen} returns the bound one. */
  port: number;
  /** Largest inbound frame, bytes; bigger → close 1009. */
  maxPayloadBytes: number;
  /** Send-buffer cap per socket, bytes; `send` returns false past it. */
  maxBufferedBytes: number;
  /** Node http `headersTimeout` (ms) for adapters built on node:http; also bounds the upgrade request. */
  headersTimeoutMs: number;
  /** Node http `requestTimeout` (ms) for plain HTTP requests. */
  requestTimeoutMs: number;
  /** Most headers accepted on a request (node:http `maxHeadersCount`; CVE-2024-37890 class). */
  maxHeadersCount: number;
  logger: Logger;
}

/** A listening transport. */
export interface TransportServer {
  /** Start listening; resolves with the bound address (the real port when `port` was 0). */
  listen(): Promise<{ host: string; port: number }>;
  /**
   * Stop accepting: close the listening socket so no new HTTP request or upgrade is taken. Open WebSockets
   * stay up (the core closes them with 1001). Idempotent.
   */
  stopAccepting(): Promise<void>;
  /** Terminate whatever is still open and release everything. Idempotent. */
  close(): Promise<void>;
}

/**
 * The constructor each adapter module exports (`createWsTransport` in ws.ts, `createUwsTransport` in uws.ts).
 * It must not start listening before `listen()`. It may reject (e.g. uWS not loadable on this runtime) with an
 * Error whose message tells the operator which `SCANRELAY_TRANSPORT` to use instead.
 */
export type CreateTransport = (options: TransportOptions, hooks: TransportHooks) => Promise<TransportServer>;
