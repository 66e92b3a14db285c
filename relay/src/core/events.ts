/**
 * Site events: a gateway's own events (validated, stamped with its authenticated site and gateway id,
 * appended, acknowledged only once durable, then published), and the relay's own events on a site's channel
 * (`command.status`, `gateway.online`, `gateway.offline`) plus live `presence` messages.
 *
 * ```
 *  gateway ── event{seq} ──▶ stamp {site, gateway} from identity ──▶ EventLog.append ──┬─ duplicate ─▶ event.ack (no fan-out)
 *                                                                                      └─ stored ────▶ event.ack, Bus site:<s>
 * ```
 */
import { type GatewayEvent, type JsonObject, RELAY_EVENT_KINDS } from '@scanrelay/protocol';
import type { Logger } from 'pino';
import type { RelayMetrics } from '../observability/metrics.js';
import type { Bus } from '../ports/bus.js';
import type { EventLog, StoredEvent } from '../ports/event-log.js';
import { type SiteEventPayload, type SitePresencePayload, siteChannel, toBus } from './bus-messages.js';
import type { Clock } from './clock.js';
import type { GatewayConn } from './connection.js';

export class Events {
  constructor(
    private readonly eventLog: EventLog,
    private readonly bus: Bus,
    private readonly clock: Clock,
    private readonly metrics: RelayMetrics,
    private readonly logger: Logger,
  ) {}

  /** A gateway's `event`. The site and gateway always come from the connection's identity, never the frame. */
  async fromGateway(conn: GatewayConn, msg: GatewayEvent): Promise<void> {
    if (RELAY_EVENT_KINDS.has(msg.kind)) {
      conn.badMessage(`event kind "${msg.kind}" is reserved for the relay`);
      return;
    }
    const receivedAt = this.clock.now();
    const result = await this.eventLog.append({
      site: conn.site,
      gateway: conn.gateway,
      seq: msg.seq,
      kind: msg.kind,
      ...(msg.subject !== undefined ? { subject: msg.subject } : {}),
      at: msg.at,
      data: msg.data,
    });
    if (result.duplicate) {
      // Already stored (a resend after reconnect): acknowledge again, publish nothing.
      this.metrics.eventsAppended.inc({ result: 'duplicate' });
      conn.send({ type: 'event.ack', seq: msg.seq });
      return;
    }
    this.metrics.eventsAppended.inc({ result: 'stored' });
    conn.send({ type: 'event.ack', seq: msg.seq });
    await this.#publish(result.event, receivedAt);
  }

  /** Append and publish an event the relay itself makes (seq 0). */
  async relayEvent(site: string, gateway: string, kind: string, data: JsonObject): Promise<void> {
    const receivedAt = this.clock.now();
    const result = await this.eventLog.append({ site, gateway, seq: 0, kind, at: receivedAt, data });
    if (result.duplicate) return;
    await this.#publish(result.event, receivedAt);
  }

  /** Presence change: a live `presence` message to the site's watchers and a `gateway.online/offline` event. */
  async presenceChanged(site: string, gateway: string, online: boolean, since: number): Promise<void> {
    const payload: SitePresencePayload = { kind: 'presence', site, gateway, online, since };
    await this.bus.publish(siteChannel(site), toBus(payload));
    await this.relayEvent(site, gateway, online ? 'gateway.online' : 'gateway.offline', { since });
  }

  async #publish(event: StoredEvent, receivedAt: number): Promise<void> {
    const payload: SiteEventPayload = { kind: 'event', event, receivedAt };
    try {
      await this.bus.publish(siteChannel(event.site), toBus(payload));
    } catch (err) {
      // The event is durable; watchers that miss it get it on their next resume.
      this.logger.error({ err, site: event.site }, 'publishing an event failed; live watchers miss it until resume');
    }
  }
}
