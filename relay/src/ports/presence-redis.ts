/**
 * Redis Presence. Every presence key shares the hash tag `{presence}` (one cluster slot), so claim, release
 * and the exactly-once reap are single Lua scripts over all of them. Presence writes are one per gateway
 * heartbeat, small enough for one shard.
 *
 * | key                          | type | holds                                  |
 * |------------------------------|------|----------------------------------------|
 * | `sr:{presence}:lease`        | hash | gateway → PresenceRecord JSON          |
 * | `sr:{presence}:owner`        | hash | gateway → owning connection id         |
 * | `sr:{presence}:deadline`     | zset | gateway → lease deadline (ms)          |
 * | `sr:{presence}:offline`      | hash | gateway → offline since (ms)           |
 * | `sr:{presence}:site:<site>`  | set  | the site's gateways                    |
 * | `sr:{presence}:traffic`      | hash | gateway → last traffic seen (ms)       |
 * | `sr:{presence}:report`       | hash | gateway → GatewayHealthReport JSON     |
 *
 * Deadlines are computed from the injected Clock (node time), so lease rules match the memory
 * implementation exactly; see presence-memory.ts for those rules.
 */
import type { PresenceEntry } from '@scanrelay/protocol';
import type { Clock } from '../clock.js';
import { PortError } from './errors.js';
import { assertId } from './ids.js';
import type { FleetPresence, GatewayHealthReport, Presence, PresenceRecord } from './presence.js';
import { DEFAULT_OFFLINE_RETAIN_MS, type PresenceOptions } from './presence-memory.js';
import type { RedisConnection } from './redis-connection.js';

const P = 'sr:{presence}';
const LEASE = `${P}:lease`;
const OWNER = `${P}:owner`;
const DEADLINE = `${P}:deadline`;
const OFFLINE = `${P}:offline`;
const TRAFFIC = `${P}:traffic`;
const REPORT = `${P}:report`;
const siteSet = (site: string): string => `${P}:site:${site}`;

/** Most leases one reap call pops (the rest go to the next call). */
const REAP_BATCH = 500;

export class RedisPresence implements Presence {
  readonly #conn: RedisConnection;
  readonly #clock: Clock;
  readonly #offlineRetainMs: number;

  constructor(conn: RedisConnection, clock: Clock, options: PresenceOptions = {}) {
    this.#conn = conn;
    this.#clock = clock;
    this.#offlineRetainMs = options.offlineRetainMs ?? DEFAULT_OFFLINE_RETAIN_MS;
  }

  async claim(record: PresenceRecord, ttlMs: number): Promise<PresenceRecord | undefined> {
    assertId(record.gateway, 'presence gateway');
    assertId(record.site, 'presence site');
    assertTtl(ttlMs);
    const json = JSON.stringify({
      gateway: record.gateway,
      site: record.site,
      node: record.node,
      connection: record.connection,
      since: record.since,
    });
    const previous = await this.#conn.script(
      'presence-claim',
      [LEASE, OWNER, DEADLINE, OFFLINE, siteSet(record.site)],
      [record.gateway, json, record.connection, this.#clock.now() + ttlMs],
    );
    return typeof previous === 'string' ? parseRecord(previous) : undefined;
  }

  async heartbeat(gateway: string, connection: string, ttlMs: number): Promise<boolean> {
    assertId(gateway, 'presence gateway');
    assertTtl(ttlMs);
    const ok = await this.#conn.script(
      'presence-heartbeat',
      [OWNER, DEADLINE],
      [gateway, connection, this.#clock.now() + ttlMs],
    );
    return Number(ok) === 1;
  }

  async release(gateway: string, connection: string): Promise<boolean> {
    assertId(gateway, 'presence gateway');
    const ok = await this.#conn.script(
      'presence-release',
      [LEASE, OWNER, DEADLINE, OFFLINE],
      [gateway, connection, this.#clock.now()],
    );
    return Number(ok) === 1;
  }

  async get(gateway: string): Promise<PresenceRecord | undefined> {
    assertId(gateway, 'presence gateway');
    const json = await this.#conn.script('presence-get', [LEASE, DEADLINE], [gateway, this.#clock.now()]);
    return typeof json === 'string' ? parseRecord(json) : undefined;
  }

  async listSite(site: string): Promise<PresenceEntry[]> {
    assertId(site, 'presence site');
    const reply = (await this.#conn.script(
      'presence-list',
      [LEASE, OWNER, DEADLINE, OFFLINE, siteSet(site)],
      [this.#clock.now(), this.#offlineRetainMs],
    )) as (string | number)[];
    const out: PresenceEntry[] = [];
    for (let i = 0; i + 2 < reply.length; i += 3) {
      const gateway = String(reply[i]);
      if (Number(reply[i + 1]) === 1) {
        out.push({ gateway, online: true, since: parseRecord(String(reply[i + 2])).since });
      } else {
        out.push({ gateway, online: false, since: Number(reply[i + 2]) });
      }
    }
    return out;
  }

  async reapExpired(now: number): Promise<PresenceRecord[]> {
    const reaped: PresenceRecord[] = [];
    for (;;) {
      const batch = (await this.#conn.script(
        'presence-reap',
        [LEASE, OWNER, DEADLINE, OFFLINE],
        [now, REAP_BATCH],
      )) as string[];
      for (const json of batch) reaped.push(parseRecord(json));
      if (batch.length < REAP_BATCH) return reaped;
    }
  }

  async noteTraffic(gateway: string, at: number): Promise<void> {
    assertId(gateway, 'presence gateway');
    await this.#conn.call('presence traffic', (c) => c.hset(TRAFFIC, gateway, String(at)));
  }

  async saveReport(gateway: string, report: GatewayHealthReport): Promise<void> {
    assertId(gateway, 'presence gateway');
    await this.#conn.call('presence report', (c) =>
      c.multi().hset(REPORT, gateway, JSON.stringify(report)).hset(TRAFFIC, gateway, String(report.reportedAt)).exec(),
    );
  }

  async fleet(gateways: readonly string[]): Promise<FleetPresence[]> {
    if (gateways.length === 0) return [];
    for (const g of gateways) assertId(g, 'presence gateway');
    const ids = [...gateways];
    // Every key shares the {presence} slot, so one pipeline (one round trip) serves a Cluster too.
    const replies = await this.#conn.call('presence fleet', async (c) => {
      const res = await c
        .pipeline()
        .hmget(LEASE, ...ids)
        .zmscore(DEADLINE, ...ids)
        .hmget(OFFLINE, ...ids)
        .hmget(TRAFFIC, ...ids)
        .hmget(REPORT, ...ids)
        .exec();
      if (!res) throw new PortError('unavailable', 'the presence fleet pipeline was discarded');
      return res.map(([err, value]) => {
        if (err) throw err;
        return value as (string | null)[];
      });
    });
    const [leases, deadlines, offline, traffic, reports] = replies as [
      (string | null)[],
      (string | null)[],
      (string | null)[],
      (string | null)[],
      (string | null)[],
    ];
    const now = this.#clock.now();
    return ids.map((_, i) => {
      const deadline = deadlines[i] == null ? undefined : Number(deadlines[i]);
      const lease = leases[i] ? parseRecord(leases[i]) : undefined;
      const live = lease !== undefined && deadline !== undefined && deadline > now;
      let since: number | null = null;
      if (live) since = lease.since;
      else if (deadline !== undefined) since = deadline;
      else if (offline[i] != null) since = Number(offline[i]);
      return {
        online: live,
        since,
        node: live ? lease.node : null,
        lastTrafficAt: traffic[i] == null ? null : Number(traffic[i]),
        report: reports[i] ? parseReport(reports[i]) : null,
      };
    });
  }

  async close(): Promise<void> {}
}

function parseReport(json: string): GatewayHealthReport | null {
  try {
    return JSON.parse(json) as GatewayHealthReport;
  } catch {
    return null; // a corrupt report only hides health detail; presence itself stays right
  }
}

function parseRecord(json: string): PresenceRecord {
  try {
    const r = JSON.parse(json) as PresenceRecord;
    return { gateway: r.gateway, site: r.site, node: r.node, connection: r.connection, since: r.since };
  } catch (err) {
    throw new PortError('corrupt', 'a presence record in Redis is not valid JSON', { cause: err });
  }
}

function assertTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) throw new TypeError('presence ttlMs must be a positive integer');
}
