/**
 * In-memory Presence: leases in a Map with deadlines read from the injected Clock (no timers: the core's
 * periodic `reapExpired` call is what turns a lapsed lease into "offline"), plus each site's last known
 * state per gateway for `listSite`.
 *
 * Lease rules shared with the Redis implementation (the contract suite checks both):
 * - `claim` always wins and returns the previous owner's record when it was another connection, even if
 *   that lease had lapsed but was not reaped yet (its node must still close that socket).
 * - `heartbeat` succeeds for the owning connection until the lease is reaped (a beat that arrives just after
 *   the deadline, before any node reaped it, keeps the gateway online rather than flapping it).
 * - `get` only returns a lease whose deadline is in the future.
 * - Offline entries stay listed for `offlineRetainMs` (default 24 h), so a late subscriber sees "offline
 *   since", then are forgotten.
 */
import type { PresenceEntry } from '@scanrelay/protocol';
import type { Clock } from '../clock.js';
import { assertId } from './ids.js';
import type { FleetPresence, GatewayHealthReport, Presence, PresenceRecord } from './presence.js';

export interface PresenceOptions {
  /** How long an offline gateway stays in `listSite`, ms. Default 24 h. */
  offlineRetainMs?: number;
}

export const DEFAULT_OFFLINE_RETAIN_MS = 24 * 60 * 60 * 1000;

interface Lease {
  record: PresenceRecord;
  deadline: number;
}

export class MemoryPresence implements Presence {
  readonly #clock: Clock;
  readonly #offlineRetainMs: number;
  readonly #leases = new Map<string, Lease>();
  /** site → gateway → last known state. */
  readonly #sites = new Map<string, Map<string, PresenceEntry>>();
  readonly #traffic = new Map<string, number>();
  /** gateway → offline since, kept (unlike the site map) for the fleet view. */
  readonly #offlineSince = new Map<string, number>();
  readonly #reports = new Map<string, GatewayHealthReport>();

  constructor(clock: Clock, options: PresenceOptions = {}) {
    this.#clock = clock;
    this.#offlineRetainMs = options.offlineRetainMs ?? DEFAULT_OFFLINE_RETAIN_MS;
  }

  async claim(record: PresenceRecord, ttlMs: number): Promise<PresenceRecord | undefined> {
    assertId(record.gateway, 'presence gateway');
    assertId(record.site, 'presence site');
    assertTtl(ttlMs);
    const previous = this.#leases.get(record.gateway);
    this.#leases.set(record.gateway, { record: { ...record }, deadline: this.#clock.now() + ttlMs });
    this.#siteMap(record.site).set(record.gateway, { gateway: record.gateway, online: true, since: record.since });
    if (previous && previous.record.site !== record.site) {
      this.#sites.get(previous.record.site)?.delete(record.gateway);
    }
    return previous && previous.record.connection !== record.connection ? previous.record : undefined;
  }

  async heartbeat(gateway: string, connection: string, ttlMs: number): Promise<boolean> {
    assertId(gateway, 'presence gateway');
    assertTtl(ttlMs);
    const lease = this.#leases.get(gateway);
    if (!lease || lease.record.connection !== connection) return false;
    lease.deadline = this.#clock.now() + ttlMs;
    return true;
  }

  async release(gateway: string, connection: string): Promise<boolean> {
    assertId(gateway, 'presence gateway');
    const lease = this.#leases.get(gateway);
    if (!lease || lease.record.connection !== connection) return false;
    this.#leases.delete(gateway);
    this.#markOffline(lease.record, this.#clock.now());
    return true;
  }

  async get(gateway: string): Promise<PresenceRecord | undefined> {
    assertId(gateway, 'presence gateway');
    const lease = this.#leases.get(gateway);
    return lease && lease.deadline > this.#clock.now() ? { ...lease.record } : undefined;
  }

  async listSite(site: string): Promise<PresenceEntry[]> {
    assertId(site, 'presence site');
    const entries = this.#sites.get(site);
    if (!entries) return [];
    const now = this.#clock.now();
    const out: PresenceEntry[] = [];
    for (const [gateway, entry] of entries) {
      if (!entry.online && entry.since + this.#offlineRetainMs <= now) {
        entries.delete(gateway);
        continue;
      }
      if (entry.online) {
        // A lapsed lease not reaped yet is already offline in truth: say so, since its deadline.
        const lease = this.#leases.get(gateway);
        if (!lease || lease.deadline <= now) {
          out.push({ gateway, online: false, since: lease?.deadline ?? now });
          continue;
        }
      }
      out.push({ ...entry });
    }
    return out;
  }

  async reapExpired(now: number): Promise<PresenceRecord[]> {
    const reaped: PresenceRecord[] = [];
    for (const [gateway, lease] of this.#leases) {
      if (lease.deadline > now) continue;
      this.#leases.delete(gateway);
      this.#markOffline(lease.record, lease.deadline);
      reaped.push(lease.record);
    }
    return reaped;
  }

  async noteTraffic(gateway: string, at: number): Promise<void> {
    assertId(gateway, 'presence gateway');
    this.#traffic.set(gateway, Math.max(at, this.#traffic.get(gateway) ?? 0));
  }

  async saveReport(gateway: string, report: GatewayHealthReport): Promise<void> {
    assertId(gateway, 'presence gateway');
    this.#reports.set(gateway, structuredClone(report));
    await this.noteTraffic(gateway, report.reportedAt);
  }

  async fleet(gateways: readonly string[]): Promise<FleetPresence[]> {
    const now = this.#clock.now();
    return gateways.map((gateway) => {
      const lease = this.#leases.get(gateway);
      const live = lease !== undefined && lease.deadline > now;
      const report = this.#reports.get(gateway);
      let since: number | null = this.#offlineSince.get(gateway) ?? null;
      if (live) since = lease.record.since;
      else if (lease) since = lease.deadline;
      return {
        online: live,
        since,
        node: live ? lease.record.node : null,
        lastTrafficAt: this.#traffic.get(gateway) ?? null,
        report: report ? structuredClone(report) : null,
      };
    });
  }

  async close(): Promise<void> {}

  #markOffline(record: PresenceRecord, since: number): void {
    this.#offlineSince.set(record.gateway, since);
    this.#siteMap(record.site).set(record.gateway, { gateway: record.gateway, online: false, since });
  }

  #siteMap(site: string): Map<string, PresenceEntry> {
    let map = this.#sites.get(site);
    if (!map) {
      map = new Map();
      this.#sites.set(site, map);
    }
    return map;
  }
}

function assertTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) throw new TypeError(`presence ttlMs must be a positive integer`);
}
