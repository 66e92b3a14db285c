/**
 * In-memory EventLog: a ring buffer per site (count limit) trimmed by age on every append and read, a
 * bounded latest-state-per-subject snapshot, and per-gateway `seq` high-water marks for dedupe.
 *
 * Positions are `<epoch>-<n>`: `n` counts appends to the site from 1, the epoch is random per instance, so a
 * position handed out before a restart (history lost) never matches and the reader is told to resync.
 */
import { randomBytes } from 'node:crypto';
import type { SnapshotEntry } from '@scanrelay/protocol';
import type { Clock } from '../clock.js';
import type { BusPayload } from './bus.js';
import { PortError } from './errors.js';
import type {
  AppendPublish,
  AppendResult,
  EventLog,
  EventLogLimits,
  NewEvent,
  ReadResult,
  StoredEvent,
} from './event-log.js';
import { validateLimits, validateNewEvent } from './event-log-shared.js';
import { assertId, splitPosition } from './ids.js';

interface Slot {
  event: StoredEvent;
  n: number;
  storedAt: number;
}

/** Fixed-capacity ring of slots with consecutive `n`. */
class SiteHistory {
  readonly #slots: (Slot | undefined)[];
  #start = 0;
  #length = 0;
  /** Highest `n` appended so far (0: none). */
  head = 0;
  /** Highest `n` that was dropped by a limit (0: none): a reader at or after it has missed nothing. */
  trimmedThrough = 0;
  readonly snapshot = new Map<string, SnapshotEntry>();

  constructor(capacity: number) {
    this.#slots = new Array<Slot | undefined>(capacity);
  }

  push(slot: Slot): void {
    const capacity = this.#slots.length;
    if (this.#length === capacity) this.#dropOldest();
    this.#slots[(this.#start + this.#length) % capacity] = slot;
    this.#length++;
    this.head = slot.n;
  }

  trimOlderThan(cutoff: number): void {
    while (this.#length > 0) {
      const oldest = this.#slots[this.#start]!;
      if (oldest.storedAt >= cutoff) return;
      this.#dropOldest();
    }
  }

  /** Slots with n > after, at most `limit`. Caller guarantees `after` is within [trimmedThrough, head]. */
  after(after: number, limit: number): StoredEvent[] {
    const firstN = this.head - this.#length + 1;
    const skip = Math.max(0, after - firstN + 1);
    const out: StoredEvent[] = [];
    for (let i = skip; i < this.#length && out.length < limit; i++) {
      out.push(this.#slots[(this.#start + i) % this.#slots.length]!.event);
    }
    return out;
  }

  #dropOldest(): void {
    const oldest = this.#slots[this.#start]!;
    this.trimmedThrough = oldest.n;
    this.#slots[this.#start] = undefined;
    this.#start = (this.#start + 1) % this.#slots.length;
    this.#length--;
  }
}

export class MemoryEventLog implements EventLog {
  /** Random per instance: positions from another process (or another instance) never match. */
  readonly epoch: string;
  readonly #limits: EventLogLimits;
  readonly #clock: Clock;
  readonly #sites = new Map<string, SiteHistory>();
  readonly #lastSeq = new Map<string, number>();
  readonly #publish: ((channel: string, payload: BusPayload) => Promise<void>) | undefined;

  /** `publish` is the Bus used for `append(…, publish)` (a MemoryBus on the node's hub). */
  constructor(
    limits: EventLogLimits,
    clock: Clock,
    options: { epoch?: string; publish?: (channel: string, payload: BusPayload) => Promise<void> } = {},
  ) {
    validateLimits(limits);
    this.#limits = { ...limits };
    this.#clock = clock;
    this.epoch = options.epoch ?? randomBytes(6).toString('hex');
    this.#publish = options.publish;
  }

  async append(input: NewEvent, publish?: AppendPublish): Promise<AppendResult> {
    if (publish && publish.channel !== `site:${input.site}`) {
      throw new PortError('invalid_id', `append can only publish on site:${input.site}, not ${publish.channel}`);
    }
    const result = this.#append(input);
    if (publish && !result.duplicate) {
      if (!this.#publish) throw new PortError('unavailable', 'this memory event log was built without a bus');
      await this.#publish(publish.channel, publish.build(result.event));
    }
    return result;
  }

  #append(input: NewEvent): AppendResult {
    validateNewEvent(input);
    if (input.seq > 0) {
      const last = this.#lastSeq.get(input.gateway) ?? 0;
      if (input.seq <= last) return { duplicate: true, lastSeq: last };
      this.#lastSeq.set(input.gateway, input.seq);
    }
    const now = this.#clock.now();
    const site = this.#site(input.site);
    site.trimOlderThan(now - this.#limits.maxAgeMs);
    const n = site.head + 1;
    const event: StoredEvent = {
      site: input.site,
      gateway: input.gateway,
      seq: input.seq,
      kind: input.kind,
      ...(input.subject !== undefined ? { subject: input.subject } : {}),
      at: input.at,
      data: input.data,
      position: this.#position(n),
    };
    site.push({ event, n, storedAt: now });
    if (event.subject !== undefined) {
      // Re-insert so Map order is least-recently-updated first, then drop the oldest beyond the bound.
      site.snapshot.delete(event.subject);
      site.snapshot.set(event.subject, {
        subject: event.subject,
        gateway: event.gateway,
        seq: event.seq,
        position: event.position,
        kind: event.kind,
        at: event.at,
        data: event.data,
      });
      while (site.snapshot.size > this.#limits.maxSubjects) {
        site.snapshot.delete(site.snapshot.keys().next().value!);
      }
    }
    return { duplicate: false, event };
  }

  async lastSeq(gateway: string): Promise<number> {
    assertId(gateway, 'gateway');
    return this.#lastSeq.get(gateway) ?? 0;
  }

  async readSince(siteId: string, since: string, limit: number): Promise<ReadResult> {
    assertId(siteId, 'site');
    if (!Number.isInteger(limit) || limit < 1) throw new PortError('invalid_id', 'readSince limit must be ≥ 1');
    const site = this.#sites.get(siteId);
    const headN = site?.head ?? 0;
    const head = this.#position(headN);
    const parsed = splitPosition(since);
    if (!parsed || parsed.epoch !== this.epoch || !/^(0|[1-9][0-9]{0,15})$/.test(parsed.rest)) {
      return { events: [], gap: true, head };
    }
    const after = Number(parsed.rest);
    if (!site) return after === 0 ? { events: [], gap: false, head } : { events: [], gap: true, head };
    site.trimOlderThan(this.#clock.now() - this.#limits.maxAgeMs);
    // Past the head means a position we never handed out; before trimmedThrough means events were dropped.
    if (after > headN || after < site.trimmedThrough) return { events: [], gap: true, head };
    return { events: site.after(after, limit), gap: false, head };
  }

  async snapshot(siteId: string): Promise<{ head: string; entries: SnapshotEntry[] }> {
    assertId(siteId, 'site');
    const site = this.#sites.get(siteId);
    return { head: this.#position(site?.head ?? 0), entries: site ? [...site.snapshot.values()] : [] };
  }

  async close(): Promise<void> {}

  #site(id: string): SiteHistory {
    let site = this.#sites.get(id);
    if (!site) {
      site = new SiteHistory(this.#limits.maxEvents);
      this.#sites.set(id, site);
    }
    return site;
  }

  #position(n: number): string {
    return `${this.epoch}-${n}`;
  }
}
