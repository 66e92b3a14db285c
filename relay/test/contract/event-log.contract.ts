/**
 * EventLog contract: every behaviour documented in relay/src/ports/event-log.ts, run against each
 * implementation (event-log.test.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Bus } from '../../src/ports/bus.js';
import type { EventLog, EventLogLimits, NewEvent, StoredEvent } from '../../src/ports/event-log.js';
import { Inbox } from './bus.contract.js';
import type { ManualClock } from './manual-clock.js';

export interface EventLogFixture {
  log: EventLog;
  clock: ManualClock;
  /** A new EventLog on the same backend after history was lost (memory: new instance; Redis: flushed). */
  loseHistory(): Promise<EventLog>;
  /** A new EventLog on the same backend with history intact (memory: undefined, it cannot). */
  reopen?: () => Promise<EventLog>;
  /** A Bus on the same backend, to observe what `append(…, publish)` publishes. */
  bus: Bus;
  close(): Promise<void>;
}

export type EventLogFactory = (limits: EventLogLimits) => Promise<EventLogFixture>;

const LIMITS: EventLogLimits = { maxEvents: 100, maxAgeMs: 60_000, maxSubjects: 50 };

let counter = 0;
/** Fresh site and gateway ids per test, so suites sharing one Redis never see each other's data. */
function ids(): { site: string; gw: string; gw2: string } {
  counter++;
  const tag = `${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
  return { site: `site-${tag}`, gw: `gw-${tag}`, gw2: `gw2-${tag}` };
}

function ev(site: string, gateway: string, seq: number, extra: Partial<NewEvent> = {}): NewEvent {
  return { site, gateway, seq, kind: 'images.received', at: 1_700_000_000_000 + seq, data: { seq }, ...extra };
}

export function eventLogContract(name: string, factory: EventLogFactory): void {
  describe(`EventLog contract: ${name}`, () => {
    const open: EventLogFixture[] = [];
    async function make(limits: EventLogLimits = LIMITS): Promise<EventLogFixture> {
      const f = await factory(limits);
      open.push(f);
      return f;
    }
    afterEach(async () => {
      await Promise.all(open.splice(0).map((f) => f.close()));
    });

    it('appends events with increasing positions and reads them back in order from the empty head', async () => {
      const { log } = await make();
      const { site, gw } = ids();
      const empty = await log.snapshot(site);
      const stored = [];
      for (let seq = 1; seq <= 5; seq++) {
        const r = await log.append(ev(site, gw, seq, { subject: 'ACC1' }));
        expect(r.duplicate).toBe(false);
        if (!r.duplicate) stored.push(r.event);
      }
      expect(new Set(stored.map((e) => e.position)).size).toBe(5);
      const read = await log.readSince(site, empty.head, 100);
      expect(read.gap).toBe(false);
      expect(read.events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(read.events[2]).toEqual(stored[2]);
      expect(read.events[0]).toMatchObject({
        site,
        gateway: gw,
        kind: 'images.received',
        subject: 'ACC1',
        data: { seq: 1 },
      });
      expect(read.head).toBe(stored[4]!.position);
      const middle = await log.readSince(site, stored[1]!.position, 100);
      expect(middle.events.map((e) => e.seq)).toEqual([3, 4, 5]);
      const atHead = await log.readSince(site, read.head, 100);
      expect(atHead).toEqual({ events: [], gap: false, head: read.head });
    });

    it('honours the read limit, oldest first, and reading on from the last one gets the rest', async () => {
      const { log } = await make();
      const { site, gw } = ids();
      const start = (await log.snapshot(site)).head;
      for (let seq = 1; seq <= 7; seq++) await log.append(ev(site, gw, seq));
      const first = await log.readSince(site, start, 3);
      expect(first.events.map((e) => e.seq)).toEqual([1, 2, 3]);
      const rest = await log.readSince(site, first.events[2]!.position, 100);
      expect(rest.events.map((e) => e.seq)).toEqual([4, 5, 6, 7]);
    });

    it('refuses a gateway seq not above its high-water mark as a duplicate, and tracks lastSeq per gateway', async () => {
      const { log } = await make();
      const { site, gw, gw2 } = ids();
      expect(await log.lastSeq(gw)).toBe(0);
      await log.append(ev(site, gw, 1));
      await log.append(ev(site, gw, 2));
      expect(await log.append(ev(site, gw, 2))).toEqual({ duplicate: true, lastSeq: 2 });
      expect(await log.append(ev(site, gw, 1))).toEqual({ duplicate: true, lastSeq: 2 });
      expect((await log.append(ev(site, gw2, 1))).duplicate).toBe(false);
      expect((await log.append(ev(site, gw, 10))).duplicate).toBe(false);
      expect(await log.lastSeq(gw)).toBe(10);
      expect(await log.lastSeq(gw2)).toBe(1);
    });

    it('always appends relay events (seq 0) and does not let them move lastSeq', async () => {
      const { log } = await make();
      const { site, gw } = ids();
      const start = (await log.snapshot(site)).head;
      await log.append(ev(site, gw, 3));
      for (let i = 0; i < 3; i++) {
        expect((await log.append(ev(site, gw, 0, { kind: 'command.status' }))).duplicate).toBe(false);
      }
      expect(await log.lastSeq(gw)).toBe(3);
      expect((await log.readSince(site, start, 100)).events.map((e) => e.seq)).toEqual([3, 0, 0, 0]);
    });

    it('stores exactly one of N concurrent appends of the same (gateway, seq)', async () => {
      const { log } = await make();
      const { site, gw } = ids();
      const start = (await log.snapshot(site)).head;
      const results = await Promise.all(Array.from({ length: 20 }, () => log.append(ev(site, gw, 1))));
      expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
      const concurrentSeqs = await Promise.all(Array.from({ length: 20 }, (_, i) => log.append(ev(site, gw, i + 2))));
      expect(concurrentSeqs.filter((r) => !r.duplicate).length).toBeGreaterThanOrEqual(1);
      const read = await log.readSince(site, start, 100);
      const seqs = read.events.map((e) => e.seq);
      expect(seqs[0]).toBe(1);
      // Whatever interleaving happened, what was stored is strictly increasing: no duplicates, no reordering.
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThan(seqs[i - 1]!);
    });

    it('keeps sites apart', async () => {
      const { log } = await make();
      const a = ids();
      const b = ids();
      const startA = (await log.snapshot(a.site)).head;
      const startB = (await log.snapshot(b.site)).head;
      await log.append(ev(a.site, a.gw, 1));
      await log.append(ev(b.site, b.gw, 1));
      await log.append(ev(a.site, a.gw, 2));
      expect((await log.readSince(a.site, startA, 10)).events.map((e) => e.gateway)).toEqual([a.gw, a.gw]);
      expect((await log.readSince(b.site, startB, 10)).events.map((e) => e.gateway)).toEqual([b.gw]);
    });

    it('drops the oldest events past maxEvents and reports a gap only to readers who missed some', async () => {
      const { log } = await make({ ...LIMITS, maxEvents: 5 });
      const { site, gw } = ids();
      const start = (await log.snapshot(site)).head;
      const positions: string[] = [];
      for (let seq = 1; seq <= 8; seq++) {
        const r = await log.append(ev(site, gw, seq));
        if (!r.duplicate) positions.push(r.event.position);
      }
      expect(await log.readSince(site, start, 100)).toMatchObject({ events: [], gap: true });
      expect((await log.readSince(site, positions[0]!, 100)).gap).toBe(true);
      // Events 1–3 were dropped; a reader who had seen 3 missed nothing.
      const fromThree = await log.readSince(site, positions[2]!, 100);
      expect(fromThree.gap).toBe(false);
      expect(fromThree.events.map((e) => e.seq)).toEqual([4, 5, 6, 7, 8]);
      expect(fromThree.head).toBe(positions[7]);
    });

    it('drops events older than maxAgeMs (by the injected clock)', async () => {
      const fx = await make({ ...LIMITS, maxAgeMs: 10_000 });
      const { log, clock } = fx;
      const { site, gw } = ids();
      const start = (await log.snapshot(site)).head;
      const old = await log.append(ev(site, gw, 1));
      clock.advance(6_000);
      const mid = await log.append(ev(site, gw, 2));
      clock.advance(6_000);
      await log.append(ev(site, gw, 3));
      if (old.duplicate || mid.duplicate) throw new Error('unexpected duplicate');
      expect((await log.readSince(site, start, 100)).gap).toBe(true);
      const fromOld = await log.readSince(site, old.event.position, 100);
      expect(fromOld.gap).toBe(false);
      expect(fromOld.events.map((e) => e.seq)).toEqual([2, 3]);
      clock.advance(6_000);
      expect((await log.readSince(site, old.event.position, 100)).gap).toBe(true);
      expect((await log.readSince(site, mid.event.position, 100)).events.map((e) => e.seq)).toEqual([3]);
    });

    it('reports a gap for a position from another epoch, a malformed one, or one past the head', async () => {
      const { log } = await make();
      const { site, gw } = ids();
      const r = await log.append(ev(site, gw, 1));
      if (r.duplicate) throw new Error('unexpected duplicate');
      const head = r.event.position;
      const dash = head.indexOf('-');
      const foreign = `zz${head.slice(0, dash)}${head.slice(dash)}`;
      for (const since of [foreign, 'garbage', '', '-', `${head.slice(0, dash)}-999999999999`]) {
        const read = await log.readSince(site, since, 10);
        expect(read, since).toEqual({ events: [], gap: true, head });
      }
    });

    it('changes epoch when history is lost, so old positions resync', async () => {
      const fx = await make();
      const { site, gw } = ids();
      const r = await fx.log.append(ev(site, gw, 1));
      if (r.duplicate) throw new Error('unexpected duplicate');
      const fresh = await fx.loseHistory();
      const read = await fresh.readSince(site, r.event.position, 10);
      expect(read.gap).toBe(true);
      expect(read.events).toEqual([]);
      const again = await fresh.append(ev(site, gw, 1));
      expect(again.duplicate).toBe(false);
      if (!again.duplicate) expect(again.event.position).not.toBe(r.event.position);
    });

    it('keeps the latest state per subject in the snapshot, bounded by maxSubjects (least recently updated dropped)', async () => {
      const { log } = await make({ ...LIMITS, maxSubjects: 3 });
      const { site, gw } = ids();
      await log.append(ev(site, gw, 1, { subject: 'A', kind: 'worklist.added' }));
      await log.append(ev(site, gw, 2, { subject: 'B', kind: 'worklist.added' }));
      await log.append(ev(site, gw, 3, { subject: 'A', kind: 'procedure.started' }));
      await log.append(ev(site, gw, 4));
      let snap = await log.snapshot(site);
      expect(snap.entries.map((e) => [e.subject, e.kind, e.seq]).sort()).toEqual([
        ['A', 'procedure.started', 3],
        ['B', 'worklist.added', 2],
      ]);
      await log.append(ev(site, gw, 5, { subject: 'C' }));
      const last = await log.append(ev(site, gw, 6, { subject: 'D' }));
      snap = await log.snapshot(site);
      expect(snap.entries.map((e) => e.subject).sort()).toEqual(['A', 'C', 'D']);
      if (last.duplicate) throw new Error('unexpected duplicate');
      expect(snap.head).toBe(last.event.position);
      const d = snap.entries.find((e) => e.subject === 'D')!;
      expect(d).toEqual({
        subject: 'D',
        gateway: gw,
        seq: 6,
        position: last.event.position,
        kind: 'images.received',
        at: 1_700_000_000_006,
        data: { seq: 6 },
      });
    });

    it('keeps the snapshot when the history behind it is trimmed', async () => {
      const { log } = await make({ ...LIMITS, maxEvents: 2 });
      const { site, gw } = ids();
      await log.append(ev(site, gw, 1, { subject: 'A' }));
      for (let seq = 2; seq <= 5; seq++) await log.append(ev(site, gw, seq));
      expect((await log.snapshot(site)).entries.map((e) => e.subject)).toEqual(['A']);
    });

    it('refuses ids that are not protocol ids before they reach the backend', async () => {
      const { log } = await make();
      const { site, gw } = ids();
      for (const bad of ['', 'UPPER', '{hash}', 'a*', '-x', 'x'.repeat(65), '__proto__', 'site:1']) {
        await expect(log.append(ev(bad, gw, 1))).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(log.append(ev(site, bad, 1))).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(log.readSince(bad, 'x-1', 1)).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(log.snapshot(bad)).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(log.lastSeq(bad)).rejects.toMatchObject({ code: 'invalid_id' });
      }
    });

    it('publishes the stored event with its real position as part of the append, and nothing for a duplicate', async () => {
      const { log, bus } = await make();
      const { site, gw } = ids();
      const inbox = new Inbox();
      await bus.subscribe(`site:${site}`, inbox.handler);
      const publish = {
        channel: `site:${site}`,
        build: (event: StoredEvent) => ({ kind: 'event', event, receivedAt: 42 }),
      };
      const first = await log.append(ev(site, gw, 1, { subject: 'S' }), publish);
      await log.append(ev(site, gw, 1), publish);
      const second = await log.append(ev(site, gw, 2), publish);
      await inbox.waitFor(2);
      if (first.duplicate || second.duplicate) throw new Error('unexpected duplicate');
      expect(inbox.items).toEqual([
        { kind: 'event', event: first.event, receivedAt: 42 },
        { kind: 'event', event: second.event, receivedAt: 42 },
      ]);
      await expect(log.append(ev(site, gw, 3), { ...publish, channel: 'site:other' })).rejects.toMatchObject({
        code: 'invalid_id',
      });
      expect(await log.lastSeq(gw)).toBe(2);
    });

    it('round-trips nested data and an absent subject exactly', async () => {
      const { log } = await make();
      const { site, gw } = ids();
      const start = (await log.snapshot(site)).head;
      const data = { a: [1, 'two', null, true, { b: { c: 1.5 } }], s: 'é☃' };
      await log.append(ev(site, gw, 1, { data }));
      const [e] = (await log.readSince(site, start, 1)).events;
      expect(e!.data).toEqual(data);
      expect('subject' in e!).toBe(false);
    });
  });
}
