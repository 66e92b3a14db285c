/**
 * The gateway's one outbound connection to the relay: an explicit state machine (see types.ts for the
 * diagram). Every change goes through `dispatch(event)` and `setState(next)`; nothing else assigns `state`.
 *
 * - Each connection authenticates with a fresh gateway assertion (`hello {token}` as the first message;
 *   never in the URL).
 * - Relay URLs are tried in turn; between attempts a full-jitter backoff (0.5 s → 30 s) that resets only
 *   after a connection has stayed up for `stableAfterMs`, so a relay that accepts and drops at once is not
 *   hammered.
 * - Close codes decide (protocol `closeAction`): 4000–4499, 1001, network closes → reconnect; 4500–4999
 *   (revoked, unauthenticated, replaced, bad_message …) → stop for good and say why.
 * - Liveness is proven by traffic: while online a protocol `ping` and a WebSocket ping frame go out every
 *   `pingIntervalMs`; if nothing at all (message, pong frame, ping frame) arrives for `deadAfterMs`, the
 *   socket is terminated and replaced. A half-open socket therefore lasts at most deadAfterMs plus one check
 *   interval (default 45 s + 5 s) — never connected-but-deaf.
 * - Transports (socket.ts): WebSocket, WebTransport, or `auto` (transport-select.ts: WebTransport first,
 *   WebSocket when it cannot connect). Everything above the socket — hello, welcome, resume from
 *   `welcome.acked`, heartbeats, pacing, close-code rules — is the same on both, so a gateway that changes
 *   transport between two connections resumes exactly as after any reconnect.
 */
import { EventEmitter } from 'node:events';
import {
  CODES,
  type Codec,
  closeAction,
  codeForClose,
  DEFAULT_MAX_MESSAGE_BYTES,
  decodeFrame,
  encodeMessage,
  type GatewayToRelay,
  type GatewayWelcome,
  ProtocolError,
  type RelayToGateway,
  SUBPROTOCOLS,
  validateMessage,
} from '@scanrelay/protocol';
import type { Logger } from '../log.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import type { LinkSocket, OpenSocket, TransportKind } from './socket.js';
import { label, type TransportMode, TransportSelector } from './transport-select.js';
import { webSocketOpener } from './transport-ws.js';
import type { LinkEvent, LinkEvents, LinkState, StopInfo } from './types.js';

/** What an operator should check when the relay refuses the gateway for good, by reason. */
const STOP_HINTS: Readonly<Record<string, string>> = {
  unauthenticated:
    'the relay did not accept the gateway assertion: check the clock (NTP), SCANRELAY_GATEWAY_AUDIENCE against the ' +
    "relay's SCANRELAY_AUDIENCE, and that this gateway is still enrolled",
  token_expired: 'the gateway assertion was expired on arrival: check the clock (NTP) of the gateway and the relay',
  replaced: 'another agent with the same identity connected: run only one agent per state directory',
  bad_message: 'the relay refused a message as invalid: check that gateway and relay run compatible versions',
  forbidden: 'the relay refused this gateway for its site: check its enrolment on the relay',
  identity_mismatch: 'the relay answered for another gateway or site: check SCANRELAY_GATEWAY_RELAY_URLS',
};

export interface LinkOptions {
  /** WebSocket URLs of the relay's gateway endpoint (`ws(s)://host/v1/gateway`), tried in turn. */
  urls: string[];
  /** Transport policy (default `websocket`); see transport-select.ts. */
  transport?: TransportMode;
  /** WebTransport URLs of the relay's gateway endpoint (`https://host:port/v1/gateway`), tried in turn. */
  webTransportUrls?: string[];
  /** Opens WebTransport connections (required unless `transport` is `websocket`; see transport-webtransport.ts). */
  openWebTransport?: OpenSocket;
  /** Opens WebSocket connections (default: `ws`). */
  openWebSocket?: OpenSocket;
  /** In `auto` mode, how long to stay on WebSocket after WebTransport failed to connect, ms (default 600 000). */
  webTransportRetryMs?: number;
  gatewayId: string;
  site: string;
  /** Makes a fresh gateway assertion (one per connection). */
  assertion: () => Promise<string>;
  logger: Logger;
  /** Subprotocol codec (default msgpack). */
  codec?: Codec;
  /** Interval between heartbeats while online, ms (default 15 000). */
  pingIntervalMs?: number;
  /** Silence after which the socket is declared dead and replaced, ms (default 45 000). */
  deadAfterMs?: number;
  /** Time allowed from TCP connect to `welcome`, ms (default 10 000). */
  helloTimeoutMs?: number;
  /** Time a connection must stay online before the backoff resets, ms (default 30 000). */
  stableAfterMs?: number;
  backoff?: BackoffOptions;
  /** Largest frame either way, bytes (default 64 KiB). */
  maxMessageBytes?: number;
  /** Above this many bytes queued in the socket, `canSend()` is false (default 1 MiB). */
  maxBufferedBytes?: number;
  /**
   * Pace of outgoing frames, kept under the relay's per-connection rate limit (50/s, burst 100 by default)
   * because a frame the relay drops for rate is never stored. `canSend()` is false while the budget is
   * spent; statuses and heartbeats are always sent and count against it. Default 40/s, burst 80 (never
   * more than the relay's bucket allows over any interval).
   */
  sendRate?: { perSecond: number; burst: number };
  now?: () => number;
}

export class GatewayLink extends EventEmitter<LinkEvents> {
  private current: LinkState = 'idle';
  private readonly codec: Codec;
  private readonly backoff: Backoff;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly pingIntervalMs: number;
  private readonly deadAfterMs: number;
  private readonly helloTimeoutMs: number;
  private readonly stableAfterMs: number;
  private readonly maxMessageBytes: number;
  private readonly maxBufferedBytes: number;
  private ws: LinkSocket | undefined;
  private readonly urlIndex: Record<TransportKind, number> = { websocket: 0, webtransport: 0 };
  private readonly endpoints: Record<TransportKind, string[]>;
  private readonly openers: Partial<Record<TransportKind, OpenSocket>>;
  private readonly selector: TransportSelector;
  private kind: TransportKind;
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private lastTraffic = 0;
  private lastPingSent = 0;
  private pings = 0;
  private onlineAt = 0;
  private lastError: { code: string; message: string } | undefined;
  /**
   * The current socket is being closed by this side (a frame the relay sent broke the protocol, or the
   * subprotocol was not accepted). Its close code then describes our complaint, not the relay's verdict, so
   * it must not stop the gateway for good: it reconnects with backoff.
   */
  private closingLocally = false;
  private readonly rate: { perSecond: number; burst: number };
  private tokens: number;
  private tokensAt = 0;
  private stopInfo: StopInfo | undefined;
  private readonly stoppedPromise: Promise<StopInfo>;
  private resolveStopped!: (info: StopInfo) => void;

  constructor(private readonly opts: LinkOptions) {
    super();
    this.codec = opts.codec ?? 'msgpack';
    this.backoff = new Backoff(opts.backoff);
    this.log = opts.logger;
    this.now = opts.now ?? Date.now;
    const mode = opts.transport ?? 'websocket';
    this.endpoints = { websocket: opts.urls, webtransport: opts.webTransportUrls ?? [] };
    if (mode !== 'webtransport' && opts.urls.length === 0)
      throw new TypeError('GatewayLink needs at least one relay WebSocket URL');
    if (mode !== 'websocket' && (this.endpoints.webtransport.length === 0 || !opts.openWebTransport))
      throw new TypeError(`GatewayLink in ${mode} mode needs webTransportUrls and openWebTransport`);
    this.selector = new TransportSelector(mode, this.now, this.log, opts.webTransportRetryMs);
    this.kind = mode === 'webtransport' ? 'webtransport' : 'websocket';
    this.pingIntervalMs = opts.pingIntervalMs ?? 15_000;
    this.deadAfterMs = opts.deadAfterMs ?? 45_000;
    this.helloTimeoutMs = opts.helloTimeoutMs ?? 10_000;
    this.stableAfterMs = opts.stableAfterMs ?? 30_000;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 1024 * 1024;
    this.rate = opts.sendRate ?? { perSecond: 40, burst: 80 };
    this.tokens = this.rate.burst;
    this.openers = {
      websocket:
        opts.openWebSocket ??
        webSocketOpener({
          maxPayload: this.maxMessageBytes,
          handshakeTimeoutMs: this.helloTimeoutMs,
          logger: this.log,
        }),
      ...(opts.openWebTransport ? { webtransport: opts.openWebTransport } : {}),
    };
    this.stoppedPromise = new Promise((resolve) => {
      this.resolveStopped = resolve;
    });
  }

  get state(): LinkState {
    return this.current;
  }

  /** The URL of the current or last connection attempt. */
  get url(): string {
    return this.endpoints[this.kind][this.urlIndex[this.kind]]!;
  }

  /** The transport of the current or last connection attempt. */
  get transport(): TransportKind {
    return this.kind;
  }

  /** Resolves once the link has stopped for good (stop() or a permanent close). */
  get stopped(): Promise<StopInfo> {
    return this.stoppedPromise;
  }

  start(): void {
    this.dispatch({ type: 'start' });
  }

  /** Stop for good: close the socket (1000) and never reconnect. */
  async stop(): Promise<void> {
    const ws = this.ws;
    this.dispatch({ type: 'stop', info: { reason: 'requested', message: 'the agent is stopping' } });
    if (ws && !ws.isClosed) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([
        ws.whenClosed,
        new Promise<void>((resolve) => {
          t = setTimeout(() => {
            ws.terminate();
            resolve();
          }, 2000);
        }),
      ]);
      clearTimeout(t);
    }
  }

  /**
   * True when online, the socket is not backed up and the send budget allows another frame: the owner may
   * send more events now. When false while online, try again after `retryAfterMs()`.
   */
  canSend(): boolean {
    return (
      this.current === 'online' &&
      this.ws !== undefined &&
      this.ws.bufferedAmount < this.maxBufferedBytes &&
      this.refill() >= 1
    );
  }

  /** How long until another frame fits the send budget, ms. */
  retryAfterMs(): number {
    const missing = 1 - this.refill();
    return missing <= 0 ? 0 : Math.ceil((missing * 1000) / this.rate.perSecond);
  }

  private refill(): number {
    const now = this.now();
    this.tokens = Math.min(this.rate.burst, this.tokens + ((now - this.tokensAt) * this.rate.perSecond) / 1000);
    this.tokensAt = now;
    return this.tokens;
  }

  /** Send a message if online. Returns false (nothing sent) when not online or the frame would be too big. */
  send(message: GatewayToRelay): boolean {
    if (this.current !== 'online' || !this.ws) return false;
    return this.write(this.ws, message);
  }

  // ─── state machine ──────────────────────────────────────────────────────────────────────────────────

  private dispatch(event: LinkEvent): void {
    const state = this.current;
    if (state === 'stopped') return;
    switch (event.type) {
      case 'start':
        if (state === 'idle') this.connect();
        return;
      case 'stop':
        this.finish(event.info);
        return;
      case 'socket_open':
        if (state === 'connecting') this.authenticate();
        return;
      case 'welcome':
        if (state === 'authenticating') this.goOnline(event.welcome);
        return;
      case 'socket_closed':
        this.onClosed(event.code, event.reason);
        return;
      case 'socket_error':
        // ws always follows an error with 'close', which decides what happens next.
        this.log.warn({ url: this.url, transport: this.kind, state, error: event.message }, 'relay link: socket error');
        return;
      case 'hello_timeout':
        if (state !== 'authenticating' && state !== 'connecting') return;
        this.log.warn({ url: this.url, transport: this.kind }, 'relay link: no welcome in time; trying again');
        this.dropSocket();
        this.toBackoff(false, 'no welcome in time');
        return;
      case 'heartbeat_lost':
        if (state !== 'online') return;
        this.log.warn(
          { url: this.url, silentMs: event.silentMs },
          'relay link: no traffic from the relay within the liveness bound (half-open socket?); replacing it',
        );
        this.dropSocket();
        this.toBackoff(false);
        return;
      case 'backoff_elapsed':
        if (state === 'backoff') this.connect();
        return;
    }
  }

  private setState(next: LinkState): void {
    const prev = this.current;
    if (prev === next) return;
    this.current = next;
    this.log.debug({ from: prev, to: next }, 'relay link state');
    this.emit('state', next, prev);
    if (prev === 'online') this.emit('offline');
  }

  private connect(): void {
    this.setState('connecting');
    this.kind = this.selector.next();
    const url = this.url;
    this.clearTimer();
    this.timer = setTimeout(() => this.dispatch({ type: 'hello_timeout' }), this.helloTimeoutMs);
    this.opts.assertion().then(
      (token) => {
        if (this.current !== 'connecting') return;
        try {
          this.open(url, token);
        } catch (err) {
          // A client constructor refusing the URL or its options: say so, not "could not sign".
          const message = (err as Error)?.message ?? String(err);
          this.log.error({ url, transport: this.kind, err: message }, 'relay link: could not open a connection');
          this.toBackoff(false, message);
        }
      },
      (err: unknown) => {
        this.log.error({ err }, 'relay link: could not sign the gateway assertion (is the key file readable?)');
        if (this.current === 'connecting') this.toBackoff(false);
      },
    );
  }

  private open(url: string, token: string): void {
    this.lastError = undefined;
    this.closingLocally = false;
    const subprotocol = SUBPROTOCOLS[this.codec];
    const open = this.openers[this.kind]!;
    // Events of a socket this link has since replaced or dropped are ignored. Handlers are never called
    // synchronously by `open`, so `ws` is assigned before any of them runs.
    const mine = () => this.ws === ws;
    const ws: LinkSocket = open(url, subprotocol, {
      open: () => {
        if (!mine()) return;
        if (ws.protocol !== subprotocol) {
          this.log.error({ url, protocol: ws.protocol }, 'relay link: the relay did not accept our subprotocol');
          this.closingLocally = true;
          ws.close(1002, 'subprotocol');
          return;
        }
        this.write(ws, { type: 'hello', token });
        this.dispatch({ type: 'socket_open' });
      },
      message: (data, isBinary) => {
        if (mine()) this.onFrame(data, isBinary);
      },
      traffic: () => {
        if (mine()) this.lastTraffic = this.now();
      },
      error: (message, localViolation) => {
        if (!mine()) return;
        if (localViolation) this.closingLocally = true;
        this.dispatch({ type: 'socket_error', message });
      },
      close: (code, reason) => {
        if (mine()) this.dispatch({ type: 'socket_closed', code, reason });
      },
    });
    this.ws = ws;
  }

  private authenticate(): void {
    this.setState('authenticating');
  }

  private goOnline(welcome: GatewayWelcome): void {
    if (welcome.gateway !== this.opts.gatewayId || welcome.site !== this.opts.site) {
      this.log.error(
        {
          expected: { gateway: this.opts.gatewayId, site: this.opts.site },
          got: { gateway: welcome.gateway, site: welcome.site },
        },
        'relay link: the relay welcomed a different gateway or site than this identity; stopping',
      );
      this.finish({ reason: 'identity_mismatch', message: 'the relay answered for another gateway or site' });
      return;
    }
    this.clearTimer();
    this.onlineAt = this.now();
    this.lastTraffic = this.onlineAt;
    this.lastPingSent = this.onlineAt;
    this.setState('online');
    this.log.info(
      { url: this.url, transport: this.kind, node: welcome.node, acked: welcome.acked },
      `relay link online over ${label(this.kind)}`,
    );
    const tick = Math.max(10, Math.min(this.pingIntervalMs, Math.floor(this.deadAfterMs / 3), 5000));
    this.heartbeat = setInterval(() => this.beat(), tick);
    this.emit('online', welcome);
  }

  private beat(): void {
    const ws = this.ws;
    if (this.current !== 'online' || !ws) return;
    const now = this.now();
    const silent = now - this.lastTraffic;
    if (silent >= this.deadAfterMs) {
      this.dispatch({ type: 'heartbeat_lost', silentMs: silent });
      return;
    }
    if (now - this.lastPingSent >= this.pingIntervalMs) {
      this.lastPingSent = now;
      this.pings = (this.pings + 1) % 1_000_000;
      this.write(ws, { type: 'ping', ref: `hb-${this.pings}` });
      try {
        ws.ping();
      } catch {
        // The socket is closing; 'close' will follow.
      }
    }
  }

  private onFrame(bytes: Buffer, isBinary: boolean): void {
    this.lastTraffic = this.now();
    let message: RelayToGateway;
    try {
      message = validateMessage('relay→gateway', decodeFrame(this.codec, bytes, isBinary, this.maxMessageBytes));
    } catch (err) {
      // Never log decoder text: it may hold decoded bytes.
      const field = err instanceof ProtocolError ? err.field : undefined;
      this.log.warn({ field }, 'relay link: ignored a message from the relay that does not match protocol v1');
      return;
    }
    switch (message.type) {
      case 'welcome':
        this.dispatch({ type: 'welcome', welcome: message });
        return;
      case 'command':
        if (this.current === 'online') this.emit('command', message);
        return;
      case 'event.ack':
        if (this.current === 'online') this.emit('ack', message.seq);
        return;
      case 'pong':
        return;
      case 'error':
        this.lastError = { code: message.code, message: message.message };
        this.log.warn({ code: message.code, message: message.message }, 'relay link: the relay reported an error');
        return;
    }
  }

  private onClosed(code: number, reason: string): void {
    this.dropSocket();
    const state = this.current;
    if (state === 'idle' || state === 'backoff') return;
    const action = this.closingLocally ? 'reconnect' : closeAction(code);
    const errorCode = codeForClose(code) ?? this.lastError?.code;
    if (action === 'stop') {
      const message = errorCode && errorCode in CODES ? CODES[errorCode as keyof typeof CODES].message : reason;
      this.finish({ reason: errorCode ?? `close_${code}`, closeCode: code, message: message || `closed with ${code}` });
      return;
    }
    this.log.warn(
      { url: this.url, transport: this.kind, code, reason, state, error: errorCode },
      'relay link closed; will reconnect',
    );
    this.toBackoff(code === 1001, `closed with ${code}${errorCode ? ` (${errorCode})` : ''}`);
  }

  /** `transportFailure`: why the attempt failed, when the transport may be the cause (auto mode falls back). */
  private toBackoff(quick: boolean, transportFailure?: string): void {
    this.clearTimer();
    if (this.onlineAt > 0 && this.now() - this.onlineAt >= this.stableAfterMs) this.backoff.reset();
    this.onlineAt = 0;
    // In auto mode a WebTransport attempt that never got a welcome switches to WebSocket for the next one, at
    // once: a different path, not a retry of the failed one.
    const fallback =
      this.current !== 'online' &&
      transportFailure !== undefined &&
      this.selector.failedToConnect(this.kind, transportFailure);
    // A node shutting down (1001) asks for an immediate reconnect elsewhere: only a small jitter, no growth.
    const delay = quick || fallback ? this.backoff.jitter(500) : this.backoff.next();
    const list = this.endpoints[this.kind];
    this.urlIndex[this.kind] = (this.urlIndex[this.kind] + 1) % list.length;
    this.setState('backoff');
    this.log.info(
      { delayMs: delay, transport: this.kind, attempt: this.backoff.attempts },
      'relay link: reconnecting after backoff',
    );
    this.timer = setTimeout(() => this.dispatch({ type: 'backoff_elapsed' }), delay);
  }

  private finish(info: StopInfo): void {
    this.clearTimer();
    const ws = this.ws;
    this.dropSocket(info.reason === 'requested' ? ws : undefined);
    this.stopInfo = info;
    this.setState('stopped');
    if (info.reason === 'requested') this.log.info('relay link stopped');
    else if (info.reason === 'revoked')
      this.log.fatal(
        { closeCode: info.closeCode },
        'relay link: this gateway has been REVOKED by the relay operator. It will not reconnect. ' +
          'To bring it back, enrol it again: scanrelay-gateway activate --relay <url> --code <new code>',
      );
    else
      this.log.fatal(
        { reason: info.reason, closeCode: info.closeCode, message: info.message, hint: STOP_HINTS[info.reason] },
        'relay link stopped for good: the relay refused this gateway permanently; fix the cause and restart',
      );
    this.emit('stopped', info);
    this.resolveStopped(info);
  }

  /** Detach from the current socket. With `closeGracefully`, close it with 1000; otherwise terminate it. */
  private dropSocket(closeGracefully?: LinkSocket): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    const ws = this.ws;
    this.ws = undefined;
    if (!ws) return;
    if (closeGracefully === ws && ws.isOpen) ws.close(1000, 'stopping');
    else if (!ws.isClosed) ws.terminate();
  }

  private write(ws: LinkSocket, message: GatewayToRelay): boolean {
    const frame = encodeMessage(this.codec, message);
    const size = typeof frame === 'string' ? Buffer.byteLength(frame) : frame.byteLength;
    if (size > this.maxMessageBytes) {
      this.log.error({ type: message.type, size }, 'relay link: message too large to send; dropped');
      return false;
    }
    if (!ws.isOpen) return false;
    this.refill();
    this.tokens -= 1;
    ws.send(frame);
    return true;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Why the link stopped, once it has. */
  get stopReason(): StopInfo | undefined {
    return this.stopInfo;
  }
}
