/**
 * Prometheus metrics of one relay instance. Each relay owns its own prom-client Registry (several relays run
 * in one test process), served at `/metrics`.
 *
 * | metric                                   | type      | labels         |
 * |------------------------------------------|-----------|----------------|
 * | scanrelay_connections                    | gauge     | role           |
 * | scanrelay_messages_in_total              | counter   | role, type     |
 * | scanrelay_messages_out_total             | counter   | role           |
 * | scanrelay_commands_total                 | counter   | state          |
 * | scanrelay_event_fanout_lag_seconds       | histogram | —              |
 * | scanrelay_events_appended_total          | counter   | result         |
 * | scanrelay_auth_rejections_total          | counter   | role, reason   |
 * | scanrelay_closes_total                   | counter   | role, code     |
 * | scanrelay_upgrade_refusals_total         | counter   | status         |
 * | scanrelay_gateways_online                | gauge     | —              |
 * plus prom-client's default process metrics (prefixed `scanrelay_`).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export type Role = 'browser' | 'gateway' | 'pending';

export class RelayMetrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({
    name: 'scanrelay_connections',
    help: 'Open WebSocket connections by role (pending = not yet authenticated).',
    labelNames: ['role'] as const,
    registers: [this.registry],
  });
  readonly messagesIn = new Counter({
    name: 'scanrelay_messages_in_total',
    help: 'Valid inbound messages by role and type.',
    labelNames: ['role', 'type'] as const,
    registers: [this.registry],
  });
  /**
   * Frames sent per role, counted on the hot path (once per delivery) as plain numbers: prom-client's
   * `inc({role})` hashes and validates its labels object on every call. `messagesOut` takes the difference
   * at each scrape.
   */
  readonly framesOut: Record<'browser' | 'gateway', number> = { browser: 0, gateway: 0 };
  readonly #framesReported: Record<'browser' | 'gateway', number> = { browser: 0, gateway: 0 };
  readonly messagesOut: Counter<'role'> = new Counter({
    name: 'scanrelay_messages_out_total',
    help: 'Frames sent by role.',
    labelNames: ['role'] as const,
    registers: [this.registry],
    collect: () => {
      for (const role of ['browser', 'gateway'] as const) {
        const delta = this.framesOut[role] - this.#framesReported[role];
        if (delta > 0) this.messagesOut.inc({ role }, delta);
        this.#framesReported[role] = this.framesOut[role];
      }
    },
  });
  readonly commands = new Counter({
    name: 'scanrelay_commands_total',
    help: 'Command state transitions seen by this node.',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly fanoutLag = new Histogram({
    name: 'scanrelay_event_fanout_lag_seconds',
    help: 'Time from an event reaching the relay to its fan-out on this node.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly eventsAppended = new Counter({
    name: 'scanrelay_events_appended_total',
    help: 'Gateway events appended to history (result = stored | duplicate).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly authRejections = new Counter({
    name: 'scanrelay_auth_rejections_total',
    help: 'Refused hello/auth/command tokens by role and reason.',
    labelNames: ['role', 'reason'] as const,
    registers: [this.registry],
  });
  readonly closes = new Counter({
    name: 'scanrelay_closes_total',
    help: 'Connections closed, by role and close code.',
    labelNames: ['role', 'code'] as const,
    registers: [this.registry],
  });
  readonly upgradeRefusals = new Counter({
    name: 'scanrelay_upgrade_refusals_total',
    help: 'WebSocket upgrades refused before the handshake, by HTTP status.',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly gatewaysOnline = new Gauge({
    name: 'scanrelay_gateways_online',
    help: 'Gateways connected to this node.',
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'scanrelay_' });
  }
}
