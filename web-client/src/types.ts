/**
 * Public types of the ScanRelay browser client: options, states, events and the WebSocket shape it needs.
 */
import type {
  Codec,
  CommandState,
  JsonObject,
  Limits,
  PresenceEntry,
  Progress,
  SiteEvent,
  SnapshotEntry,
} from '@scanrelay/protocol';
import type { BackoffOptions } from './backoff.js';
import type { ScanRelayError } from './errors.js';
import type { StorageLike, TransportKind, WebTransportClientOptions } from './transport.js';

/**
 * Client connection states. Every change goes through one `setState`, which refuses transitions not drawn here:
 *
 * ```
 *                connect()
 *  disconnected ───────────▶ connecting ──open──▶ authenticating ──welcome──▶ connected
 *                               ▲  │                   │                          │
 *                               │  └──── transient close / timeout ───┴───────────┤
 *                   backoff     │                                                 ▼
 *                   timer  ─────┴────────────────────────────────────────────  reconnecting
 *
 *  any state ── close() or a permanent close (4500–4999 that a fresh token does not fix) ──▶ closed
 *  closed ── connect() ──▶ connecting
 * ```
 */
export type ClientState = 'disconnected' | 'connecting' | 'authenticating' | 'connected' | 'reconnecting' | 'closed';

/** The subset of the WHATWG WebSocket the client uses (browsers' native one and `ws` both fit). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  binaryType: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `ws`'s `WebSocket` (or a wrapper) in Node. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Timer functions, injectable so tests drive time without sleeping. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ClientOptions {
  /**
   * The relay's browser endpoint, `wss://relay.example.org/v1/browser`, or its base URL (`https://…`, `ws://…`),
   * to which `/v1/browser` is appended. Never put a token in it: the token goes in the first message.
   */
  url: string;
  /**
   * Returns a fresh session token (from the manage app). Called before each connection when the current token
   * is missing or near expiry, ahead of expiry for in-band renewal (`auth`), and after a `token_expired` close.
   */
  getToken: () => Promise<string>;
  /** Wire encoding. Default `msgpack` (binary frames); `json` for text frames. */
  codec?: Codec;
  /** WebSocket constructor. Default `globalThis.WebSocket`; pass `ws`'s in Node. */
  WebSocket?: WebSocketConstructor;
  /**
   * Prefer WebTransport: each connection tries the relay's WebTransport listener first when an implementation
   * exists (`globalThis.WebTransport`, or `webTransport.WebTransport`), and falls back to WebSocket (`url`) at once
   * when the session does not open — remembering WebSocket for the rest of the session (in memory, and in
   * `storage`) so later reconnects do not pay the failed attempt again. Unset: WebSocket only.
   */
  webTransport?: WebTransportClientOptions;
  /**
   * Where the WebTransport fallback is remembered across page loads of one tab. Default `sessionStorage` when
   * available; `null` for memory only.
   */
  storage?: StorageLike | null;
  /** Reconnect backoff (full jitter). Default 0.5 s → 30 s. */
  reconnect?: BackoffOptions;
  /** Renew at most this long before the token expires, ms (never later than 3/4 of its remaining life). Default 30,000. */
  renewBeforeMs?: number;
  /** Time allowed from opening the socket to `welcome`, ms. Default 10,000. */
  connectTimeoutMs?: number;
  /**
   * Time allowed for `getToken()` to answer, ms; past it the attempt fails with `token_unavailable` (reported, then
   * retried with backoff). Default `connectTimeoutMs` (10,000).
   */
  tokenTimeoutMs?: number;
  /** Largest frame accepted from the relay, bytes (a big site's snapshot can be large). Default 4 MiB. */
  maxInboundBytes?: number;
  /** Clock, ms epoch. Default `Date.now`. */
  now?: () => number;
  /** Uniform random in [0, 1), for jitter and refs. Default `Math.random`. */
  random?: () => number;
  /** Timers. Default the global ones. */
  timers?: Timers;
}

/** What `welcome` told the client. */
export interface SessionInfo {
  session: string;
  node: string;
  /** When the current session token expires, ms epoch (relay clock). */
  expiresAt: number;
  limits: Limits;
}

export interface ClientEvents {
  /** Every state change. */
  state: { from: ClientState; to: ClientState };
  /**
   * The transport in use changed (also on the first socket that opens). `fallback` says why WebSocket is used
   * although WebTransport is configured: it failed to open now, earlier in this session, or is not available.
   */
  transport: { transport: TransportKind; fallback: ScanRelayError | undefined };
  /** A `welcome` arrived (first connection and every reconnection). */
  connected: SessionInfo;
  /** The socket closed; `reconnectInMs` is undefined when the client will not reconnect. */
  disconnected: { code: number; reason: string; error: ScanRelayError | undefined; reconnectInMs: number | undefined };
  /** The session was renewed in-band (`auth.ok`). */
  renewed: { expiresAt: number };
  /** Something went wrong that the client handled (or could not): renewal failures, relay errors, bad frames. */
  error: ScanRelayError;
  /** The client stopped for good (until `connect()` is called again). */
  closed: { error: ScanRelayError | undefined };
}

/** Subscription states. */
export type SubscriptionState = 'pending' | 'live' | 'failed' | 'closed';

export interface SubscriptionEvents {
  state: { from: SubscriptionState; to: SubscriptionState };
  /**
   * The board was replaced: `subscribed` is the first snapshot, `resync` means the relay's history no longer
   * reached back to our position, so the board was rebuilt from a fresh snapshot (events in between are not
   * replayed).
   */
  snapshot: { reason: 'subscribed' | 'resync'; board: ReadonlyMap<string, SnapshotEntry> };
  /** A site event seen for the first time (each `(gateway, seq)` at most once per Subscription). */
  event: SiteEvent;
  /** A gateway of the site went on- or offline (also fired for the presence list on (re)subscribing). */
  presence: PresenceEntry;
  /** The relay refused the subscription or a resume. */
  error: ScanRelayError;
}

/** One state of a command, as the browser sees it. */
export interface CommandStatus {
  /** The command's id (its token's `jti`). */
  command: string;
  state: CommandState;
  detail?: JsonObject;
  progress?: Progress;
}

/** How a command ended. `error` when the relay refused it outright (`error` reply) or the client closed. */
export interface CommandResult {
  state: 'completed' | 'failed' | 'rejected' | 'expired' | 'timed_out' | 'error';
  command: string | undefined;
  detail?: JsonObject;
  error?: ScanRelayError;
}
