/**
 * `ScanRelayClient` — the browser side of protocol v1 as an explicit state machine (see `ClientState`).
 *
 * ```ts
 * const client = new ScanRelayClient({ url: 'wss://relay.example.org', getToken: () => fetchSessionToken() });
 * client.on('state', ({ to }) => console.log(to));
 * client.connect();
 * const site = client.subscribe('site-a');
 * site.on('event', (e) => render(e));
 * const handle = client.send(await fetchCommandToken('ACC123'));
 * for await (const status of handle) console.log(status.state);   // accepted, delivered, verified, …
 * const result = await handle.done;                                // { state: 'completed', … }
 * ```
 *
 * Reconnects with full-jitter backoff when the close code says so (`closeAction`), resumes each site from its
 * last position, renews the session in-band before it expires (`getToken()` → `auth` → `auth.ok`), keeps the
 * link proven with protocol pings, and validates every inbound frame against the protocol's schemas.
 */
import {
  type BrowserToRelay,
  type Codec,
  closeAction,
  DEFAULT_MAX_MESSAGE_BYTES,
  decodeFrame,
  encodeMessage,
  MAX_TOKEN_LENGTH,
  ProtocolError,
  type RelayToBrowser,
  SUBPROTOCOLS,
  utf8Length,
  validateMessage,
} from '@scanrelay/protocol';
import { DEFAULT_BACKOFF, fullJitterDelay } from './backoff.js';
import { CommandHandle, readJti, statusFromEvent } from './command.js';
import { Emitter } from './emitter.js';
import { errorForClose, ScanRelayError } from './errors.js';
import { Renewal } from './renewal.js';
import { DEAD_LINK_CLOSE, defaultTimers, TOKEN_CLOSE_CODES, TRANSITIONS, WS_OPEN } from './states.js';
import { Subscription } from './subscription.js';
import { fetchToken } from './token.js';
import { browserEndpoint, frameBytes, type TransportKind, TransportPolicy } from './transport.js';
import type {
  ClientEvents,
  ClientOptions,
  ClientState,
  SessionInfo,
  Timers,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';

export class ScanRelayClient extends Emitter<ClientEvents> {
  readonly #url: string;
  readonly #codec: Codec;
  readonly #opts: ClientOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #timers: Timers;
  readonly #backoff: Required<NonNullable<ClientOptions['reconnect']>>;
  readonly #renewal: Renewal;

  #state: ClientState = 'disconnected';
  #socket: WebSocketLike | undefined;
  #session: SessionInfo | undefined;
  #token: string | undefined;
  #tokenExpiresAt = 0;
  #attempt = 0;
  /** Set when the last close asked for a fresh token; a second such close in a row stops the client. */
  #freshTokenNeeded = false;
  #lastError: ScanRelayError | undefined;
  #reconnectTimer: unknown;
  #connectTimer: unknown;
  /** WebTransport only: the session must open within `openTimeoutMs`, else WebSocket is used. */
  #openTimer: unknown;
  readonly #transports: TransportPolicy;
  #transport: TransportKind | undefined;
  #pingTimer: unknown;
  #lastReceivedAt = 0;
  #lastPingAt = 0;
  #refCounter = 0;
  #subs = new Map<string, Subscription>();
  #commands = new Map<string, CommandHandle>();
  #commandsById = new Map<string, CommandHandle>();

  constructor(options: ClientOptions) {
    super();
    this.#opts = options;
    this.#url = browserEndpoint(options.url);
    this.#codec = options.codec ?? 'msgpack';
    if (this.#codec !== 'msgpack' && this.#codec !== 'json')
      throw new TypeError(`options.codec must be "msgpack" or "json" (got ${String(this.#codec)})`);
    if (typeof options.getToken !== 'function')
      throw new TypeError('options.getToken must be a function returning a session token');
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#timers = options.timers ?? defaultTimers;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.reconnect };
    if (!(this.#backoff.initialDelayMs > 0 && this.#backoff.maxDelayMs >= this.#backoff.initialDelayMs))
      throw new TypeError('options.reconnect needs 0 < initialDelayMs ≤ maxDelayMs');
    this.#transports = new TransportPolicy(options.webTransport, options.storage);
    this.#renewal = new Renewal({
      now: this.#now,
      timers: this.#timers,
      renewBeforeMs: options.renewBeforeMs ?? 30_000,
      fetchToken: () => this.#fetchToken(),
      send: (token, ref) => this.#sendMessage({ type: 'auth', token, ref }),
      nextRef: () => this.#nextRef('auth'),
      renewed: (expiresAt, token) => {
        this.#token = token;
        this.#tokenExpiresAt = expiresAt;
        if (this.#session) this.#session = { ...this.#session, expiresAt };
        this.emit('renewed', { expiresAt });
      },
      failed: (error) => this.emit('error', error),
    });
  }

  /** Current state. */
  get state(): ClientState {
    return this.#state;
  }
  /** What the last `welcome` said (undefined before the first). */
  get session(): SessionInfo | undefined {
    return this.#session;
  }
  /**
   * The transport of the current (or last) connection: `webtransport` or `websocket`; undefined before the first
   * socket opened. The `transport` event reports each change.
   */
  get transport(): TransportKind | undefined {
    return this.#transport;
  }
  /** Active subscriptions by site. */
  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.#subs;
  }

  /** Open the connection (no-op when already connecting or connected). */
  connect(): void {
    if (this.#state !== 'disconnected' && this.#state !== 'closed') return;
    this.#attempt = 0;
    this.#freshTokenNeeded = false;
    void this.#open();
  }

  /** Close for good: fails commands still waiting, ends subscriptions, no reconnect. */
  close(): void {
    this.#stop(undefined, 1000, 'client closed');
  }

  /**
   * Watch a site. Returns the existing Subscription if there is one. Works in any state: the subscribe goes out
   * once the connection is authenticated, and again (resuming) after every reconnect.
   */
  subscribe(site: string): Subscription {
    const existing = this.#subs.get(site);
    if (existing) return existing;
    const sub = new Subscription(site, {
      sendSubscribe: (s, since) =>
        this.#sendMessage({ type: 'subscribe', site: s, ref: this.#nextRef('sub'), ...(since ? { since } : {}) }),
      sendUnsubscribe: (s) => this.#sendMessage({ type: 'unsubscribe', site: s }),
      forget: (s) => {
        if (this.#subs.get(s.site) === s) this.#subs.delete(s.site);
      },
    });
    this.#subs.set(site, sub);
    if (this.#state === 'connected') sub.resubscribe();
    return sub;
  }

  /**
   * Send a signed command token towards its gateway. The returned handle iterates the command's statuses and
   * resolves `done` with its outcome. Sent now if connected, else as soon as the connection is authenticated.
   */
  send(commandToken: string): CommandHandle {
    const handle = new CommandHandle(this.#nextRef('cmd'), commandToken, readJti(commandToken));
    if (typeof commandToken !== 'string' || commandToken.length === 0 || commandToken.length > MAX_TOKEN_LENGTH) {
      handle.fail(
        new ScanRelayError('bad_message', `a command token is a JWS of at most ${MAX_TOKEN_LENGTH} characters`),
      );
      return handle;
    }
    if (this.#state === 'closed') {
      handle.fail(new ScanRelayError('closed', 'the client is closed; call connect() first'));
      return handle;
    }
    this.#commands.set(handle.ref, handle);
    if (handle.command) this.#commandsById.set(handle.command, handle);
    void handle.done.then(() => {
      this.#commands.delete(handle.ref);
      if (handle.command && this.#commandsById.get(handle.command) === handle)
        this.#commandsById.delete(handle.command);
    });
    if (this.#state === 'connected') this.#sendCommand(handle);
    return handle;
  }

  // ─── state machine ─────────────────────────────────────────────────────────────────────────────────

  #setState(to: ClientState): void {
    const from = this.#state;
    if (from === to) return;
    if (!TRANSITIONS[from].includes(to)) throw new Error(`ScanRelayClient: invalid transition ${from} → ${to}`);
    this.#state = to;
    this.emit('state', { from, to });
  }

  async #open(): Promise<void> {
    this.#setState('connecting');
    let token: string;
    try {
      token = await this.#currentToken();
    } catch (err) {
      if (this.#state !== 'connecting') return;
      const error =
        err instanceof ScanRelayError
          ? err
          : new ScanRelayError('token_unavailable', 'getToken() failed', { cause: err });
      this.emit('error', error);
      this.#scheduleReconnect(0, '', error);
      return;
    }
    if (this.#state !== 'connecting') return; // close() while fetching
    const wt = this.#transports.webTransport(); // (also forgets a fallback of a previous attempt that failed)
    if (wt) this.#openSocket(token, 'webtransport', wt.url, wt.Socket);
    else this.#openWebSocket(token);
  }

  #openWebSocket(token: string): void {
    const Ctor = this.#opts.WebSocket ?? (globalThis as { WebSocket?: ClientOptions['WebSocket'] }).WebSocket;
    if (!Ctor) {
      this.#stop(new ScanRelayError('connect_failed', 'no WebSocket implementation: pass options.WebSocket'), 1000, '');
      return;
    }
    this.#openSocket(token, 'websocket', this.#url, Ctor);
  }

  /**
   * Open one socket of `kind` and say hello on it. A WebTransport session that does not open (absent listener,
   * blocked UDP, refused certificate, nothing within `openTimeoutMs`) is replaced at once by a WebSocket, still in
   * `connecting` (see `#fallBack`). One that opened and closes later is a normal close.
   */
  #openSocket(token: string, kind: TransportKind, url: string, Ctor: WebSocketConstructor): void {
    let socket: WebSocketLike;
    try {
      socket = new Ctor(url, [SUBPROTOCOLS[this.#codec]]);
    } catch (err) {
      if (kind === 'webtransport') {
        this.#fallBack(token, err);
        return;
      }
      this.#scheduleReconnect(
        0,
        '',
        new ScanRelayError('connect_failed', 'could not open the WebSocket', { cause: err }),
      );
      return;
    }
    socket.binaryType = 'arraybuffer';
    this.#socket = socket;
    this.#lastError = undefined;
    let opened = false;
    this.#connectTimer = this.#timers.setTimeout(() => {
      if (this.#socket !== socket || this.#state === 'connected') return;
      // (openTimeoutMs set longer than connectTimeoutMs: a session that never opened is still a fallback.)
      if (kind === 'webtransport' && !opened) this.#fallBack(token, new Error('the session did not open in time'));
      else this.#dropSocket(DEAD_LINK_CLOSE, 'no welcome in time');
    }, this.#opts.connectTimeoutMs ?? 10_000);
    if (kind === 'webtransport')
      this.#openTimer = this.#timers.setTimeout(() => {
        if (this.#socket === socket && !opened) this.#fallBack(token, new Error('the session did not open in time'));
      }, this.#transports.openTimeoutMs);
    socket.onopen = () => {
      if (this.#socket !== socket) return;
      opened = true;
      if (this.#openTimer !== undefined) this.#timers.clearTimeout(this.#openTimer);
      this.#openTimer = undefined;
      if (socket.protocol !== SUBPROTOCOLS[this.#codec]) {
        this.#stop(
          new ScanRelayError('connect_failed', `the relay did not accept ${SUBPROTOCOLS[this.#codec]}`),
          1002,
          '',
        );
        return;
      }
      this.#transportOpened(kind);
      this.#setState('authenticating');
      this.#lastReceivedAt = this.#now();
      this.#sendMessage({ type: 'hello', token }, true);
    };
    socket.onmessage = (ev) => {
      if (this.#socket === socket) this.#receive(ev.data);
    };
    let failure: unknown;
    socket.onerror = (ev) => {
      // Always followed by onclose, which decides what to do; WebTransport's error says why it failed.
      failure = (ev as { error?: unknown } | undefined)?.error;
    };
    socket.onclose = (ev) => {
      if (this.#socket !== socket) return;
      // Closed before it opened, without an application close code: the transport itself failed.
      if (kind === 'webtransport' && !opened && ev.code < 4000)
        this.#fallBack(token, failure ?? new Error(`the session closed before it opened (code ${ev.code})`));
      else this.#closed(ev.code, ev.reason);
    };
  }

  /**
   * WebTransport failed to open: open a WebSocket now, in the same attempt. WebSocket is remembered for the
   * session only if it then opens — when neither does, the relay is simply unreachable and the next attempt tries
   * WebTransport again.
   */
  #fallBack(token: string, cause: unknown): void {
    const socket = this.#socket;
    this.#detach();
    if (socket)
      try {
        socket.close(1000, 'falling back to WebSocket');
      } catch {
        // Never opened; nothing to close.
      }
    this.#transports.failed(cause);
    if (this.#state === 'connecting') this.#openWebSocket(token);
  }

  /** A socket opened: note the transport in use, and tell listeners when it changed. */
  #transportOpened(kind: TransportKind): void {
    const fallback = this.#transports.opened(kind);
    if (this.#transport === kind) return;
    this.#transport = kind;
    this.emit('transport', { transport: kind, fallback });
  }

  /** Close the current socket ourselves (dead link) and treat it as a transient close. */
  #dropSocket(code: number, reason: string): void {
    const socket = this.#socket;
    if (!socket) return;
    try {
      socket.close(code, reason);
    } catch {
      // Already closing.
    }
    this.#closed(code, reason);
  }

  #closed(code: number, reason: string): void {
    this.#detach();
    // The relay's own `error` just before the close explains it better (its message), if it is about the same thing.
    const fromClose = errorForClose(code, reason);
    const error = this.#lastError?.code === fromClose.code ? this.#lastError : fromClose;
    if (this.#state === 'closed') return;
    const tokenProblem = TOKEN_CLOSE_CODES.has(code);
    if (tokenProblem && !this.#freshTokenNeeded) {
      // token_expired / unauthenticated: a fresh token can fix it. Once; a second in a row is final.
      this.#freshTokenNeeded = true;
      this.#token = undefined;
      this.#scheduleReconnect(code, reason, error, 0);
      return;
    }
    if (closeAction(code) === 'stop') {
      this.#stop(error, code, reason);
      return;
    }
    this.#scheduleReconnect(code, reason, error);
  }

  #scheduleReconnect(code: number, reason: string, error: ScanRelayError | undefined, delayOverride?: number): void {
    const delay = delayOverride ?? fullJitterDelay(this.#attempt++, this.#random(), this.#backoff);
    this.#setState('reconnecting');
    this.emit('disconnected', { code, reason, error, reconnectInMs: delay });
    this.#reconnectTimer = this.#timers.setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#state === 'reconnecting') void this.#open();
    }, delay);
  }

  #stop(error: ScanRelayError | undefined, code: number, reason: string): void {
    if (this.#state === 'closed') return;
    const socket = this.#socket;
    this.#detach();
    if (socket)
      try {
        socket.close(1000, 'client closed');
      } catch {
        // Nothing to do: it is going away anyway.
      }
    if (this.#reconnectTimer !== undefined) this.#timers.clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const wasOpen = this.#state !== 'disconnected';
    this.#setState('closed');
    if (wasOpen) this.emit('disconnected', { code, reason, error, reconnectInMs: undefined });
    const closedError = error ?? new ScanRelayError('closed', 'the client was closed');
    for (const handle of [...this.#commands.values()]) handle.fail(closedError);
    for (const sub of [...this.#subs.values()]) sub.end();
    this.#subs.clear();
    this.emit('closed', { error });
  }

  /** Forget the socket and everything tied to it (timers, renewal in flight, subscriptions go pending). */
  #detach(): void {
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) {
      socket.onopen = null;
      socket.onmessage = null;
      socket.onclose = null;
      socket.onerror = () => undefined; // ws emits 'error' on late failures; keep one listener.
    }
    for (const t of [this.#connectTimer, this.#openTimer, this.#pingTimer])
      if (t !== undefined) this.#timers.clearTimeout(t);
    this.#connectTimer = undefined;
    this.#openTimer = undefined;
    this.#pingTimer = undefined;
    this.#renewal.stop();
    for (const sub of this.#subs.values()) sub.suspend();
    for (const handle of this.#commands.values()) handle.sent = false;
  }

  // ─── inbound ───────────────────────────────────────────────────────────────────────────────────────

  #receive(data: unknown): void {
    this.#lastReceivedAt = this.#now();
    let msg: RelayToBrowser;
    try {
      const frame = typeof data === 'string' ? data : frameBytes(data);
      const decoded = decodeFrame(
        this.#codec,
        frame,
        typeof data !== 'string',
        this.#opts.maxInboundBytes ?? 4 * 1024 * 1024,
      );
      msg = validateMessage('relay→browser', decoded);
    } catch (err) {
      const detail = err instanceof ProtocolError ? err.message : 'undecodable frame';
      this.emit('error', new ScanRelayError('protocol_violation', `ignored a frame from the relay: ${detail}`));
      return;
    }
    switch (msg.type) {
      case 'welcome':
        this.#welcome(msg);
        return;
      case 'auth.ok':
        this.#renewal.ok(msg.expiresAt, msg.ref);
        return;
      case 'auth.expiring':
        this.#renewal.expiring(msg.expiresAt);
        return;
      case 'subscribed':
        this.#subs.get(msg.site)?.subscribed(msg.position, msg.snapshot, msg.presence);
        return;
      case 'resync':
        this.#subs.get(msg.site)?.resync(msg.position, msg.snapshot);
        return;
      case 'unsubscribed': {
        // Unasked (a renewal narrowed our sites): the relay ended it.
        const sub = this.#subs.get(msg.site);
        if (sub && sub.state !== 'closed')
          sub.refused(new ScanRelayError('forbidden', `the session no longer lists site "${msg.site}"`));
        return;
      }
      case 'event': {
        this.#subs.get(msg.site)?.event(msg);
        if (msg.kind === 'command.status') this.#commandEvent(msg.data);
        return;
      }
      case 'presence':
        this.#subs.get(msg.site)?.presenceChanged({ gateway: msg.gateway, online: msg.online, since: msg.since });
        return;
      case 'command.status': {
        const handle = this.#commands.get(msg.ref);
        if (!handle) return;
        if (!handle.command) this.#commandsById.set(msg.command, handle);
        handle.push({
          command: msg.command,
          state: msg.state,
          ...(msg.detail !== undefined ? { detail: msg.detail } : {}),
          ...(msg.progress !== undefined ? { progress: msg.progress } : {}),
        });
        return;
      }
      case 'pong':
        return;
      case 'error':
        this.#relayError(new ScanRelayError(msg.code, msg.message, msg.ref !== undefined ? { ref: msg.ref } : {}));
        return;
    }
  }

  #welcome(msg: Extract<RelayToBrowser, { type: 'welcome' }>): void {
    if (this.#state !== 'authenticating') return;
    if (this.#connectTimer !== undefined) this.#timers.clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#session = { session: msg.session, node: msg.node, expiresAt: msg.expiresAt, limits: msg.limits };
    this.#tokenExpiresAt = msg.expiresAt;
    this.#attempt = 0;
    this.#freshTokenNeeded = false;
    this.#setState('connected');
    this.emit('connected', this.#session);
    this.#renewal.start(msg.expiresAt);
    this.#schedulePing(msg.limits.pingIntervalMs);
    for (const sub of this.#subs.values()) sub.resubscribe();
    for (const handle of this.#commands.values())
      if (!handle.sent && handle.statuses.length === 0) this.#sendCommand(handle);
  }

  /** A `command.status` event from a site channel: feeds the handle with that `jti`, if it is ours. */
  #commandEvent(data: Record<string, unknown>): void {
    const status = statusFromEvent(data);
    if (status) this.#commandsById.get(status.command)?.push(status);
  }

  #relayError(error: ScanRelayError): void {
    const ref = error.ref;
    if (ref !== undefined) {
      const handle = this.#commands.get(ref);
      if (handle) {
        handle.fail(error);
        return;
      }
      if (this.#renewal.refused(ref, error)) return;
      if (ref.startsWith('sub-')) {
        for (const sub of this.#subs.values())
          if (sub.pendingRef === ref) {
            sub.refused(error);
            return;
          }
      }
    }
    // An error without a ref usually precedes a close (bad hello, expiry): the close handler reports it.
    this.#lastError = error;
    this.emit('error', error);
  }

  // ─── outbound ──────────────────────────────────────────────────────────────────────────────────────

  #sendCommand(handle: CommandHandle): void {
    if (this.#sendMessage({ type: 'command', ref: handle.ref, token: handle.token })) handle.sent = true;
  }

  /** Encode and send; false when there is no open socket (the message is then dropped, by design). */
  #sendMessage(msg: BrowserToRelay, duringHello = false): boolean {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WS_OPEN) return false;
    if (!duringHello && this.#state !== 'connected') return false;
    const frame = encodeMessage(this.#codec, msg);
    const size = typeof frame === 'string' ? utf8Length(frame) : frame.byteLength;
    const max = this.#session?.limits.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (size > max) {
      this.emit(
        'error',
        new ScanRelayError('too_large', `a ${msg.type} of ${size} bytes exceeds the relay's ${max}-byte limit`),
      );
      return false;
    }
    if (msg.type === 'subscribe') this.#subs.get(msg.site)?.setPendingRef(msg.ref);
    socket.send(frame);
    return true;
  }

  #schedulePing(intervalMs: number): void {
    const interval = Math.max(1000, intervalMs);
    const tick = () => {
      this.#pingTimer = undefined;
      if (this.#state !== 'connected') return;
      // Health is proven by traffic: if nothing at all came back since the last ping, the link is dead.
      if (this.#lastPingAt > 0 && this.#lastReceivedAt < this.#lastPingAt) {
        this.#dropSocket(DEAD_LINK_CLOSE, 'no answer to ping');
        return;
      }
      this.#lastPingAt = this.#now();
      this.#sendMessage({ type: 'ping', ref: this.#nextRef('ping') });
      this.#pingTimer = this.#timers.setTimeout(tick, interval);
    };
    this.#lastPingAt = 0;
    this.#pingTimer = this.#timers.setTimeout(tick, interval);
  }

  // ─── tokens ────────────────────────────────────────────────────────────────────────────────────────

  async #currentToken(): Promise<string> {
    const margin = Math.min(this.#opts.renewBeforeMs ?? 30_000, 5_000);
    if (this.#token && this.#tokenExpiresAt - this.#now() > margin) return this.#token;
    this.#token = await this.#fetchToken();
    this.#tokenExpiresAt = Number.POSITIVE_INFINITY; // Unknown until welcome says.
    return this.#token;
  }

  #fetchToken(): Promise<string> {
    return fetchToken(
      this.#opts.getToken,
      this.#timers,
      this.#opts.tokenTimeoutMs ?? this.#opts.connectTimeoutMs ?? 10_000,
    );
  }

  #nextRef(kind: string): string {
    const rand = Math.floor(this.#random() * 0xffffffff).toString(36);
    return `${kind}-${(++this.#refCounter).toString(36)}-${rand}`;
  }
}
