/**
 * Site fan-out. A node holds ONE Bus subscription per site however many of its sockets watch that site, and
 * fans each message out locally, encoding it once per codec (not once per subscriber).
 *
 * ```
 *  Bus site:<s> ──▶ onSite ──▶ encode lazily {json?, msgpack?} ──▶ each watcher of s on this node
 *                                                                  ├─ catching up: buffer (subscriptions.ts)
 *                                                                  └─ live: sendFrame (cut if over its cap)
 * ```
 */
import {
  type Codec,
  encodeMessage,
  type Presence as PresenceMessage,
  type RelayToBrowser,
  type SiteEvent,
} from '@scanrelay/protocol';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { RelayMetrics } from '../observability/metrics.js';
import type { Bus, BusPayload } from '../ports/bus.js';
import type { EventLog, StoredEvent } from '../ports/event-log.js';
import { type SiteEventPayload, type SitePresencePayload, siteChannel } from './bus-messages.js';
import type { BrowserConn } from './connection.js';

/** The browser `event` message for a stored event. */
export function siteEventMessage(e: StoredEvent): SiteEvent {
  const msg: SiteEvent = {
    type: 'event',
    site: e.site,
    position: e.position,
    gateway: e.gateway,
    seq: e.seq,
    kind: e.kind,
    at: e.at,
    data: e.data,
  };
  if (e.subject !== undefined) msg.subject = e.subject;
  return msg;
}

/** Encodes one message at most once per codec. */
class FrameCache {
  #json: string | Uint8Array | undefined;
  #msgpack: string | Uint8Array | undefined;
  constructor(private readonly message: RelayToBrowser) {}
  get(codec: Codec): string | Uint8Array {
    if (codec === 'json') {
      this.#json ??= encodeMessage('json', this.message);
      return this.#json;
    }
    this.#msgpack ??= encodeMessage('msgpack', this.message);
    return this.#msgpack;
  }
}

export class SiteRouter {
  readonly #watchers = new Map<string, Set<BrowserConn>>();
  /** Bus subscribe/unsubscribe per site, serialised so a quick leave-then-join cannot end unsubscribed. */
  readonly #ops = new Map<string, Promise<void>>();
  /** Per watched site: position of the last event fanned out (or the head when this node began receiving it). */
  readonly #last = new Map<string, string>();
  /** Sites re-reading history after a Bus reconnect: live messages wait here meanwhile. */
  readonly #recovering = new Map<string, BusPayload[]>();
  readonly #recoveryRunning = new Set<string>();
  /**
   * After a catch-up: positions it delivered whose live message may still be on its way (the history read
   * can see an event before its pub/sub message arrives). Dropped when they arrive; forgotten at the first
   * live event not in the set (live messages come in append order, so everything after it is newer).
   */
  readonly #skip = new Map<string, Set<string>>();
  #log: EventLog | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly clock: Clock,
    private readonly metrics: RelayMetrics,
    private readonly logger: Logger,
    /** Largest catch-up buffer per subscription before the reader is cut as a slow consumer. */
    private readonly maxBuffered: number,
  ) {}

  /**
   * After a Bus reconnect (pub/sub messages published meanwhile are lost), re-read each watched site's history
   * from the last position fanned out and deliver what was missed, then the live messages buffered meanwhile
   * (skipping those the re-read already delivered). Enabled by giving the router the EventLog.
   */
  catchUpWith(eventLog: EventLog): void {
    this.#log = eventLog;
    // On loss: buffer every watched site's live messages from now on. On reconnect: re-read history from the
    // last position fanned out, then flush the buffer (the order of the two Bus signals against the first
    // restored message is not guaranteed on a cluster, hence buffering from the loss).
    this.bus.onDisconnect?.(() => {
      for (const site of this.#watchers.keys()) if (!this.#recovering.has(site)) this.#recovering.set(site, []);
    });
    this.bus.onReconnect?.(() => {
      for (const site of this.#watchers.keys()) {
        if (!this.#last.has(site)) {
          // Nothing known to resume from: deliver what was buffered and carry on live.
          const buffered = this.#recovering.get(site) ?? [];
          this.#recovering.delete(site);
          for (const p of buffered) this.#onSite(site, p);
          continue;
        }
        if (!this.#recovering.has(site)) this.#recovering.set(site, []);
        if (this.#recoveryRunning.has(site)) continue;
        this.#recoveryRunning.add(site);
        void this.#recover(site).finally(() => this.#recoveryRunning.delete(site));
      }
    });
  }

  /** Number of sites this node currently receives. */
  get siteCount(): number {
    return this.#watchers.size;
  }

  /** Add `conn` as a watcher of `site`; resolves once this node receives the site's channel. */
  async watch(site: string, conn: BrowserConn): Promise<void> {
    let set = this.#watchers.get(site);
    if (!set) {
      set = new Set();
      this.#watchers.set(site, set);
      this.#chain(site, async () => {
        await this.bus.subscribe(siteChannel(site), (p) => this.#onSite(site, p));
        // Where this node's stream of the site starts, for catch-up after a Bus reconnect. readSince with an
        // empty position only reports the head (it is a gap by definition); an event fanned out meanwhile wins.
        const head = await this.#log?.readSince(site, '', 1).then((r) => r.head);
        if (head !== undefined && !this.#last.has(site) && this.#watchers.has(site)) this.#last.set(site, head);
      });
    }
    set.add(conn);
    await this.#ops.get(site);
  }

  /** Remove `conn` from `site`'s watchers; the last one out drops the Bus subscription. */
  unwatch(site: string, conn: BrowserConn): void {
    const set = this.#watchers.get(site);
    if (!set?.delete(conn) || set.size > 0) return;
    this.#watchers.delete(site);
    this.#last.delete(site);
    this.#skip.delete(site);
    if (!this.#recoveryRunning.has(site)) this.#recovering.delete(site);
    this.#chain(site, () => this.bus.unsubscribe(siteChannel(site)));
  }

  /** Drop every Bus subscription (shutdown). */
  async close(): Promise<void> {
    const sites = [...this.#watchers.keys()];
    this.#watchers.clear();
    await Promise.allSettled(sites.map((s) => this.bus.unsubscribe(siteChannel(s))));
  }

  #chain(site: string, op: () => Promise<void>): void {
    const prev = this.#ops.get(site) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(op);
    this.#ops.set(site, next);
    next.then(
      () => {
        if (this.#ops.get(site) === next) this.#ops.delete(site);
      },
      (err: unknown) => {
        if (this.#ops.get(site) === next) this.#ops.delete(site);
        this.logger.error({ err, site }, 'bus subscription change failed; watchers of this site may miss events');
      },
    );
  }

  async #recover(site: string): Promise<void> {
    const delivered = new Set<string>();
    let since = this.#last.get(site);
    try {
      for (let attempt = 0; since !== undefined && this.#watchers.has(site); ) {
        let read: Awaited<ReturnType<EventLog['readSince']>>;
        try {
          read = await this.#log!.readSince(site, since, 500);
        } catch (err) {
          // The backend may still be coming back: retry a few times before giving up on this pass.
          if (++attempt >= 20) throw err;
          await new Promise((r) => setTimeout(r, 250));
          continue;
        }
        if (read.gap) {
          this.logger.warn({ site }, 'history behind the Bus outage is gone; watchers of this site get it on resume');
          break;
        }
        for (const event of read.events) {
          delivered.add(event.position);
          this.#fanOut(site, { kind: 'event', event, receivedAt: this.clock.now() } as unknown as BusPayload);
          since = event.position;
        }
        if (read.events.length < 500) break;
      }
    } catch (err) {
      this.logger.error(
        { err, site },
        'catching up after a Bus reconnect failed; watchers get missed events on resume',
      );
    } finally {
      const buffered = this.#recovering.get(site) ?? [];
      this.#recovering.delete(site);
      if (delivered.size > 0) this.#skip.set(site, delivered);
      for (const p of buffered) this.#onSite(site, p);
    }
  }

  #onSite(site: string, payload: BusPayload): void {
    const buffer = this.#recovering.get(site);
    if (buffer) {
      buffer.push(payload);
      return;
    }
    const skip = this.#skip.get(site);
    const p = payload as unknown as SiteEventPayload | SitePresencePayload;
    if (skip && p.kind === 'event') {
      if (skip.delete(p.event.position)) return;
      this.#skip.delete(site);
    }
    this.#fanOut(site, payload);
  }

  #fanOut(site: string, payload: BusPayload): void {
    const set = this.#watchers.get(site);
    if (!set || set.size === 0) return;
    const p = payload as unknown as SiteEventPayload | SitePresencePayload;
    let message: RelayToBrowser;
    let position: string | undefined;
    if (p.kind === 'event') {
      if (p.event.site !== site) return; // never let one site's channel carry another's events
      message = siteEventMessage(p.event);
      position = p.event.position;
      this.#last.set(site, position);
      this.metrics.fanoutLag.observe(Math.max(0, this.clock.now() - p.receivedAt) / 1000);
    } else if (p.kind === 'presence') {
      if (p.site !== site) return;
      message = { type: 'presence', site, gateway: p.gateway, online: p.online, since: p.since } as PresenceMessage;
    } else {
      return;
    }
    const frames = new FrameCache(message);
    for (const conn of set) this.#deliver(conn, site, message, position, frames);
  }

  #deliver(
    conn: BrowserConn,
    site: string,
    message: RelayToBrowser,
    position: string | undefined,
    frames: FrameCache,
  ): void {
    // Authorisation is re-checked per delivery: the session's current sites, not those at subscribe time.
    if (!conn.isOpen || !conn.sites.has(site)) return;
    const sub = conn.subscriptions.get(site);
    if (!sub) return;
    if (sub.buffer) {
      if (sub.buffer.length >= this.maxBuffered) {
        conn.fail('slow_consumer', 'too many events arrived while catching up');
        return;
      }
      sub.buffer.push({ position, message, late: sub.late });
      return;
    }
    conn.sendFrame(frames.get(conn.codec));
  }
}
