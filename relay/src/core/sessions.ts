/**
 * Browser sessions: `hello` with a session token, in-band renewal (`auth`), the expiry warning and the close
 * at expiry, and the per-user connection cap.
 *
 * ```
 *  hello{token} ─ verifySession ─ cap per sub ─▶ welcome{session, node, expiresAt, limits}
 *        │                                          │  warn at exp − min(expiryWarning, 10 % of lifetime): auth.expiring
 *        └─ AuthError → error + close (its code)    │  at exp: close token_expired (4502)
 *  auth{token} ─ verifySession ─ same sub ─▶ auth.ok{expiresAt}; timers moved; subscriptions to sites no longer
 *                                            listed end with `unsubscribed`
 * ```
 */
import type { Auth, Hello, Limits } from '@scanrelay/protocol';
import type { Logger } from 'pino';
import { AuthError, type Authenticator, type VerifiedSession } from '../auth/types.js';
import type { Clock } from '../clock.js';
import type { RelayMetrics } from '../observability/metrics.js';
import type { BrowserConn } from './connection.js';
import type { KeyedCounter } from './limits.js';
import type { NodeSettings } from './settings.js';
import type { Subscriptions } from './subscriptions.js';

/** Distinct site lists whose Sets are shared between sockets (see `#siteSet`). */
const MAX_SHARED_SITE_SETS = 10_000;

export interface SessionsDeps {
  config: NodeSettings;
  auth: Authenticator;
  subscriptions: Subscriptions;
  perUser: KeyedCounter;
  clock: Clock;
  metrics: RelayMetrics;
  logger: Logger;
}

export class Sessions {
  /**
   * Open browser sockets by session id (`sid`), for revocation across the cluster. Almost every session has
   * one socket, held directly; a Set only when it has several (a Set per idle connection costs ~200 bytes).
   */
  readonly #bySid = new Map<string, BrowserConn | Set<BrowserConn>>();
  readonly #limits: Limits;
  readonly #siteSets = new Map<string, ReadonlySet<string>>();

  constructor(private readonly d: SessionsDeps) {
    const l = d.config.limits;
    this.#limits = {
      maxMessageBytes: l.maxMessageBytes,
      maxSubscriptions: l.maxSubscriptions,
      messagesPerSecond: l.messagesPerSecond,
      pingIntervalMs: d.config.timings.pingIntervalMs,
    };
  }

  /** Sockets of a session id on this node. */
  bySid(sid: string): readonly BrowserConn[] {
    const entry = this.#bySid.get(sid);
    if (entry === undefined) return [];
    return entry instanceof Set ? [...entry] : [entry];
  }

  /** Every session id with a socket on this node (revocation sweep). */
  sids(): string[] {
    return [...this.#bySid.keys()];
  }

  async hello(conn: BrowserConn, msg: Hello): Promise<void> {
    conn.state = 'authenticating';
    const verified = await this.#verify(conn, msg.token);
    if (!verified || conn.isGone) return;
    const { claims } = verified;
    if (!this.d.perUser.hasRoom(claims.sub)) {
      this.d.metrics.authRejections.inc({ role: 'browser', reason: 'user_connection_cap' });
      conn.fail(
        'rate_limited',
        `too many connections for this user (at most ${this.d.config.limits.maxConnectionsPerUser})`,
      );
      return;
    }
    this.d.perUser.increment(claims.sub);
    conn.userCounted = true;
    conn.sub = claims.sub;
    this.#apply(conn, verified);
    conn.state = 'open';
    conn.send({
      type: 'welcome',
      session: conn.id,
      node: this.d.config.nodeId,
      expiresAt: conn.expiresAt,
      limits: this.#limits,
    });
  }

  async renew(conn: BrowserConn, msg: Auth): Promise<void> {
    const verified = await this.#verify(conn, msg.token, msg.ref);
    if (!verified || conn.isGone) return;
    if (verified.claims.sub !== conn.sub) {
      this.d.metrics.authRejections.inc({ role: 'browser', reason: 'renewal_sub_mismatch' });
      conn.error('forbidden', 'a renewal token must be for the same user (sub) as the session', msg.ref);
      return;
    }
    if (verified.claims.iat < conn.issuedAt) {
      // An older token (e.g. replayed from a log or a stale tab) would roll back sites or expiry: refused,
      // the session unchanged. Equal iat is allowed (two tokens minted in the same second).
      this.d.metrics.authRejections.inc({ role: 'browser', reason: 'renewal_older_token' });
      conn.error('forbidden', 'a renewal token must not be older (iat) than the session token in force', msg.ref);
      return;
    }
    this.#apply(conn, verified);
    this.d.subscriptions.restrict(conn);
    const reply: { type: 'auth.ok'; expiresAt: number; ref?: string } = { type: 'auth.ok', expiresAt: conn.expiresAt };
    if (msg.ref !== undefined) reply.ref = msg.ref;
    conn.send(reply);
  }

  /** The socket is gone: forget it everywhere. */
  closed(conn: BrowserConn): void {
    this.#clearTimers(conn);
    this.#unindex(conn);
    if (conn.userCounted) {
      conn.userCounted = false;
      this.d.perUser.decrement(conn.sub);
    }
    this.d.subscriptions.dropAll(conn);
  }

  /**
   * Verify a session token. A failed `hello` (or a renewal refused as unauthenticated / revoked) closes the
   * socket with the error's code; other renewal failures only answer `error` (the current token still holds).
   */
  async #verify(conn: BrowserConn, token: string, ref?: string): Promise<VerifiedSession | undefined> {
    try {
      return await this.d.auth.verifySession(token);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      this.d.metrics.authRejections.inc({ role: 'browser', reason: err.reason });
      this.d.logger.info({ conn: conn.id, ip: conn.ip, reason: err.reason }, 'session token refused');
      const renewal = conn.state === 'open';
      if (!renewal || err.code === 'unauthenticated' || err.code === 'revoked') conn.fail(err.code, err.message);
      else conn.error(err.code, err.message, ref);
      return undefined;
    }
  }

  #apply(conn: BrowserConn, verified: VerifiedSession): void {
    const { claims } = verified;
    if (conn.sid !== claims.sid) {
      this.#unindex(conn);
      conn.sid = claims.sid;
      const entry = this.#bySid.get(conn.sid);
      if (entry === undefined) this.#bySid.set(conn.sid, conn);
      else if (entry instanceof Set) entry.add(conn);
      else if (entry !== conn) this.#bySid.set(conn.sid, new Set([entry, conn]));
    }
    conn.sites = this.#siteSet(claims.sites);
    conn.expiresAt = verified.expiresAt;
    conn.issuedAt = claims.iat;
    this.#schedule(conn);
  }

  #schedule(conn: BrowserConn): void {
    const { clock } = this.d;
    this.#clearTimers(conn);
    const now = clock.now();
    const remaining = conn.expiresAt - now;
    if (remaining <= 0) {
      conn.fail('token_expired');
      return;
    }
    const lead = Math.min(this.d.config.timings.expiryWarningMs, Math.floor(remaining / 10));
    // One timer per socket at a time (warning, then expiry): each pending Node timer costs memory per idle socket.
    const expire = (): void => {
      conn.expiryTimer = undefined;
      conn.fail('token_expired', 'the session token expired without renewal');
    };
    if (lead > 0) {
      conn.expiryTimer = clock.setTimeout(() => {
        conn.expiryTimer = clock.setTimeout(expire, conn.expiresAt - clock.now());
        if (conn.isOpen) conn.send({ type: 'auth.expiring', expiresAt: conn.expiresAt });
      }, remaining - lead);
    } else {
      conn.expiryTimer = clock.setTimeout(expire, remaining);
    }
  }

  #clearTimers(conn: BrowserConn): void {
    if (conn.expiryTimer !== undefined) this.d.clock.clearTimeout(conn.expiryTimer);
    conn.expiryTimer = undefined;
  }

  /**
   * The read-only site Set for a token's `sites`, shared by every socket whose token lists the same sites (most
   * of a deployment's users share a few lists; a Set per idle socket costs ~200 bytes). Bounded: when full, the
   * cache starts over (sockets keep the Sets they hold).
   */
  #siteSet(sites: readonly string[]): ReadonlySet<string> {
    const key = JSON.stringify(sites);
    let set = this.#siteSets.get(key);
    if (set === undefined) {
      if (this.#siteSets.size >= MAX_SHARED_SITE_SETS) this.#siteSets.clear();
      set = new Set(sites);
      this.#siteSets.set(key, set);
    }
    return set;
  }

  #unindex(conn: BrowserConn): void {
    if (!conn.sid) return;
    const entry = this.#bySid.get(conn.sid);
    if (entry === conn) {
      this.#bySid.delete(conn.sid);
    } else if (entry instanceof Set) {
      entry.delete(conn);
      if (entry.size === 1) this.#bySid.set(conn.sid, entry.values().next().value!);
      else if (entry.size === 0) this.#bySid.delete(conn.sid);
    }
  }
}
