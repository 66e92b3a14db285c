import { appendFile, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { Outbox } from '../../src/outbox/outbox.js';
import { bundle, type Child, cleanupBundles, startChild } from '../helpers/child.js';

const logger = silentLogger();
const ev = (n: number) => ({
  kind: 'images.received',
  subject: `ACC${n}`,
  at: 1_700_000_000_000 + n,
  data: { count: n },
});

let dir: string;
let children: Child[] = [];
let writer: string;

beforeAll(async () => {
  writer = await bundle('gateway-agent/test/helpers/durable-writer.ts');
});
afterAll(async () => {
  await cleanupBundles();
});

afterEach(async () => {
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  children = [];
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function segmentsOf(d: string): Promise<string[]> {
  return (await readdir(d)).filter((n) => n.endsWith('.seg')).sort();
}

describe('outbox', () => {
  it('numbers events from 1, keeps them until acked, and resumes numbering after a restart', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outbox-'));
    const a = await Outbox.open({ dir, logger });
    for (let i = 1; i <= 5; i++) expect((await a.append(ev(i))).seq).toBe(i);
    expect(a.pendingAfter(0, 100).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(a.pendingAfter(3, 1).map((e) => e.seq)).toEqual([4]);
    a.ack(2);
    expect(a.pendingAfter(0, 100).map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(a.status()).toMatchObject({ events: 3, acked: 2, last: 5, health: 'ok' });
    await a.close();

    const b = await Outbox.open({ dir, logger });
    expect(b.pendingAfter(0, 100)).toEqual([3, 4, 5].map((n) => ({ seq: n, ...ev(n) })));
    expect((await b.append(ev(6))).seq).toBe(6);
    await b.close();
  });

  it('compacts fully acknowledged segments and never reuses a seq once they are gone', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outbox-'));
    const a = await Outbox.open({ dir, logger, segmentBytes: 512 });
    for (let i = 1; i <= 40; i++) await a.append(ev(i));
    const before = await segmentsOf(dir);
    expect(before.length).toBeGreaterThan(3);
    a.ack(40);
    await a.close();
    const after = await segmentsOf(dir);
    expect(after.length).toBeLessThanOrEqual(1);
    expect(JSON.parse(await readFile(join(dir, 'acked.json'), 'utf8'))).toEqual({ acked: 40 });
    const b = await Outbox.open({ dir, logger, segmentBytes: 512 });
    expect(b.pendingAfter(0, 100)).toEqual([]);
    expect((await b.append(ev(41))).seq).toBe(41);
    await b.close();
  });

  it('cuts off a torn last write (partial line, garbage tail) instead of failing start-up', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outbox-'));
    const a = await Outbox.open({ dir, logger });
    for (let i = 1; i <= 3; i++) await a.append(ev(i));
    await a.close();
    const [seg] = await segmentsOf(dir);
    await appendFile(join(dir, seg!), '1234abcd {"seq":4,"kind":"images.rec');
    const b = await Outbox.open({ dir, logger });
    expect(b.pendingAfter(0, 100).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect((await b.append(ev(4))).seq).toBe(4);
    await b.close();
    // A complete line with a bad checksum at the end is a torn write too.
    await appendFile(join(dir, (await segmentsOf(dir)).at(-1)!), '00000000 {"seq":5}\n');
    const c = await Outbox.open({ dir, logger });
    expect(c.pendingAfter(0, 100).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    await c.close();
  });

  it('refuses new work at the soft limit and refuses events at the hard limit, loudly, never dropping one', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outbox-'));
    const a = await Outbox.open({ dir, logger, maxEvents: 10, softLimit: 0.8 });
    const health: string[] = [];
    a.on('health', (h) => health.push(h));
    for (let i = 1; i <= 8; i++) await a.append(ev(i));
    expect(a.refusesNewWork()).toBe(true);
    expect(a.status().health).toBe('nearly_full');
    await a.append(ev(9));
    await a.append(ev(10));
    await expect(a.append(ev(11))).rejects.toMatchObject({ code: 'outbox_full' });
    expect(a.status()).toMatchObject({ health: 'full', events: 10, last: 10 });
    a.ack(10);
    expect(a.refusesNewWork()).toBe(false);
    expect((await a.append(ev(11))).seq).toBe(11);
    expect(health).toEqual(['nearly_full', 'full', 'ok']);
    await a.close();
  });

  it('refuses an event the relay would refuse (bad kind, oversized data) at append time', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outbox-'));
    const a = await Outbox.open({ dir, logger });
    await expect(a.append({ ...ev(1), kind: 'Bad Kind' })).rejects.toMatchObject({ code: 'outbox_invalid_event' });
    const big = { ...ev(1), data: { blob: Array.from({ length: 40 }, () => 'x'.repeat(4000)) } };
    await expect(a.append(big)).rejects.toMatchObject({ code: 'outbox_invalid_event' });
    expect((await a.append(ev(1))).seq).toBe(1);
    await a.close();
  });

  it('a disk failure is loud and final: the event is refused, later ones too, nothing written after a hole', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outbox-'));
    const a = await Outbox.open({ dir, logger });
    await a.append(ev(1));
    await a.close();
    const b = await Outbox.open({ dir, logger });
    // The next segment file "is" a full disk: writes to /dev/full fail with ENOSPC.
    await symlink('/dev/full', join(dir, `${String(2).padStart(20, '0')}.seg`));
    await expect(b.append(ev(2))).rejects.toMatchObject({ code: 'outbox_io' });
    expect(b.status().health).toBe('failed');
    expect(b.refusesNewWork()).toBe(true);
    await expect(b.append(ev(3))).rejects.toMatchObject({ code: 'outbox_io' });
    expect(b.pendingAfter(0, 10).map((e) => e.seq)).toEqual([1]);
    await b.close();
  });

  it('the relay acknowledging beyond the last local seq moves numbering past it', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outbox-'));
    const a = await Outbox.open({ dir, logger });
    await a.append(ev(1));
    a.ack(50);
    expect((await a.append(ev(2))).seq).toBe(51);
    await a.close();
  });

  it('survives kill -9 mid-write: every event confirmed durable is there, in order, none duplicated', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outbox-'));
    for (let round = 0; round < 3; round++) {
      const child = startChild(writer, ['outbox', dir, '16']);
      children.push(child);
      const ready = await child.waitFor((l) => l.startsWith('ready'));
      const startLast = Number(ready.split(' ')[1]);
      // Kill once it is well into writing (segment rolls included).
      await child.waitFor((l) => l === `durable ${startLast + 300}`);
      child.kill('SIGKILL');
      expect(await child.exited).toBe('SIGKILL');
      const confirmed = child.lines.filter((l) => l.startsWith('durable ')).map((l) => Number(l.slice(8)));
      const outbox = await Outbox.open({ dir, logger, segmentBytes: 4096 });
      const seqs = outbox.pendingAfter(0, 1_000_000).map((e) => e.seq);
      // Contiguous 1..last: nothing lost, nothing duplicated, order kept.
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
      expect(seqs.length).toBeGreaterThanOrEqual(Math.max(...confirmed));
      await outbox.close();
    }
  });

  it('starts cleanly with a segment file created just before a crash (empty)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outbox-'));
    const a = await Outbox.open({ dir, logger });
    await a.append(ev(1));
    await a.close();
    await writeFile(join(dir, `${String(2).padStart(20, '0')}.seg`), '');
    const b = await Outbox.open({ dir, logger });
    expect((await b.append(ev(2))).seq).toBe(2);
    expect(b.pendingAfter(0, 10).map((e) => e.seq)).toEqual([1, 2]);
    await b.close();
  });
});
