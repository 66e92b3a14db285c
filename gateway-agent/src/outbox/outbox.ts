/**
 * The durable outbox: every event the gateway raises is numbered, written to disk (fdatasync) and only then
 * offered to the link; it leaves only when the relay acknowledges it (`event.ack {seq}` acknowledges
 * everything up to `seq`).
 *
 * ```
 *  emit(event) ──▶ seq = next ──▶ append to segment + fdatasync ──▶ unacked (memory) ──▶ link sends
 *                                                                      ▲                     │
 *                                         compaction deletes segments  └── ack(seq) ◀────────┘
 *                                         whose every event is acked
 * ```
 *
 * On disk (`<state>/outbox/`):
 * - `<first seq, 20 digits>.seg` — append-only segment files of journal records (see util/journal.ts), one
 *   event per line; a new segment starts once the current one passes `segmentBytes`.
 * - `acked.json` — `{ "acked": n }`, written atomically before any segment is deleted, so `seq` keeps
 *   increasing across restarts even when every segment has been compacted away.
 *
 * Bounds (unacknowledged events only): `maxEvents` and `maxBytes`. Policy when they fill — never silent loss:
 * - at `softLimit` (90 %) the status becomes `nearly_full`: the agent rejects new commands (`outbox_full`) so
 *   no new work is started, and logs an error;
 * - at 100 % the status is `full`: `append` throws `GatewayError('outbox_full')`, so the DICOM side refuses
 *   the operation that would have produced the event (the modality gets a failure status and retries later)
 *   instead of the event being dropped; logged at error level on every refusal.
 */

import { EventEmitter } from 'node:events';
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  encodeMessage,
  type GatewayEvent,
  type JsonObject,
  ProtocolError,
  validateMessage,
} from '@scanrelay/protocol';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { ensurePrivateDir, fsyncDir, writeFileAtomic } from '../util/durable.js';
import { AppendFile, encodeRecord, GroupCommit, recoverJournal } from '../util/journal.js';

/** An event as stored and sent: the protocol's gateway `event` without its `type`. */
export type OutboxEvent = Omit<GatewayEvent, 'type'>;

/** What a producer hands to `append`; the outbox assigns `seq`. */
export interface NewEvent {
  kind: string;
  subject?: string;
  at: number;
  data: JsonObject;
}

export type OutboxHealth = 'ok' | 'nearly_full' | 'full' | 'failed';

export interface OutboxStatus {
  health: OutboxHealth;
  /** Unacknowledged events held. */
  events: number;
  /** Bytes of unacknowledged events held (as stored). */
  bytes: number;
  maxEvents: number;
  maxBytes: number;
  /** Highest seq acknowledged by the relay. */
  acked: number;
  /** Highest seq assigned and stored. */
  last: number;
}

export interface OutboxOptions {
  /** Directory of the outbox (created 0700). */
  dir: string;
  logger: Logger;
  /** Most unacknowledged events held (default 100 000). */
  maxEvents?: number;
  /** Most bytes of unacknowledged events held (default 64 MiB; they are also kept in memory for sending). */
  maxBytes?: number;
  /** Fraction of either bound at which new commands are refused (default 0.9). */
  softLimit?: number;
  /** Size at which a new segment file is started (default 8 MiB). */
  segmentBytes?: number;
  /** Largest encoded event frame the relay accepts (default 64 KiB); bigger events are refused at append. */
  maxMessageBytes?: number;
}

interface Stored {
  event: OutboxEvent;
  bytes: number;
}

interface Segment {
  firstSeq: number;
  lastSeq: number;
  file: string;
}

const SEGMENT_RE = /^(\d{20})\.seg$/;

/** Events emitted: `appended` (an event became durable and may be sent), `health` (status changed). */
export interface OutboxEvents {
  appended: [OutboxEvent];
  health: [OutboxHealth];
}

export class Outbox extends EventEmitter<OutboxEvents> {
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly softLimit: number;
  private readonly segmentBytes: number;
  private readonly maxMessageBytes: number;
  private readonly log: Logger;

  /** Unacked, durable events in seq order; `head` is the index of the first live one. */
  private unacked: Stored[] = [];
  private head = 0;
  private heldBytes = 0;
  /** Bytes of events accepted by append but not yet durable (count against the bound). */
  private pendingBytes = 0;
  private pendingEvents = 0;
  private nextSeq: number;
  private ackedSeq: number;
  private persistedAcked: number;
  private segments: Segment[];
  private current: AppendFile | undefined;
  private currentSegment: Segment | undefined;
  private readonly commit: GroupCommit<Stored>;
  private health: OutboxHealth = 'ok';
  private failure: unknown;
  private compacting: Promise<void> | undefined;
  private closed = false;

  private constructor(
    private readonly dir: string,
    opts: OutboxOptions,
    state: { acked: number; last: number; segments: Segment[]; unacked: Stored[] },
  ) {
    super();
    this.maxEvents = opts.maxEvents ?? 100_000;
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
    this.softLimit = opts.softLimit ?? 0.9;
    this.segmentBytes = opts.segmentBytes ?? 8 * 1024 * 1024;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.log = opts.logger;
    this.ackedSeq = state.acked;
    this.persistedAcked = state.acked;
    this.nextSeq = Math.max(state.acked, state.last) + 1;
    this.segments = state.segments;
    this.unacked = state.unacked;
    this.heldBytes = state.unacked.reduce((n, s) => n + s.bytes, 0);
    this.commit = new GroupCommit((batch) => this.flush(batch));
    this.health = this.computeHealth();
  }

  /**
   * Open the outbox in `opts.dir`, recovering from a crash: torn last writes are cut off, events already
   * acknowledged are skipped, and `seq` continues after the highest one ever stored.
   */
  static async open(opts: OutboxOptions): Promise<Outbox> {
    await ensurePrivateDir(opts.dir);
    const acked = await readAcked(opts.dir);
    const names = (await readdir(opts.dir)).filter((n) => SEGMENT_RE.test(n)).sort();
    const segments: Segment[] = [];
    const unacked: Stored[] = [];
    let last = acked;
    for (const name of names) {
      const file = join(opts.dir, name);
      const result = await recoverJournal(file);
      if (result.tornBytes > 0)
        opts.logger.warn(
          { file, tornBytes: result.tornBytes },
          'outbox: cut off a torn last write (the agent stopped mid-write); no acknowledged event was affected',
        );
      if (result.corruptLines > 0)
        opts.logger.error(
          { file, corruptLines: result.corruptLines },
          'outbox: skipped corrupt records inside a segment (disk damage?); the events they held are lost',
        );
      if (result.records.length === 0) {
        // Created just before a crash, before its first record reached disk: nothing to keep.
        await unlink(file);
        continue;
      }
      let segFirst = 0;
      let segLast = 0;
      for (const record of result.records) {
        const event = record as OutboxEvent;
        if (!Number.isSafeInteger(event?.seq) || event.seq <= last) {
          if (Number.isSafeInteger(event?.seq) && event.seq <= acked) {
            // Already acknowledged before the crash; kept only until compaction.
            segFirst ||= event.seq;
            segLast = Math.max(segLast, event.seq);
            continue;
          }
          opts.logger.error({ file }, 'outbox: skipped a record out of sequence order');
          continue;
        }
        segFirst ||= event.seq;
        segLast = event.seq;
        last = event.seq;
        unacked.push({ event, bytes: Buffer.byteLength(encodeRecord(event)) });
      }
      segments.push({ firstSeq: segFirst || Number(SEGMENT_RE.exec(name)![1]), lastSeq: segLast, file });
    }
    const outbox = new Outbox(opts.dir, opts, { acked, last, segments, unacked });
    if (unacked.length > 0)
      opts.logger.info({ pending: unacked.length, acked, last }, 'outbox: resuming with unacknowledged events');
    return outbox;
  }

  /** Current size, bounds and health (also exposed by the agent's status). */
  status(): OutboxStatus {
    return {
      health: this.health,
      events: this.unacked.length - this.head,
      bytes: this.heldBytes,
      maxEvents: this.maxEvents,
      maxBytes: this.maxBytes,
      acked: this.ackedSeq,
      last: this.nextSeq - 1,
    };
  }

  /** True when new work (commands) should be refused: the outbox is at or past its soft limit, or failed. */
  refusesNewWork(): boolean {
    return this.health !== 'ok';
  }

  get acked(): number {
    return this.ackedSeq;
  }

  /**
   * Number, store and fdatasync an event. Resolves with the stored event once it is durable (it is then
   * offered to the link through the `appended` event). Throws `GatewayError` `outbox_full` at the hard bound,
   * `outbox_invalid_event` for an event the relay would refuse, `outbox_io` after a disk failure.
   */
  async append(input: NewEvent): Promise<OutboxEvent> {
    if (this.closed) throw new GatewayError('outbox_io', 'the outbox is closed (the agent is stopping)');
    if (this.failure !== undefined)
      throw new GatewayError('outbox_io', 'the outbox hit a disk error earlier; fix the disk and restart the agent', {
        cause: this.failure,
      });
    const draft: OutboxEvent = { seq: this.nextSeq, kind: input.kind, at: input.at, data: input.data };
    if (input.subject !== undefined) draft.subject = input.subject;
    this.validate(draft);
    const bytes = Buffer.byteLength(encodeRecord(draft));
    const events = this.unacked.length - this.head + this.pendingEvents;
    if (events + 1 > this.maxEvents || this.heldBytes + this.pendingBytes + bytes > this.maxBytes) {
      this.setHealth('full');
      this.log.error(
        { kind: input.kind, events, bytes: this.heldBytes, maxEvents: this.maxEvents, maxBytes: this.maxBytes },
        'outbox full: event refused (not lost: the operation that raised it is refused). The relay has not ' +
          'acknowledged events for a long time: check the link to the relay',
      );
      throw new GatewayError('outbox_full', 'the outbox is full: the relay has not acknowledged events for too long');
    }
    this.nextSeq++;
    this.pendingBytes += bytes;
    this.pendingEvents++;
    const stored: Stored = { event: draft, bytes };
    try {
      await this.commit.submit(stored);
    } finally {
      this.pendingBytes -= bytes;
      this.pendingEvents--;
    }
    this.setHealth(this.computeHealth());
    this.emit('appended', draft);
    return draft;
  }

  /** Unacknowledged events with `seq > after`, in order, at most `limit`. */
  pendingAfter(after: number, limit: number): OutboxEvent[] {
    const out: OutboxEvent[] = [];
    // Binary search for the first seq > after.
    let lo = this.head;
    let hi = this.unacked.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.unacked[mid]!.event.seq <= after) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.unacked.length && out.length < limit; i++) out.push(this.unacked[i]!.event);
    return out;
  }

  /** The relay holds everything up to `seq` durably: drop those events; compact fully acked segments. */
  ack(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq <= this.ackedSeq) return;
    const last = this.nextSeq - 1;
    if (seq > last) {
      // The relay claims events we never made (e.g. the state dir was restored from an old backup).
      // Continue numbering after its seq so that nothing new is mistaken for an old event.
      this.log.warn(
        { relayAcked: seq, last },
        'outbox: the relay acknowledges events beyond the last one stored here; continuing numbering after it',
      );
      this.nextSeq = seq + 1;
    }
    this.ackedSeq = seq;
    while (this.head < this.unacked.length && this.unacked[this.head]!.event.seq <= seq) {
      this.heldBytes -= this.unacked[this.head]!.bytes;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.unacked.length) {
      this.unacked = this.unacked.slice(this.head);
      this.head = 0;
    }
    this.setHealth(this.computeHealth());
    this.scheduleCompaction();
  }

  /** Wait for pending writes and compaction, persist the acked mark, close the segment file. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.commit.drain();
    await this.compacting;
    this.closed = true;
    if (this.ackedSeq > this.persistedAcked && this.failure === undefined)
      await writeFileAtomic(join(this.dir, 'acked.json'), JSON.stringify({ acked: this.ackedSeq }));
    await this.current?.close();
    this.current = undefined;
  }

  private validate(event: OutboxEvent): void {
    const message = { type: 'event', ...event };
    try {
      validateMessage('gateway→relay', message);
    } catch (err) {
      const field = err instanceof ProtocolError ? err.message : 'invalid';
      throw new GatewayError('outbox_invalid_event', `event ${event.kind} would be refused by the relay: ${field}`);
    }
    const size = Buffer.byteLength(encodeMessage('json', message) as string);
    if (size > this.maxMessageBytes)
      throw new GatewayError(
        'outbox_invalid_event',
        `event ${event.kind} is ${size} bytes, more than the ${this.maxMessageBytes}-byte frame limit`,
      );
  }

  private async flush(batch: Stored[]): Promise<void> {
    // After a failed write nothing more is written: later events must not land on disk after a hole.
    if (this.failure !== undefined)
      throw new GatewayError('outbox_io', 'the outbox hit a disk error earlier; fix the disk and restart the agent');
    try {
      const text = batch.map((s) => encodeRecord(s.event)).join('');
      const first = batch[0]!.event.seq;
      if (!this.current || (this.current.size > 0 && this.current.size + text.length > this.segmentBytes))
        await this.startSegment(first);
      await this.current!.appendDurably(text);
      this.currentSegment!.lastSeq = batch[batch.length - 1]!.event.seq;
      if (this.currentSegment!.firstSeq === 0) this.currentSegment!.firstSeq = first;
      for (const s of batch) {
        this.unacked.push(s);
        this.heldBytes += s.bytes;
      }
    } catch (err) {
      this.failure ??= err;
      this.setHealth('failed');
      this.log.fatal(
        { err },
        'outbox: writing an event to disk failed; events can no longer be stored. Check free space and the ' +
          'state directory, then restart the agent',
      );
      throw new GatewayError('outbox_io', 'could not write the event to disk', { cause: err });
    }
  }

  private async startSegment(firstSeq: number): Promise<void> {
    await this.current?.close();
    const file = join(this.dir, `${String(firstSeq).padStart(20, '0')}.seg`);
    // A leftover segment with the same name holds only records that recovery found out of order or acked.
    this.current = await AppendFile.open(file);
    await fsyncDir(this.dir);
    this.currentSegment = { firstSeq, lastSeq: 0, file };
    this.segments.push(this.currentSegment);
  }

  private scheduleCompaction(): void {
    if (this.compacting || this.closed) return;
    const done = this.segments.filter((s) => s !== this.currentSegment && s.lastSeq <= this.ackedSeq);
    if (done.length === 0) return;
    this.compacting = (async () => {
      try {
        const acked = this.ackedSeq;
        // Persist the acked mark first: it is what keeps seq increasing once these segments are gone.
        await writeFileAtomic(join(this.dir, 'acked.json'), JSON.stringify({ acked }));
        this.persistedAcked = acked;
        for (const seg of done) {
          await unlink(seg.file).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw err;
          });
          this.segments = this.segments.filter((s) => s !== seg);
        }
        await fsyncDir(this.dir);
      } catch (err) {
        this.log.error({ err }, 'outbox: compaction failed; will retry on the next acknowledgement');
      } finally {
        this.compacting = undefined;
      }
    })();
  }

  private computeHealth(): OutboxHealth {
    if (this.failure !== undefined) return 'failed';
    const events = this.unacked.length - this.head;
    if (events >= this.maxEvents || this.heldBytes >= this.maxBytes) return 'full';
    if (events >= this.maxEvents * this.softLimit || this.heldBytes >= this.maxBytes * this.softLimit)
      return 'nearly_full';
    return 'ok';
  }

  private setHealth(next: OutboxHealth): void {
    if (next === this.health) return;
    const prev = this.health;
    this.health = next;
    if (next === 'ok') this.log.info({ prev }, 'outbox: back to normal; new commands are accepted again');
    else
      this.log.error(
        this.status(),
        'outbox: filling up because the relay is not acknowledging events; new commands are refused ' +
          '(outbox_full) until it drains. Check the link to the relay',
      );
    this.emit('health', next);
  }
}

async function readAcked(dir: string): Promise<number> {
  try {
    const parsed = JSON.parse(await readFile(join(dir, 'acked.json'), 'utf8')) as { acked?: unknown };
    return Number.isSafeInteger(parsed.acked) && (parsed.acked as number) >= 0 ? (parsed.acked as number) : 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    // acked.json is replaced atomically, so a bad one means outside interference; seq continuity then rests on
    // the segments (which are only deleted after acked.json was written).
    return 0;
  }
}
