/**
 * Browser subscriptions: `subscribe` (snapshot, or resume with `since`, or `resync`), `unsubscribe`, and
 * narrowing when a renewed token lists fewer sites.
 *
 * Joining a live stream without gaps or duplicates, comparing positions only for equality (they are opaque):
 *
 * ```
 *  1. buffer live messages for this subscription; make sure this node receives site:<s>
 *  2. read #1: snapshot (head H) — or events after `since` (head H)       ← everything appended before now
 *  3. mark "late"; read #2: events after H                                 ← what was appended during read #1
 *  4. send subscribed/resync, the missed events, read #2's events, then buffered messages marked late whose
 *     position read #2 did not already deliver (earlier ones were appended before read #2 began, so a read
 *     covered them); go live
 * ```
 */
import type { PresenceEntry, RelayToBrowser, SnapshotEntry, Subscribe, Unsubscribe } from '@scanrelay/protocol';
import type { Logger } from 'pino';
import type { EventLog, StoredEvent } from '../ports/event-log.js';
import type { Presence } from '../ports/presence.js';
import type { BrowserConn, Subscription } from './connection.js';
import { type SiteRouter, siteEventMessage } from './router.js';
import type { CoreLimits } from './settings.js';

export class Subscriptions {
  constructor(
    private readonly router: SiteRouter,
    private readonly eventLog: EventLog,
    private readonly presence: Presence,
    private readonly limits: CoreLimits,
    private readonly logger: Logger,
  ) {}

  async subscribe(conn: BrowserConn, msg: Subscribe): Promise<void> {
    const { site, since, ref } = msg;
    if (!conn.sites.has(site)) {
      conn.error('forbidden', `site "${site}" is not in this session's sites`, ref);
      return;
    }
    if (conn.subscriptions.has(site)) this.#drop(conn, site);
    else if (conn.subscriptions.size >= this.limits.maxSubscriptions) {
      conn.error('rate_limited', `at most ${this.limits.maxSubscriptions} subscriptions per connection`, ref);
      return;
    }
    const sub: Subscription = { site, buffer: [], late: false };
    conn.subscriptions.set(site, sub);
    try {
      await this.router.watch(site, conn);
      await this.#catchUp(conn, sub, since, ref);
    } catch (err) {
      if (conn.subscriptions.get(site) === sub) this.#drop(conn, site);
      throw err;
    }
  }

  unsubscribe(conn: BrowserConn, msg: Unsubscribe): void {
    this.#drop(conn, msg.site);
    const reply: RelayToBrowser = { type: 'unsubscribed', site: msg.site };
    if (msg.ref !== undefined) reply.ref = msg.ref;
    conn.send(reply);
  }

  /** After a renewal: end subscriptions to sites the new token no longer lists, telling the browser. */
  restrict(conn: BrowserConn): void {
    for (const site of [...conn.subscriptions.keys()]) {
      if (conn.sites.has(site)) continue;
      this.#drop(conn, site);
      conn.send({ type: 'unsubscribed', site });
    }
  }

  /** The connection closed: leave every site. */
  dropAll(conn: BrowserConn): void {
    for (const site of [...conn.subscriptions.keys()]) this.#drop(conn, site);
  }

  #drop(conn: BrowserConn, site: string): void {
    if (!conn.subscriptions.delete(site)) return;
    this.router.unwatch(site, conn);
  }

  async #catchUp(conn: BrowserConn, sub: Subscription, since: string | undefined, ref: string | undefined) {
    const { site } = sub;
    const max = this.limits.maxCatchUpEvents;
    const presence = await this.presence.listSite(site);
    let head: string;
    let snapshot: SnapshotEntry[] | undefined;
    let missed: StoredEvent[] = [];
    let resync = false;
    if (since === undefined) {
      ({ head, entries: snapshot } = await this.eventLog.snapshot(site));
    } else {
      const read = await this.eventLog.readSince(site, since, max + 1);
      if (read.gap || read.events.length > max) {
        resync = true;
        ({ head, entries: snapshot } = await this.eventLog.snapshot(site));
      } else {
        head = read.head;
        missed = read.events;
        // `head` may run ahead of the last event returned when appends raced the read; read #2 covers it.
        if (missed.length > 0) head = missed[missed.length - 1]!.position;
      }
    }
    sub.late = true;
    const second = await this.eventLog.readSince(site, head, max + 1);
    // The subscription may have been replaced, or the session narrowed, while reading.
    if (conn.subscriptions.get(site) !== sub || !conn.isOpen) return;
    if (!conn.sites.has(site)) {
      this.#drop(conn, site);
      return;
    }
    const sent = new Set<string>();
    const out: RelayToBrowser[] = [];
    if (resync) {
      out.push(withRef({ type: 'resync', site, position: head, snapshot: snapshot ?? [] }, ref));
      for (const p of presence) out.push(presenceMessage(site, p));
    } else {
      out.push(withRef({ type: 'subscribed', site, position: head, snapshot: snapshot ?? [], presence }, ref));
    }
    for (const e of missed) {
      sent.add(e.position);
      out.push(siteEventMessage(e));
    }
    if (second.gap) {
      this.logger.warn({ site }, 'history trimmed during a subscribe; the browser may miss events in between');
    } else {
      for (const e of second.events) {
        if (sent.has(e.position)) continue;
        sent.add(e.position);
        out.push(siteEventMessage(e));
      }
    }
    for (const b of sub.buffer ?? []) {
      // Early events are covered by the reads. Presence messages are not in the history: always pass them on
      // (the presence list was read first, so a change since then must not be lost; a repeat is harmless).
      if (!b.late && b.position !== undefined) continue;
      if (b.position !== undefined) {
        if (sent.has(b.position)) continue;
        sent.add(b.position);
      }
      out.push(b.message);
    }
    sub.buffer = undefined;
    conn.transport.cork(() => {
      for (const m of out) if (!conn.send(m)) break;
    });
  }
}

function withRef<T extends RelayToBrowser>(msg: T, ref: string | undefined): T {
  if (ref !== undefined) (msg as { ref?: string }).ref = ref;
  return msg;
}

function presenceMessage(site: string, p: PresenceEntry): RelayToBrowser {
  return { type: 'presence', site, gateway: p.gateway, online: p.online, since: p.since };
}
