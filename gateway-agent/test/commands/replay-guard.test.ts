import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReplayGuard } from '../../src/commands/replay-guard.js';
import { silentLogger } from '../../src/log.js';
import { bundle, type Child, cleanupBundles, startChild } from '../helpers/child.js';

const logger = silentLogger();
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

describe('replay guard', () => {
  it('claims a jti once; a second claim, concurrent or later or after a restart, is replayed', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-guard-'));
    let now = 1_000_000;
    const g = await ReplayGuard.open({ dir, logger, now: () => now });
    const [a, b] = await Promise.all([g.claim('j1', now + 60_000), g.claim('j1', now + 60_000)]);
    expect([a, b].sort()).toEqual(['claimed', 'replayed']);
    expect(await g.claim('j1', now + 60_000)).toBe('replayed');
    await g.close();
    const h = await ReplayGuard.open({ dir, logger, now: () => now });
    expect(await h.claim('j1', now + 60_000)).toBe('replayed');
    // After its expiry the entry is pruned (the verifier refuses the token itself by then).
    now += 61_000;
    expect(h.has('j1')).toBe(false);
    await h.close();
    const k = await ReplayGuard.open({ dir, logger, now: () => now });
    expect(k.size).toBe(0);
    await k.close();
  });

  it('is bounded: past maxEntries live entries it fails closed (never forgets a live jti)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-guard-'));
    const now = 5_000_000;
    const g = await ReplayGuard.open({ dir, logger, maxEntries: 3, now: () => now });
    for (const j of ['a', 'b', 'c']) expect(await g.claim(j, now + 1000)).toBe('claimed');
    await expect(g.claim('d', now + 1000)).rejects.toMatchObject({ code: 'replay_guard_full' });
    expect(await g.claim('a', now + 1000)).toBe('replayed');
    await g.close();
  });

  it('rewrites its file once most entries have expired, keeping the live ones', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-guard-'));
    let now = 10_000_000;
    const g = await ReplayGuard.open({ dir, logger, now: () => now });
    for (let i = 0; i < 1500; i++) await g.claim(`old-${i}`, now + 1000);
    now += 2000;
    await g.claim('live-1', now + 60_000);
    for (let i = 0; i < 10; i++) await g.claim(`live-x${i}`, now + 60_000);
    const lines = (await readFile(join(dir, 'seen.log'), 'utf8')).trim().split('\n');
    expect(lines.length).toBeLessThan(100);
    await g.close();
    const h = await ReplayGuard.open({ dir, logger, now: () => now });
    expect(await h.claim('live-1', now + 60_000)).toBe('replayed');
    expect(await h.claim('old-1', now + 60_000)).toBe('claimed');
    await h.close();
  });

  it('lists commands claimed but never finished before a restart as interrupted, once', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-guard-'));
    const g = await ReplayGuard.open({ dir, logger });
    await g.claim('ran', Date.now() + 60_000);
    await g.complete('ran');
    await g.claim('cut', Date.now() + 60_000);
    await g.close();
    const h = await ReplayGuard.open({ dir, logger });
    expect(h.interrupted()).toEqual(['cut']);
    expect(await h.claim('cut', Date.now() + 60_000)).toBe('replayed');
    await h.complete('cut');
    await h.close();
    const k = await ReplayGuard.open({ dir, logger });
    expect(k.interrupted()).toEqual([]);
    await k.close();
  });

  it('recovers from a torn last record', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-guard-'));
    const g = await ReplayGuard.open({ dir, logger });
    await g.claim('j1', Date.now() + 60_000);
    await g.close();
    await appendFile(join(dir, 'seen.log'), '0badf00d {"jti":"j2","unt');
    const h = await ReplayGuard.open({ dir, logger });
    expect(h.has('j1')).toBe(true);
    expect(await h.claim('j2', Date.now() + 60_000)).toBe('claimed');
    await h.close();
  });

  it('survives kill -9: every jti confirmed before the kill is still refused after restart', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-guard-'));
    const child = startChild(writer, ['guard', dir, '16']);
    children.push(child);
    await child.waitFor((l) => l === 'ready');
    await child.waitFor((l) => l.startsWith('durable ') && Number(l.split('-').at(-1)) >= 400);
    child.kill('SIGKILL');
    expect(await child.exited).toBe('SIGKILL');
    const confirmed = child.lines.filter((l) => l.startsWith('durable ')).map((l) => l.slice(8));
    expect(confirmed.length).toBeGreaterThan(100);
    const g = await ReplayGuard.open({ dir, logger });
    for (const jti of confirmed) expect(g.has(jti)).toBe(true);
    await g.close();
  });
});
