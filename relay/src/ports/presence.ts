/**
 * Presence — which gateway is connected where, proven by traffic.
 *
 * A record lives while its node keeps heart-beating it (each time the gateway's socket shows traffic) and
 * expires `ttlMs` after the last beat, so a node that dies without cleaning up cannot leave a gateway shown
 * online. Each record names the owning connection: a gateway that reconnects (to any node) takes ownership
 * and the previous owner is told to close its socket (`replaced`).
 */
import type { PresenceEntry } from '@scanrelay/protocol';

export interface PresenceRecord {
  gateway: string;
  site: string;
  /** Node holding the live socket. */
  node: string;
  /** Unique id of that socket (so a stale owner cannot overwrite or clear a newer one). */
  connection: string;
  /** Online since, ms epoch. */
  since: number;
}

/** A gateway's latest in-band `gateway.report`, as the relay stored it (see relay/protocol/README.md). */
export interface GatewayHealthReport {
  agent: { version: string; transport: string; startedAt: number };
  outbox: { pending: number; oldestAt: number | null };
  peers: { aet: string; online: boolean; checkedAt: number | null }[];
  /** Gateway clock minus relay clock when the report arrived, ms. */
  clockSkewMs: number;
  /** Relay time the report arrived, ms epoch. */
  reportedAt: number;
}

/** One gateway's presence as the fleet API shows it. */
export interface FleetPresence {
  /** True only while a live lease (renewed by the socket's traffic) exists. */
  online: boolean;
  /** Online since (live lease) or offline since; null when never seen (or forgotten after retention). */
  since: number | null;
  node: string | null;
  lastTrafficAt: number | null;
  report: GatewayHealthReport | null;
}

export interface Presence {
  /**
   * Record this connection as the gateway's live socket. Returns the record it replaced (another socket of
   * the same gateway, possibly on another node), if any.
   */
  claim(record: PresenceRecord, ttlMs: number): Promise<PresenceRecord | undefined>;
  /** Extend the lease. Returns false when this connection no longer owns the gateway (it was replaced). */
  heartbeat(gateway: string, connection: string, ttlMs: number): Promise<boolean>;
  /** Drop the lease if this connection still owns it. Returns true if it did. */
  release(gateway: string, connection: string): Promise<boolean>;
  /** The live record, if the lease has not expired. */
  get(gateway: string): Promise<PresenceRecord | undefined>;
  /** Every gateway of a site known online or recently offline, for `subscribed.presence`. */
  listSite(site: string): Promise<PresenceEntry[]>;
  /**
   * Leases that expired since the last call (their node stopped beating them), removed as it returns them.
   * Called periodically by every node; each expiry is returned to exactly one caller.
   */
  reapExpired(now: number): Promise<PresenceRecord[]>;
  /** Record that the gateway's socket showed traffic at `at` (called at most every ttl/3, like heartbeat). */
  noteTraffic(gateway: string, at: number): Promise<void>;
  /** Keep the gateway's latest report (replacing the previous one); also counts as traffic at `reportedAt`. */
  saveReport(gateway: string, report: GatewayHealthReport): Promise<void>;
  /** The fleet view of each gateway, in the order given (one round trip for all of them). */
  fleet(gateways: readonly string[]): Promise<FleetPresence[]>;
  close(): Promise<void>;
}
