/**
 * RelayNode — one relay node's core: admits and opens connections, decodes and dispatches every inbound
 * frame, answers the Bus (`node:<id>`, `control`), and runs the periodic work (liveness pings, presence and
 * command reaping, revocation sweep). Transport-agnostic: it only sees {@link TransportConnection}s.
 *
 * ```
 *  frame ─▶ rate (token bucket) ─▶ decodeFrame (size cap first) ─▶ validateMessage ─▶ per-socket serial queue
 *        ─▶ before welcome: only `hello` (else close 4501) ─▶ browser: auth/subscribe/unsubscribe/command/ping
 *                                                          └▶ gateway: event/command.status/ping
 * ```
 */
import { randomUUID } from 'node:crypto';
import {
  type BrowserToRelay,
  chooseSubprotocol,
  codecForSubprotocol,
  decodeFrame,
  type GatewayToRelay,
  MAX_REF_LENGTH,
  PATHS,
  ProtocolError,
  validateMessage,
} from '@scanrelay/protocol';
import type { Logger } from 'pino';
import { AuthError, type Authenticator } from '../auth/types.js';
import type { Clock, Timer } from '../clock.js';
import type { RelayMetrics } from '../observability/metrics.js';
import type { BusPayload } from '../ports/bus.js';
import type { Ports } from '../ports/index.js';
import { CONTROL_CHANNEL, type ControlPayload, type NodePayload, nodeChannel } from './bus-messages.js';
import { Commands } from './commands.js';
import { type AnyConn, BrowserConn, type ConnEnv, GatewayConn } from './connection.js';
import { Events } from './events.js';
import { Gateways } from './gateways.js';
import { KeyedCounter } from './limits.js';
import { SiteRouter } from './router.js';
import { Sessions } from './sessions.js';
import type { NodeSettings } from './settings.js';
import { Subscriptions } from './subscriptions.js';
import type {
  ConnectionHandlers,
  TransportConnection,
  TransportHooks,
  UpgradeDecision,
  UpgradeRequest,
} from './transport.js';

/**
 * The `ref` of a decoded frame, if it carries a well-formed one (a string of at most 64 chars), so that a
 * refusal of a message that failed validation or a limit still names the request it refuses.
 */
function refOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const ref = (value as { ref?: unknown }).ref;
  return typeof ref === 'string' && ref.length > 0 && ref.length <= MAX_REF_LENGTH ? ref : undefined;
}

/** What a socket's handlers call on its node. */
interface NodeCallbacks {
  inbound(conn: AnyConn, data: string | Uint8Array, isBinary: boolean): void;
  traffic(conn: AnyConn): void;
  closed(conn: AnyConn, code: number): void;
}

/**
 * One socket's transport handlers: two fields, methods on the prototype (an idle socket is mostly memory, and
 * four closures plus their object cost ~300 bytes each).
 */
class SocketHandlers implements ConnectionHandlers {
  constructor(
    private readonly conn: AnyConn,
    private readonly on: NodeCallbacks,
  ) {}
  message(data: string | Uint8Array, isBinary: boolean): void {
    this.on.inbound(this.conn, data, isBinary);
  }
  pong(): void {
    this.on.traffic(this.conn);
  }
  drain(): void {}
  close(code: number): void {
    this.on.closed(this.conn, code);
  }
}

export interface RelayNodeDeps {
  config: NodeSettings;
  ports: Ports;
  auth: Authenticator;
  clock: Clock;
  logger: Logger;
  metrics: RelayMetrics;
}

export class RelayNode implements Omit<TransportHooks, 'http'> {
  readonly nodeId: string;
  readonly #d: RelayNodeDeps;
  readonly #env: ConnEnv;
  readonly #conns = new Map<string, AnyConn>();
  readonly #perIp: KeyedCounter;
  readonly #allowedOrigins: ReadonlySet<string>;
  readonly router: SiteRouter;
  readonly events: Events;
  readonly subscriptions: Subscriptions;
  readonly sessions: Sessions;
  readonly gateways: Gateways;
  readonly commands: Commands;
  readonly #timers: Timer[] = [];
  #started = false;
  #shuttingDown = false;
  #maintenance: Promise<void> | undefined;
  readonly #releases = new Set<Promise<void>>();

  constructor(deps: RelayNodeDeps) {
    this.#d = deps;
    const { config, ports, auth, clock, logger, metrics } = deps;
    this.nodeId = config.nodeId;
    this.#env = { clock, limits: config.limits, metrics, logger };
    this.#perIp = new KeyedCounter(config.limits.maxConnectionsPerIp);
    this.#allowedOrigins = new Set(config.allowedOrigins);
    this.router = new SiteRouter(ports.bus, clock, metrics, logger, config.limits.maxCatchUpEvents);
    this.router.catchUpWith(ports.eventLog);
    this.events = new Events(ports.eventLog, ports.bus, clock, metrics, logger);
    this.subscriptions = new Subscriptions(this.router, ports.eventLog, ports.presence, config.limits, logger);
    this.sessions = new Sessions({
      config,
      auth,
      subscriptions: this.subscriptions,
      perUser: new KeyedCounter(config.limits.maxConnectionsPerUser),
      clock,
      metrics,
      logger,
    });
    this.gateways = new Gateways({
      config,
      auth,
      presence: ports.presence,
      eventLog: ports.eventLog,
      bus: ports.bus,
      events: this.events,
      clock,
      metrics,
      logger,
    });
    this.commands = new Commands({
      nodeId: config.nodeId,
      queue: ports.commands,
      presence: ports.presence,
      bus: ports.bus,
      auth,
      events: this.events,
      local: {
        browser: (id) => {
          const c = this.#conns.get(id);
          return c instanceof BrowserConn ? c : undefined;
        },
        gateway: (id) => this.gateways.get(id),
      },
      clock,
      limits: config.limits,
      ackTimeoutMs: config.timings.commandAckTimeoutMs,
      outcomeGraceMs: config.timings.commandOutcomeGraceMs,
      metrics,
      logger,
    });
  }

  /** True once started and until shutdown begins, while the Bus backend is reachable. */
  get ready(): boolean {
    return this.#started && !this.#shuttingDown && this.#d.ports.bus.healthy();
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Open connections on this node (all roles, authenticated or not). */
  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Subscribe to this node's Bus channels and start the periodic work. */
  async start(): Promise<void> {
    const { ports, clock, config } = this.#d;
    await ports.bus.subscribe(nodeChannel(this.nodeId), (p) => this.#onNode(p));
    await ports.bus.subscribe(CONTROL_CHANNEL, (p) => this.#onControl(p));
    const t = config.timings;
    this.#timers.push(clock.setInterval(() => this.sweepLiveness(), t.pingIntervalMs));
    this.#timers.push(clock.setInterval(() => void this.runMaintenance(), t.maintenanceIntervalMs));
    this.#timers.push(clock.setInterval(() => void this.sweepRevocations(), t.revocationSweepMs));
    this.#started = true;
  }

  // ─── transport hooks ──────────────────────────────────────────────────────────────────────────────

  admit(req: UpgradeRequest): UpgradeDecision {
    const refuse = (status: 400 | 403 | 404 | 429 | 503, message: string): UpgradeDecision => {
      this.#d.metrics.upgradeRefusals.inc({ status: String(status) });
      return { ok: false, status, message };
    };
    if (this.#shuttingDown) return refuse(503, 'relay node shutting down');
    const endpoint = req.path === PATHS.browser ? 'browser' : req.path === PATHS.gateway ? 'gateway' : undefined;
    if (!endpoint) return refuse(404, 'unknown path');
    if (endpoint === 'browser' && !this.#originAllowed(req.origin)) return refuse(403, 'origin not allowed');
    const subprotocol = chooseSubprotocol(req.protocols);
    const codec = codecForSubprotocol(subprotocol);
    if (!subprotocol || !codec) return refuse(400, 'offer scanrelay.v1.json or scanrelay.v1.msgpack');
    const ip = this.#clientIp(req);
    if (!this.#perIp.hasRoom(ip)) return refuse(429, 'too many connections from this address');
    return { ok: true, endpoint, codec, subprotocol, ip };
  }

  open(transport: TransportConnection, decision: Extract<UpgradeDecision, { ok: true }>): ConnectionHandlers {
    const id = randomUUID();
    const conn =
      decision.endpoint === 'browser'
        ? new BrowserConn(id, transport, decision.codec, decision.ip, this.#env)
        : new GatewayConn(id, transport, decision.codec, decision.ip, this.#env);
    this.#conns.set(id, conn);
    this.#perIp.increment(decision.ip);
    this.#d.metrics.connections.inc({ role: 'pending' });
    conn.helloTimer = this.#d.clock.setTimeout(() => {
      conn.helloTimer = undefined;
      if (conn.state === 'hello' || conn.state === 'authenticating')
        conn.fail('unauthenticated', `no valid hello within ${this.#d.config.limits.helloTimeoutMs} ms`);
    }, this.#d.config.limits.helloTimeoutMs);
    if (this.#shuttingDown) conn.fail('shutting_down');
    return new SocketHandlers(conn, this.#callbacks);
  }

  /** Shared by every socket's {@link SocketHandlers} (one object per node, not four closures per socket). */
  readonly #callbacks: NodeCallbacks = {
    inbound: (conn, data, isBinary) => this.#inbound(conn, data, isBinary),
    traffic: (conn) => this.#traffic(conn),
    closed: (conn, code) => this.#closed(conn, code),
  };

  // ─── inbound ──────────────────────────────────────────────────────────────────────────────────────

  #inbound(conn: AnyConn, data: string | Uint8Array, isBinary: boolean): void {
    if (conn.isGone) return;
    const admitted = conn.admitFrame();
    if (admitted === 'closed') return;
    let value: unknown;
    let msg: BrowserToRelay | GatewayToRelay;
    try {
      // Decoded even when over the rate (the size cap still comes first): the refusal must name its request.
      value = decodeFrame(conn.codec, data, isBinary, this.#d.config.limits.maxMessageBytes);
      if (admitted === 'over') {
        conn.error('rate_limited', 'over the message rate limit (see welcome.limits); not handled', refOf(value));
        return;
      }
      msg =
        conn.endpoint === 'browser' ? validateMessage('browser→relay', value) : validateMessage('gateway→relay', value);
    } catch (err) {
      if (!(err instanceof ProtocolError)) {
        // Decoders only throw ProtocolError; anything else is a bug, and must not escape into the transport's
        // event handler (an uncaught throw there would end the process).
        this.#d.logger.error({ err, conn: conn.id }, 'decoding a frame threw unexpectedly');
        conn.badMessage('the frame could not be decoded', refOf(value));
        return;
      }
      if (admitted === 'over') conn.error('rate_limited', 'over the message rate limit (see welcome.limits)');
      else if (err.code === 'too_large') conn.fail('too_large');
      else if (conn.state === 'hello') conn.fail('bad_message', err.message);
      else conn.badMessage(err.message, refOf(value));
      return;
    }
    if (conn.pending >= conn.maxPending) {
      // A gateway is closed rather than skipped, for the same reason as in admitFrame: no event may be dropped.
      if (conn.endpoint === 'gateway') conn.fail('rate_limited', 'too many messages waiting; reconnect and resend');
      else conn.error('rate_limited', 'too many messages waiting to be handled; slow down', refOf(msg));
      return;
    }
    this.#d.metrics.messagesIn.inc({ role: conn.endpoint, type: msg.type });
    this.#traffic(conn);
    conn.enqueue(
      () => this.#dispatch(conn, msg),
      (err) => this.#handlerFailed(conn, msg, err),
    );
  }

  async #dispatch(conn: AnyConn, msg: BrowserToRelay | GatewayToRelay): Promise<void> {
    if (conn.state === 'hello') {
      if (msg.type !== 'hello') {
        conn.fail('unauthenticated', 'send hello with a token before anything else');
        return;
      }
      // The hello deadline also covers verification: the timer is cleared only once welcome is sent.
      if (conn instanceof BrowserConn) await this.sessions.hello(conn, msg);
      else await this.gateways.hello(conn, msg);
      if (conn.isOpen) {
        this.#clearHelloTimer(conn);
        this.#d.metrics.connections.dec({ role: 'pending' });
        this.#d.metrics.connections.inc({ role: conn.endpoint });
        conn.metricRole = conn.endpoint;
      }
      // Gateways and Commands do not call each other: the node sequences them (link up → deliver what is held).
      if (conn instanceof GatewayConn && conn.isOpen) await this.commands.deliverHeld(conn.gateway);
      return;
    }
    if (!conn.isOpen) return;
    if (msg.type === 'hello') {
      conn.badMessage('already authenticated: hello is only the first message');
      return;
    }
    if (msg.type === 'ping') {
      conn.send(msg.ref !== undefined ? { type: 'pong', ref: msg.ref } : { type: 'pong' });
      return;
    }
    if (conn instanceof BrowserConn) {
      const m = msg as BrowserToRelay;
      switch (m.type) {
        case 'auth':
          return this.sessions.renew(conn, m);
        case 'subscribe':
          return this.subscriptions.subscribe(conn, m);
        case 'unsubscribe':
          return this.subscriptions.unsubscribe(conn, m);
        case 'command':
          return this.commands.submit(conn, m);
      }
      return;
    }
    const m = msg as GatewayToRelay;
    switch (m.type) {
      case 'event':
        return this.events.fromGateway(conn, m);
      case 'command.status':
        return this.commands.fromGateway(conn, m);
      case 'gateway.report':
        return this.gateways.report(conn, m);
    }
  }

  #handlerFailed(conn: AnyConn, msg: BrowserToRelay | GatewayToRelay, err: unknown): void {
    const ref = 'ref' in msg ? msg.ref : undefined;
    if (err instanceof AuthError) {
      conn.error(err.code, err.message, ref);
      return;
    }
    this.#d.logger.error({ err, conn: conn.id, role: conn.endpoint, type: msg.type }, 'message handler failed');
    // Before welcome a failure leaves the socket unusable; after it, the client may retry the request (its
    // `ref` tells it which one failed).
    if (conn.state === 'open') conn.error('internal', 'the relay could not handle that message; retry shortly', ref);
    else conn.fail('internal');
  }

  #traffic(conn: AnyConn): void {
    conn.lastSeen = this.#d.clock.now();
    if (conn instanceof GatewayConn && conn.present) {
      this.gateways.beat(conn).catch((err: unknown) => {
        this.#d.logger.warn({ err, gateway: conn.gateway }, 'presence heartbeat failed; retrying on next traffic');
      });
    }
  }

  #closed(conn: AnyConn, code: number): void {
    if (conn.state === 'closed') return;
    conn.state = 'closed';
    this.#clearHelloTimer(conn);
    this.#conns.delete(conn.id);
    this.#perIp.decrement(conn.ip);
    this.#d.metrics.connections.dec({ role: conn.metricRole });
    this.#d.metrics.closes.inc({ role: conn.endpoint, code: String(code) });
    this.#d.logger.debug(
      { conn: conn.id, role: conn.endpoint, ip: conn.ip, code, by: conn.closedBy ?? 'peer' },
      'connection closed',
    );
    if (conn instanceof BrowserConn) {
      this.sessions.closed(conn);
      return;
    }
    const release = this.gateways
      .closed(conn)
      .catch((err: unknown) => {
        this.#d.logger.error({ err, gateway: conn.gateway }, 'releasing gateway presence failed; the lease will lapse');
      })
      // Then its commands (held again for redelivery), even if the lease release failed.
      .then(() => this.commands.linkClosed(conn))
      .catch((err: unknown) => {
        this.#d.logger.error({ err, gateway: conn.gateway }, 'holding a closed link’s commands again failed');
      });
    // Shutdown waits for these so the offline news is published before the Bus closes.
    this.#releases.add(release);
    void release.finally(() => this.#releases.delete(release));
  }

  #clearHelloTimer(conn: AnyConn): void {
    if (conn.helloTimer === undefined) return;
    this.#d.clock.clearTimeout(conn.helloTimer);
    conn.helloTimer = undefined;
  }

  /** The socket's address, or behind our own proxy the last X-Forwarded-For hop (the one our proxy added). */
  #clientIp(req: UpgradeRequest): string {
    if (!this.#d.config.trustProxy || !req.forwardedFor) return req.ip;
    const last = req.forwardedFor.split(',').at(-1)?.trim();
    return last && last.length <= 64 ? last : req.ip;
  }

  #originAllowed(origin: string | undefined): boolean {
    if (!origin) return false;
    let normalised: string;
    try {
      normalised = new URL(origin).origin;
    } catch {
      return false;
    }
    // Exact match of scheme://host[:port]; the header must already be in that form (no path, no look-alikes).
    return normalised === origin.toLowerCase() && this.#allowedOrigins.has(normalised);
  }

  // ─── Bus ──────────────────────────────────────────────────────────────────────────────────────────

  #onNode(payload: BusPayload): void {
    const p = payload as unknown as NodePayload;
    if (p.kind === 'status') this.commands.deliverStatus(p);
    else if (p.kind === 'wake')
      this.commands.deliverHeld(p.gateway).catch((err: unknown) => {
        this.#d.logger.error({ err, gateway: p.gateway }, 'delivering held commands failed; retried by maintenance');
      });
  }

  #onControl(payload: BusPayload): void {
    const p = payload as unknown as ControlPayload;
    if (p.kind === 'replaced') this.gateways.replaced(p.gateway, p.connection);
    else if (p.kind === 'gateway.revoked') this.gateways.revoked(p.gateway);
    else if (p.kind === 'session.revoked')
      for (const conn of this.sessions.bySid(p.sid)) conn.fail('revoked', 'this session was revoked; sign in again');
  }

  // ─── periodic work (public: tests and operators may trigger a pass) ────────────────────────────

  /**
   * Ping every authenticated-or-not socket; terminate those with no traffic and no pong for
   * `livenessTimeoutMs` (a half-open socket looks connected and receives nothing).
   */
  sweepLiveness(): void {
    const now = this.#d.clock.now();
    const timeout = this.#d.config.timings.livenessTimeoutMs;
    for (const conn of this.#conns.values()) {
      if (conn.isGone) continue;
      if (now - conn.lastSeen > timeout) {
        this.#d.logger.info({ conn: conn.id, role: conn.endpoint, ip: conn.ip }, 'no traffic or pong: terminating');
        conn.closedBy = 'internal';
        conn.state = 'closing';
        conn.transport.terminate();
      } else {
        conn.transport.ping();
      }
    }
  }

  /**
   * Reap lapsed presence and expired held commands; cut gateway links sitting on unacknowledged commands;
   * re-deliver held commands of local gateways.
   */
  runMaintenance(): Promise<void> {
    // One pass at a time: a slow backend must not pile passes up.
    this.#maintenance ??= this.#maintain().finally(() => {
      this.#maintenance = undefined;
    });
    return this.#maintenance;
  }

  async #maintain(): Promise<void> {
    const log = (what: string) => (err: unknown) => this.#d.logger.error({ err }, `${what} failed; retried next pass`);
    await this.gateways.reapExpired().catch(log('presence reaping'));
    await this.commands.reapExpired().catch(log('command expiry'));
    await this.commands.reapOverdue().catch(log('command deadline'));
    this.commands.checkAcks(this.gateways.all());
    for (const conn of this.gateways.all()) {
      await this.commands.deliverHeld(conn.gateway).catch(log('held command delivery'));
    }
  }

  /** Re-check every local gateway and session against the Registry (pub/sub can lose a revocation). */
  async sweepRevocations(): Promise<void> {
    const { auth, logger } = this.#d;
    try {
      for (const conn of this.gateways.all()) {
        if (conn.isOpen && !(await auth.isGatewayActive(conn.gateway))) this.gateways.revoked(conn.gateway);
      }
      for (const sid of this.sessions.sids()) {
        if (await auth.isSessionActive(sid)) continue;
        for (const conn of this.sessions.bySid(sid)) conn.fail('revoked', 'this session was revoked; sign in again');
      }
    } catch (err) {
      logger.error({ err }, 'revocation sweep failed; retried next pass');
    }
  }

  // ─── admin hooks (relay/src/auth's HTTP API calls these) ─────────────────────────────────────────

  async gatewayRevoked(gateway: string): Promise<void> {
    const { ports } = this.#d;
    await ports.bus.publish(CONTROL_CHANNEL, { kind: 'gateway.revoked', gateway });
    await this.commands.dropGateway(gateway);
  }

  async sessionRevoked(sid: string): Promise<void> {
    await this.#d.ports.bus.publish(CONTROL_CHANNEL, { kind: 'session.revoked', sid });
  }

  // ─── shutdown ─────────────────────────────────────────────────────────────────────────────────────

  /**
   * Close every client with 1001 `shutting_down` (so they reconnect to another node at once) and wait up to
   * `shutdownGraceMs` for them to go, then terminate the rest. New upgrades are refused from the first call.
   */
  async drain(): Promise<void> {
    this.#shuttingDown = true;
    const { clock, config, ports } = this.#d;
    for (const t of this.#timers) clock.clearInterval(t);
    this.#timers.length = 0;
    for (const conn of this.#conns.values()) conn.fail('shutting_down');
    const deadline = Date.now() + config.timings.shutdownGraceMs;
    while (this.#conns.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const conn of this.#conns.values()) conn.transport.terminate();
    await Promise.allSettled([...this.#releases]);
    await this.#maintenance;
    await this.router.close();
    await Promise.allSettled([ports.bus.unsubscribe(nodeChannel(this.nodeId)), ports.bus.unsubscribe(CONTROL_CHANNEL)]);
  }
}
