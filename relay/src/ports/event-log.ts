/**
 * EventLog — each site's bounded, time-limited history and its latest-state-per-subject snapshot.
 *
 * Positions are opaque strings (`<epoch>-<n>` in memory, `<epoch>-<stream id>` on Redis). The epoch changes
 * when history was lost (process restart of the memory log, Redis flush), so a browser resuming with a
 * position from another epoch is told to `resync` instead of silently missing events.
 *
 * `append` is idempotent per (gateway, seq): the gateway resends unacknowledged events after a reconnect,
 * and an event whose `seq` is not above the gateway's highest stored `seq` is reported as a duplicate and
 * not stored or fanned out again. On Redis, append + trim + seq check is one Lua script.
 */
import type { JsonObject, SnapshotEntry } from '@scanrelay/protocol';
import type { BusPayload } from './bus.js';

export interface NewEvent {
  site: string;
  gateway: string;
  /** Gateway's own sequence number; 0 for events the relay itself makes (presence, command states). */
  seq: number;
  kind: string;
  subject?: string;
  at: number;
  data: JsonObject;
}

export interface StoredEvent extends NewEvent {
  position: string;
}

export type AppendResult = { duplicate: false; event: StoredEvent } | { duplicate: true; lastSeq: number };

export interface ReadResult {
  /** Events strictly after `since`, oldest first. */
  events: StoredEvent[];
  /** True when `since` is older than the history held or from another epoch: the reader must resync. */
  gap: boolean;
  /** Position of the newest event in the site's history (or the empty-history head). */
  head: string;
}

/**
 * Publish the stored event on the Bus as part of `append`, so that a node dying between "stored" and
 * "published" cannot leave live watchers without an event that is in the history (they would only get it on
 * their next resume). On Redis the publish happens inside the append script (same shard as the site's keys);
 * in memory right after the append. Nothing is published for a duplicate.
 */
export interface AppendPublish {
  /** Bus channel, e.g. `site:<id>`. */
  channel: string;
  /**
   * The Bus payload for the stored event. Called once per append. On Redis it is called before the stream id
   * is known, with a placeholder in `event.position` that the script replaces by the real position: use the
   * position only as a value to carry, never to derive anything from.
   */
  build(event: StoredEvent): BusPayload;
}

export interface EventLogLimits {
  /** Most events kept per site. */
  maxEvents: number;
  /** Oldest event kept, ms. */
  maxAgeMs: number;
  /** Most subjects kept in a site's snapshot (oldest dropped first). */
  maxSubjects: number;
}

export interface EventLog {
  /**
   * Append an event. Gateway events (seq > 0) whose seq is not above the gateway's stored high-water mark
   * are duplicates. Relay events (seq 0) are always appended. Updates the subject snapshot when `subject`
   * is set. Resolves only once the event is durable in the backend. With `publish`, the stored event is
   * also published on the Bus (atomically with the append on Redis): the caller must not publish it again.
   */
  append(event: NewEvent, publish?: AppendPublish): Promise<AppendResult>;
  /** Highest gateway `seq` stored for this gateway, 0 if none (what `welcome.acked` reports). */
  lastSeq(gateway: string): Promise<number>;
  /** Events after `since`, at most `limit`; `gap` when since is past history or from another epoch. */
  readSince(site: string, since: string, limit: number): Promise<ReadResult>;
  /** Latest state per subject, and the head position it reflects. */
  snapshot(site: string): Promise<{ head: string; entries: SnapshotEntry[] }>;
  close(): Promise<void>;
}
