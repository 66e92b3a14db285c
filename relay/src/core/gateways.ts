/**
 * Gateway links: `hello` with a gateway assertion, presence proven by traffic, replacement across the
 * cluster, and going offline.
 *
 * ```
 *  hello{assertion} ─ verifyGatewayAssertion ─▶ Presence.claim ──▶ welcome{gateway, site, node, acked}
 *                                                   │ replaced an older socket? → Bus control {replaced} (it closes 4505)
 *                                                   │ was offline? → presence + gateway.online on the site
 *                                                   └ (the node then has Commands deliver what is held)
 *  any frame / pong ─▶ lastSeen; Presence.heartbeat + noteTraffic at most every ttl/3 (false → replaced: close)
 *  gateway.report ─▶ Presence.saveReport (agent, outbox, peers, clock skew) for the fleet API
 *  socket gone ─▶ Presence.release (if still ours) → presence + gateway.offline
 *  a node died ─▶ its leases lapse; any node's reaper reports them offline
 * ```
 */
import type { GatewayReport, Hello } from '@scanrelay/protocol';
import type { Logger } from 'pino';
import { AuthError, type Authenticator, type VerifiedGateway } from '../auth/types.js';
import type { Clock } from '../clock.js';
import type { RelayMetrics } from '../observability/metrics.js';
import type { Bus } from '../ports/bus.js';
import type { EventLog } from '../ports/event-log.js';
import type { Presence } from '../ports/presence.js';
import { CONTROL_CHANNEL, type ReplacedPayload, toBus } from './bus-messages.js';
import type { ConnState, GatewayConn } from './connection.js';
import type { Events } from './events.js';
import type { NodeSettings } from './settings.js';

export interface GatewaysDeps {
  config: NodeSettings;
  auth: Authenticator;
  presence: Presence;
  eventLog: EventLog;
  bus: Bus;
  events: Events;
  clock: Clock;
  metrics: RelayMetrics;
  logger: Logger;
}

export class Gateways {
  /** The live socket of each gateway connected to this node. */
  readonly #byGateway = new Map<string, GatewayConn>();

  constructor(private readonly d: GatewaysDeps) {}

  get(gateway: string): GatewayConn | undefined {
    return this.#byGateway.get(gateway);
  }

  all(): GatewayConn[] {
    return [...this.#byGateway.values()];
  }

  async hello(conn: GatewayConn, msg: Hello): Promise<void> {
    const { clock, config, presence, metrics } = this.d;
    conn.state = 'authenticating';
    let verified: VerifiedGateway;
    try {
      verified = await this.d.auth.verifyGatewayAssertion(msg.token);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      metrics.authRejections.inc({ role: 'gateway', reason: err.reason });
      this.d.logger.info({ conn: conn.id, ip: conn.ip, reason: err.reason }, 'gateway assertion refused');
      conn.fail(err.code, err.message);
      return;
    }
    if (conn.isGone) return;
    const { id: gateway, site } = verified.gateway;
    conn.gateway = gateway;
    conn.site = site;
    const since = clock.now();
    const previous = await presence.claim(
      { gateway, site, node: config.nodeId, connection: conn.id, since },
      config.timings.presenceTtlMs,
    );
    conn.present = true;
    conn.lastBeat = since;
    await presence.noteTraffic(gateway, since);
    if ((conn.state as ConnState) === 'closed') {
      // The socket died while the lease was being claimed: give the lease back at once.
      conn.present = false;
      await presence.release(gateway, conn.id);
      return;
    }
    const local = this.#byGateway.get(gateway);
    this.#byGateway.set(gateway, conn);
    metrics.gatewaysOnline.set(this.#byGateway.size);
    if (local && local !== conn) local.fail('replaced', 'a newer connection of this gateway took over');
    if (previous && previous.connection !== local?.id) {
      const replaced: ReplacedPayload = { kind: 'replaced', gateway, connection: previous.connection };
      await this.d.bus.publish(CONTROL_CHANNEL, toBus(replaced));
    }
    if (conn.isGone) return;
    const acked = await this.d.eventLog.lastSeq(gateway);
    conn.state = 'open';
    conn.send({ type: 'welcome', gateway, site, node: config.nodeId, acked });
    this.d.logger.info({ conn: conn.id, gateway, site, replaced: previous !== undefined }, 'gateway connected');
    if (!previous) await this.d.events.presenceChanged(site, gateway, true, since);
  }

  /** Traffic from the gateway proves it alive: extend its lease, at most every ttl/3. */
  async beat(conn: GatewayConn): Promise<void> {
    if (!conn.present || !conn.isOpen) return;
    const { clock, config } = this.d;
    const now = clock.now();
    if (now - conn.lastBeat < config.timings.presenceTtlMs / 3) return;
    conn.lastBeat = now;
    const [ours] = await Promise.all([
      this.d.presence.heartbeat(conn.gateway, conn.id, config.timings.presenceTtlMs),
      this.d.presence.noteTraffic(conn.gateway, now),
    ]);
    if (ours || !conn.present) return;
    conn.present = false;
    const live = await this.d.presence.get(conn.gateway);
    if (live && live.connection !== conn.id) conn.fail('replaced', 'a newer connection of this gateway took over');
    // The lease lapsed (this node stalled past the TTL) and was reaped: the gateway must reconnect (4000), not
    // stop as a replaced one would.
    else conn.fail('internal', 'presence lease lapsed; reconnect');
  }

  /** The gateway's own health view: kept as the latest for the fleet API (never sent to browsers). */
  async report(conn: GatewayConn, msg: GatewayReport): Promise<void> {
    if (!conn.present) return;
    const reportedAt = this.d.clock.now();
    await this.d.presence.saveReport(conn.gateway, {
      agent: { version: msg.agent.version, transport: msg.agent.transport, startedAt: msg.agent.startedAt },
      outbox: { pending: msg.outbox.pending, oldestAt: msg.outbox.oldestAt ?? null },
      peers: msg.peers.map((p) => ({ aet: p.aet, online: p.online, checkedAt: p.checkedAt ?? null })),
      clockSkewMs: msg.at - reportedAt,
      reportedAt,
    });
  }

  /** The socket is gone: release the lease if it is still ours and tell the site. */
  async closed(conn: GatewayConn): Promise<void> {
    if (this.#byGateway.get(conn.gateway) === conn) {
      this.#byGateway.delete(conn.gateway);
      this.d.metrics.gatewaysOnline.set(this.#byGateway.size);
    }
    await this.#releaseLease(conn);
  }

  async #releaseLease(conn: GatewayConn): Promise<void> {
    if (!conn.present) return;
    conn.present = false;
    const released = await this.d.presence.release(conn.gateway, conn.id);
    this.d.logger.info({ conn: conn.id, gateway: conn.gateway, released }, 'gateway disconnected');
    if (released) await this.d.events.presenceChanged(conn.site, conn.gateway, false, this.d.clock.now());
  }

  /** Close this node's socket of `gateway` if it is `connection` (a newer one connected elsewhere). */
  replaced(gateway: string, connection: string): void {
    const conn = this.#byGateway.get(gateway);
    if (!conn || conn.id !== connection) return;
    conn.present = false; // the lease belongs to the newer socket now: do not release it
    conn.fail('replaced', 'a newer connection of this gateway took over');
  }

  /** Close this node's socket of a revoked gateway. */
  revoked(gateway: string): void {
    const conn = this.#byGateway.get(gateway);
    if (conn) conn.fail('revoked', 'this gateway was revoked; enrol it again');
  }

  /** Leases that lapsed anywhere (a node died, or stalled): report those gateways offline, once each. */
  async reapExpired(): Promise<void> {
    const expired = await this.d.presence.reapExpired(this.d.clock.now());
    for (const record of expired) {
      const local = this.#byGateway.get(record.gateway);
      if (local && local.id === record.connection) {
        // Our own socket lost its lease without our noticing: it is not proven alive, so cut it.
        local.present = false;
        local.transport.terminate();
      }
      await this.d.events.presenceChanged(record.site, record.gateway, false, this.d.clock.now());
    }
  }
}
