/**
 * One site's live board: the snapshot (latest event per subject), presence of its gateways, and the events
 * as they come, each `(gateway, seq)` passed on at most once — across reconnects, resumes and the relay's own
 * catch-up, which can overlap.
 *
 * ```
 *  pending ──subscribed──▶ live ──socket lost──▶ pending ──subscribed{since}──▶ live   (missed events follow)
 *     │                                              └────resync──────────────▶ live   (board rebuilt)
 *     └──error (forbidden, unknown_site…)──▶ failed          unsubscribe() / client closed ──▶ closed
 * ```
 */
import type { PresenceEntry, SiteEvent, SnapshotEntry } from '@scanrelay/protocol';
import { Emitter } from './emitter.js';
import type { ScanRelayError } from './errors.js';
import type { SubscriptionEvents, SubscriptionState } from './types.js';

/** Relay-made events (seq 0) are deduplicated by position; this many recent positions are remembered. */
const RECENT_POSITIONS = 4096;

export interface SubscriptionOwner {
  /** Ask the relay to (re)subscribe; `since` resumes after that position. */
  sendSubscribe(site: string, since: string | undefined): void;
  sendUnsubscribe(site: string): void;
  forget(sub: Subscription): void;
}

export class Subscription extends Emitter<SubscriptionEvents> {
  readonly site: string;
  #state: SubscriptionState = 'pending';
  #position: string | undefined;
  #board = new Map<string, SnapshotEntry>();
  #presence = new Map<string, PresenceEntry>();
  /** Highest gateway `seq` seen per gateway: one gateway's events arrive in `seq` order. */
  #maxSeq = new Map<string, number>();
  #recentPositions = new Set<string>();
  #owner: SubscriptionOwner;
  /** Whether the subscribe in flight carried `since` (then `subscribed` holds no snapshot, only what was missed). */
  #resuming = false;
  #pendingRef: string | undefined;

  /** @internal created by `ScanRelayClient.subscribe`. */
  constructor(site: string, owner: SubscriptionOwner) {
    super();
    this.site = site;
    this.#owner = owner;
  }

  get state(): SubscriptionState {
    return this.#state;
  }
  /** Position of the newest event applied; sent as `since` when the connection comes back. */
  get position(): string | undefined {
    return this.#position;
  }
  /** Latest event per subject (accession), as of `position`. */
  get board(): ReadonlyMap<string, SnapshotEntry> {
    return this.#board;
  }
  /** The site's gateways and whether each is online. */
  get presence(): ReadonlyMap<string, PresenceEntry> {
    return this.#presence;
  }

  /** Stop watching the site. */
  unsubscribe(): void {
    if (this.#state === 'closed') return;
    const wasActive = this.#state !== 'failed';
    this.#setState('closed');
    if (wasActive) this.#owner.sendUnsubscribe(this.site);
    this.#owner.forget(this);
  }

  #setState(to: SubscriptionState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.emit('state', { from, to });
  }

  // ─── driven by the client ──────────────────────────────────────────────────────────────────────────

  /** @internal the connection is (again) authenticated: subscribe, resuming when we have a position. */
  resubscribe(): void {
    if (this.#state === 'closed' || this.#state === 'failed') return;
    this.#setState('pending');
    this.#resuming = this.#position !== undefined;
    this.#owner.sendSubscribe(this.site, this.#position);
  }

  /** @internal the socket went away. */
  suspend(): void {
    if (this.#state === 'live') this.#setState('pending');
  }

  /** @internal the client closed for good. */
  end(): void {
    this.#setState('closed');
  }

  /** @internal `subscribed`: a first snapshot, or (when resuming) an empty one followed by the missed events. */
  subscribed(position: string, snapshot: SnapshotEntry[], presence: PresenceEntry[]): void {
    if (this.#state === 'closed') return;
    if (!this.#resuming) this.#replaceBoard(position, snapshot, 'subscribed');
    else this.#position ??= position;
    this.#presence.clear();
    for (const p of presence) this.#presence.set(p.gateway, p);
    this.#setState('live');
    for (const p of presence) this.emit('presence', p);
  }

  /** @internal `resync`: our position is past the relay's history; start over from its snapshot. */
  resync(position: string, snapshot: SnapshotEntry[]): void {
    if (this.#state === 'closed') return;
    this.#replaceBoard(position, snapshot, 'resync');
    this.#setState('live');
  }

  /** @internal ref of the subscribe in flight, to match an `error` reply to this subscription. */
  get pendingRef(): string | undefined {
    return this.#pendingRef;
  }
  /** @internal */
  setPendingRef(ref: string | undefined): void {
    this.#pendingRef = ref;
  }

  /** @internal a site event; returns false when it was a duplicate. */
  event(e: SiteEvent): boolean {
    if (this.#state === 'closed' || !this.#isNew(e)) return false;
    this.#position = e.position;
    if (e.subject !== undefined)
      this.#board.set(e.subject, {
        subject: e.subject,
        gateway: e.gateway,
        seq: e.seq,
        position: e.position,
        kind: e.kind,
        at: e.at,
        data: e.data,
      });
    this.emit('event', e);
    return true;
  }

  /** @internal a live presence change. */
  presenceChanged(p: PresenceEntry): void {
    if (this.#state === 'closed') return;
    this.#presence.set(p.gateway, p);
    this.emit('presence', p);
  }

  /** @internal the relay refused a subscribe (e.g. forbidden) or ended it (`unsubscribed` after a narrowing renewal). */
  refused(error: ScanRelayError): void {
    if (this.#state === 'closed') return;
    this.#setState('failed');
    this.emit('error', error);
    this.#owner.forget(this);
  }

  #isNew(e: SiteEvent): boolean {
    if (e.seq > 0) {
      const max = this.#maxSeq.get(e.gateway) ?? 0;
      if (e.seq <= max) return false;
      this.#maxSeq.set(e.gateway, e.seq);
      return true;
    }
    if (this.#recentPositions.has(e.position)) return false;
    this.#recentPositions.add(e.position);
    if (this.#recentPositions.size > RECENT_POSITIONS) {
      const oldest = this.#recentPositions.values().next().value;
      if (oldest !== undefined) this.#recentPositions.delete(oldest);
    }
    return true;
  }

  #replaceBoard(position: string, snapshot: SnapshotEntry[], reason: 'subscribed' | 'resync'): void {
    this.#position = position;
    this.#board = new Map();
    for (const entry of snapshot) {
      this.#board.set(entry.subject, entry);
      // Events already folded into the snapshot must not be passed on again if the relay also replays them.
      if (entry.seq > (this.#maxSeq.get(entry.gateway) ?? 0)) this.#maxSeq.set(entry.gateway, entry.seq);
    }
    this.emit('snapshot', { reason, board: this.#board });
  }
}
