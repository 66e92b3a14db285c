/**
 * Site events: a gateway's own events (validated, stamped with its authenticated site and gateway id,
 * appended, acknowledged only once durable, then published), and the relay's own events on a site's channel
 * (`command.status`, `gateway.online`, `gateway.offline`) plus live `presence` messages.
 *
 * ```
 *  gateway ── event{seq} ──▶ stamp {site, gateway} from identity ──▶ EventLog.append ──┬─ duplicate ─▶ event.ack (no fan-out)
 *                                                                                      └─ stored ────▶ event.ack
 *  (the append itself publishes the stored event on Bus site:<s>: see AppendPublish)
 * ```
 */
import { type GatewayEvent, type JsonObject, RELAY_EVENT_KINDS } from '@scanrelay/protocol';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { RelayMetrics } from '../observability/metrics.js';
import type { Bus } from '../ports/bus.js';
import type { AppendPublish, EventLog, StoredEvent } from '../ports/event-log.js';
import { type SiteEventPayload, type SitePresencePayload, siteChannel, toBus } from './bus-messages.js';
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
    let result: Awaited<ReturnType<EventLog['append']>>;
    try {
      result = await this.eventLog.append(
        {
          site: conn.site,
          gateway: conn.gateway,
          seq: msg.seq,
          kind: msg.kind,
          ...(msg.subject !== undefined ? { subject: msg.subject } : {}),
          at: msg.at,
          data: msg.data,
        },
        this.#publishing(conn.site, receivedAt),
      );
    } catch (err) {
      // Not stored. Close (4000, reconnect) so the gateway resends from `welcome.acked`: carrying on would let
      // a later seq be stored first and this one then be refused as a duplicate — lost.
      this.logger.error({ err, gateway: conn.gateway, seq: msg.seq }, 'storing an event failed; gateway link closed');
      conn.fail('internal', 'the event could not be stored; reconnect and resend from welcome.acked');
      return;
    }
    if (result.duplicate) {
      // Already stored (a resend after reconnect): acknowledge again, publish nothing.
      this.metrics.eventsAppended.inc({ result: 'duplicate' });
      conn.send({ type: 'event.ack', seq: msg.seq });
      return;
    }
    this.metrics.eventsAppended.inc({ result: 'stored' });
    conn.send({ type: 'event.ack', seq: msg.seq });
  }

  /** Append and publish an event the relay itself makes (seq 0). */
  async relayEvent(site: string, gateway: string, kind: string, data: JsonObject): Promise<void> {
    const receivedAt = this.clock.now();
    await this.eventLog.append(
      { site, gateway, seq: 0, kind, at: receivedAt, data },
      this.#publishing(site, receivedAt),
    );
  }

  /** Presence change: a live `presence` message to the site's watchers and a `gateway.online/offline` event. */
  async presenceChanged(site: string, gateway: string, online: boolean, since: number): Promise<void> {
    const payload: SitePresencePayload = { kind: 'presence', site, gateway, online, since };
    await this.bus.publish(siteChannel(site), toBus(payload));
    await this.relayEvent(site, gateway, online ? 'gateway.online' : 'gateway.offline', { since });
  }

  /**
   * The EventLog publishes the stored event itself, in the same step as the append (one Lua script on Redis),
   * so a node dying between "stored and acked" and "published" cannot leave live watchers without it.
   */
  #publishing(site: string, receivedAt: number): AppendPublish {
    return {
      channel: siteChannel(site),
      build: (event: StoredEvent) => toBus({ kind: 'event', event, receivedAt } satisfies SiteEventPayload),
    };
  }
}
