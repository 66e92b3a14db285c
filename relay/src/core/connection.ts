/**
 * One client socket as the core sees it, whatever the transport: identity, codec, the inbound serial queue,
 * limits (rate, bad messages, pending work), liveness bookkeeping, and the one way to end it (`fail`).
 *
 * ```
 *            hello ok                     fail(code) / peer close / terminate
 *  hello ──────────────▶ open ─────────────────────────────────────────────▶ closing ──▶ closed
 *    │ (timeout, bad first message)                                              ▲  (transport's close
 *    └───────────────────────────────────────────────────────────────────────────┘   callback, once)
 * ```
 */
import {
  type AnyMessage,
  CODES,
  type Codec,
  type ErrorCode,
  encodeMessage,
  type RelayToBrowser,
  type RelayToGateway,
} from '@scanrelay/protocol';
import type { Logger } from 'pino';
import type { Clock, Timer } from '../clock.js';
import type { RelayMetrics, Role } from '../observability/metrics.js';
import { TokenBucket } from './limits.js';
import type { CoreLimits } from './settings.js';
import type { Endpoint, TransportConnection } from './transport.js';

export type ConnState = 'hello' | 'authenticating' | 'open' | 'closing' | 'closed';

/** What every connection needs from its node. */
export interface ConnEnv {
  clock: Clock;
  limits: CoreLimits;
  metrics: RelayMetrics;
  logger: Logger;
}

/** Close reasons are the error code itself: short, ASCII, stable. */
function closeReason(code: ErrorCode): string {
  return code;
}

export abstract class Conn<Out extends AnyMessage = AnyMessage> {
  abstract readonly endpoint: Endpoint;
  state: ConnState = 'hello';
  /** Last inbound frame or pong, ms epoch (liveness is proven by traffic). */
  lastSeen: number;
  helloTimer: Timer | undefined;
  /** Messages received and not yet handled. */
  pending = 0;
  /** Most messages that may wait to be handled. */
  readonly maxPending: number;
  readonly #bucket: TokenBucket;
  #rateStrikes = 0;
  #badMessages = 0;
  #tail: Promise<void> = Promise.resolve();
  /** Role under which the connection is counted in the `scanrelay_connections` gauge. */
  metricRole: Role = 'pending';
  /** Why the relay closed it (for logs and metrics), when the relay did. */
  closedBy: ErrorCode | undefined;

  constructor(
    readonly id: string,
    readonly transport: TransportConnection,
    readonly codec: Codec,
    readonly ip: string,
    protected readonly env: ConnEnv,
  ) {
    this.lastSeen = env.clock.now();
    const gateway = this.isGatewayEndpoint();
    const l = env.limits;
    this.#bucket = gateway
      ? new TokenBucket(env.clock, l.gatewayMessagesPerSecond, l.gatewayMessageBurst)
      : new TokenBucket(env.clock, l.messagesPerSecond, l.messageBurst);
    this.maxPending = gateway ? l.gatewayMaxPendingMessages : l.maxPendingMessages;
  }

  /** Gateways get their own rate and queue limits (they flush an outbox after every reconnect). */
  protected abstract isGatewayEndpoint(): boolean;

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get isGone(): boolean {
    return this.state === 'closing' || this.state === 'closed';
  }

  /** Encode and send one message. Returns false when the socket is gone or was cut as a slow consumer. */
  send(message: Out): boolean {
    if (this.isGone) return false;
    return this.sendFrame(encodeMessage(this.codec, message));
  }

  /** Send an already encoded frame (fan-out encodes once per codec). */
  sendFrame(frame: string | Uint8Array): boolean {
    if (this.isGone) return false;
    if (!this.transport.send(frame)) {
      this.fail('slow_consumer', `send buffer over ${this.env.limits.sendBufferBytes} bytes`);
      return false;
    }
    this.env.metrics.framesOut[this.endpoint]++;
    return true;
  }

  /** Reply with an `error` (the connection stays open). */
  error(code: ErrorCode, message?: string, ref?: string): void {
    const msg: Record<string, unknown> = { type: 'error', code, message: message ?? CODES[code].message };
    if (ref !== undefined) msg.ref = ref;
    this.send(msg as unknown as Out);
  }

  /**
   * End the connection because of `code`: send the `error` (when the socket can still take it), then close
   * with the code's close code and the code as reason. A slow consumer is terminated outright: its buffer is
   * full, so neither the error nor a close frame would get through in time.
   */
  fail(code: ErrorCode, message?: string): void {
    if (this.isGone) return;
    this.closedBy = code;
    if (code === 'slow_consumer') {
      this.state = 'closing';
      this.env.logger.warn({ conn: this.id, role: this.endpoint, ip: this.ip }, 'slow consumer cut: send buffer full');
      this.transport.close(CODES[code].closeCode, closeReason(code));
      this.transport.terminate();
      return;
    }
    if (code !== 'too_large') this.error(code, message);
    this.state = 'closing';
    this.transport.close(CODES[code].closeCode, closeReason(code));
  }

  /**
   * Rate check for one inbound frame. Browser: over the rate the frame is not handled (`over`: the node
   * answers it with `rate_limited` carrying the frame's `ref`, so the sender knows which request was refused),
   * and `rateLimitStrikes` refusals in a row close the socket (4001, `closed`). Gateway: closed (4001) at once,
   * so no event is ever skipped.
   */
  admitFrame(): 'ok' | 'over' | 'closed' {
    this.lastSeen = this.env.clock.now();
    if (this.#bucket.take()) {
      this.#rateStrikes = 0;
      return 'ok';
    }
    if (this.isGatewayEndpoint()) {
      // Never drop a gateway frame and carry on: a later seq would be stored first and the dropped event,
      // resent, refused as a duplicate — lost. Close instead (4001, reconnect); it resends from `acked`.
      this.fail('rate_limited', 'over the gateway message rate; reconnect and resend from welcome.acked');
      return 'closed';
    }
    this.#rateStrikes++;
    if (this.#rateStrikes < this.env.limits.rateLimitStrikes) return 'over';
    this.fail('rate_limited', 'message rate still over the limit after a warning');
    return 'closed';
  }

  /** Count an invalid message: answer it, and close after `maxBadMessages`. */
  badMessage(message: string, ref?: string): void {
    this.#badMessages++;
    if (this.#badMessages >= this.env.limits.maxBadMessages) this.fail('bad_message', `too many invalid messages`);
    else this.error('bad_message', message, ref);
  }

  /**
   * Run handlers one at a time, in arrival order, so a slow step (token verification, a Redis write) never
   * reorders a client's messages (e.g. a gateway's events stay in `seq` order).
   */
  enqueue(task: () => Promise<void> | void, onError: (err: unknown) => void): void {
    this.pending++;
    this.#tail = this.#tail.then(async () => {
      try {
        if (!this.isGone) await task();
      } catch (err) {
        onError(err);
      } finally {
        this.pending--;
      }
    });
  }

  /** Resolves when every queued handler has finished (tests, shutdown). */
  idle(): Promise<void> {
    return this.#tail;
  }
}

/** A browser socket and its session. */
export class BrowserConn extends Conn<RelayToBrowser> {
  readonly endpoint = 'browser' as const;
  protected isGatewayEndpoint(): boolean {
    return false;
  }
  /** Session user (`sub`), set by hello. */
  sub = '';
  /** Session id (`sid`), set by hello, may change on renewal. */
  sid = '';
  /** Sites the current token lists. */
  sites: ReadonlySet<string> = new Set();
  expiresAt = 0;
  /** `iat` (seconds) of the session token in force: a renewal with an older one is refused (never go back). */
  issuedAt = 0;
  /** The session's one pending timer: the `auth.expiring` warning, then (once it fired) the expiry close. */
  expiryTimer: Timer | undefined;
  /** Counted against the per-user cap (so the close undoes it exactly once). */
  userCounted = false;
  /** Per-site subscription state. */
  readonly subscriptions = new Map<string, Subscription>();
}

/**
 * One site subscription. While `buffer` is set the subscription is catching up from history and live events
 * are held in it (see subscriptions.ts for why and how they are merged without duplicates).
 */
export interface Subscription {
  site: string;
  /** Live messages held while catching up; undefined once live. */
  buffer: BufferedEvent[] | undefined;
  /** Set when the second history read starts: only messages buffered after it can be new. */
  late: boolean;
}

export interface BufferedEvent {
  /** Position for de-duplication (presence messages have none). */
  position: string | undefined;
  message: RelayToBrowser;
  /** Arrived after the second history read started (earlier ones are covered by the reads). */
  late: boolean;
}

/** A gateway socket and its authenticated identity. */
export class GatewayConn extends Conn<RelayToGateway> {
  readonly endpoint = 'gateway' as const;
  protected isGatewayEndpoint(): boolean {
    return true;
  }
  gateway = '';
  site = '';
  /** This socket holds the gateway's presence lease. */
  present = false;
  /** Last presence heartbeat written, ms epoch. */
  lastBeat = 0;
}

export type AnyConn = BrowserConn | GatewayConn;
