/**
 * CommandQueue contract: every behaviour documented in relay/src/ports/command-queue.ts (and the retention
 * rule in command-queue-memory.ts), run against each implementation (command-queue.test.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CommandQueue, CommandRecord } from '../../src/ports/command-queue.js';
import { BAD_IDS, uniqueId } from './ids.js';
import type { ManualClock } from './manual-clock.js';

export interface CommandQueueFixture {
  queue: CommandQueue;
  /** A second queue on the same backend (another node). Memory: the same instance. */
  other: CommandQueue;
  clock: ManualClock;
  /** Retention after expiry the implementation was built with (ms). */
  retainMs: number;
  /** Redelivery lease the implementation was built with (ms). */
  redeliverAfterMs: number;
  close(): Promise<void>;
}

export type CommandQueueFactory = () => Promise<CommandQueueFixture>;

function record(clock: ManualClock, gateway: string, overrides: Partial<CommandRecord> = {}): CommandRecord {
  return {
    command: uniqueId('jti'),
    gateway,
    site: 'site-1',
    cmd: 'echo',
    token: 'eyJ.header.sig',
    origin: { node: 'node-a', connection: 'conn-1', ref: 'r1', sub: 'user-1', session: 'sess-1' },
    expiresAt: clock.now() + 60_000,
    acceptedAt: clock.now(),
    state: 'accepted',
    ...overrides,
  };
}

export function commandQueueContract(name: string, factory: CommandQueueFactory): void {
  describe(`CommandQueue contract: ${name}`, () => {
    const open: CommandQueueFixture[] = [];
    async function make(): Promise<CommandQueueFixture> {
      const f = await factory();
      open.push(f);
      return f;
    }
    afterEach(async () => {
      await Promise.all(open.splice(0).map((f) => f.close()));
    });

    it('claims a jti once and refuses it again, from any node', async () => {
      const { queue, other, clock } = await make();
      const r = record(clock, uniqueId('gw'));
      expect(await queue.claim(r)).toEqual({ ok: true });
      expect(await queue.claim(r)).toEqual({ ok: false, reason: 'duplicate' });
      expect(await other.claim({ ...r, origin: { ...r.origin, node: 'node-b' } })).toEqual({
        ok: false,
        reason: 'duplicate',
      });
      expect(await other.get(r.command)).toEqual(r);
    });

    it('of N concurrent claims of one jti exactly one succeeds', async () => {
      const { queue, other, clock } = await make();
      const r = record(clock, uniqueId('gw'));
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? other : queue).claim(r)));
      expect(results.filter((x) => x.ok)).toHaveLength(1);
    });

    it('records state changes, and ignores them for unknown commands', async () => {
      const { queue, other, clock } = await make();
      const r = record(clock, uniqueId('gw'));
      await queue.claim(r);
      await other.setState(r.command, 'delivered');
      expect((await queue.get(r.command))!.state).toBe('delivered');
      await queue.setState(uniqueId('jti'), 'completed');
      expect(await queue.get(uniqueId('jti'))).toBeUndefined();
    });

    it('keeps a claimed jti until its expiry plus retention, then forgets it', async () => {
      const { queue, clock, retainMs } = await make();
      const r = record(clock, uniqueId('gw'), { expiresAt: clock.now() + 5_000 });
      await queue.claim(r);
      clock.advance(5_000 + retainMs - 1_000);
      expect(await queue.claim(r)).toEqual({ ok: false, reason: 'duplicate' });
      expect(await queue.get(r.command)).toBeDefined();
      clock.advance(2_000);
      expect(await queue.get(r.command)).toBeUndefined();
      expect(await queue.claim(r)).toEqual({ ok: true });
    });

    it('a state change keeps a long-running command routable past its token expiry', async () => {
      const { queue, clock, retainMs } = await make();
      const r = record(clock, uniqueId('gw'), { expiresAt: clock.now() + 5_000 });
      await queue.claim(r);
      clock.advance(5_000 + retainMs - 1_000);
      await queue.setState(r.command, 'progress');
      clock.advance(retainMs - 1_000);
      expect((await queue.get(r.command))!.state).toBe('progress');
    });

    it('holds commands for a gateway and hands them to one taker, oldest first', async () => {
      const { queue, other, clock } = await make();
      const gw = uniqueId('gw');
      const rs = [record(clock, gw), record(clock, gw), record(clock, gw)];
      for (const r of rs) {
        await queue.claim(r);
        await queue.hold(r.command, gw, r.expiresAt, 10);
      }
      expect(await other.depth(gw)).toBe(3);
      const taken = await other.take(gw, clock.now());
      expect(taken.map((r) => r.command)).toEqual(rs.map((r) => r.command));
      expect(taken[0]).toEqual(rs[0]);
      expect(await queue.take(gw, clock.now())).toEqual([]);
      expect(await queue.depth(gw)).toBe(0);
      expect(await queue.take(uniqueId('gw'), clock.now())).toEqual([]);
    });

    it('takes the latest recorded state of a held command', async () => {
      const { queue, clock } = await make();
      const gw = uniqueId('gw');
      const r = record(clock, gw);
      await queue.claim(r);
      await queue.hold(r.command, gw, r.expiresAt, 10);
      await queue.setState(r.command, 'queued');
      expect((await queue.take(gw, clock.now()))[0]!.state).toBe('queued');
    });

    it('gives each held command to exactly one of N concurrent takers', async () => {
      const { queue, other, clock } = await make();
      const gw = uniqueId('gw');
      const rs = Array.from({ length: 20 }, () => record(clock, gw));
      for (const r of rs) {
        await queue.claim(r);
        await queue.hold(r.command, gw, r.expiresAt, 100);
      }
      const takes = await Promise.all(
        Array.from({ length: 8 }, (_, i) => (i % 2 ? other : queue).take(gw, clock.now())),
      );
      const all = takes.flat().map((r) => r.command);
      expect(all.sort()).toEqual(rs.map((r) => r.command).sort());
    });

    it('refuses to hold past maxDepth with the depth, and holding twice is idempotent', async () => {
      const { queue, clock } = await make();
      const gw = uniqueId('gw');
      const rs = Array.from({ length: 3 }, () => record(clock, gw));
      for (const r of rs) await queue.claim(r);
      expect(await queue.hold(rs[0]!.command, gw, rs[0]!.expiresAt, 2)).toEqual({ ok: true, depth: 1 });
      expect(await queue.hold(rs[0]!.command, gw, rs[0]!.expiresAt, 2)).toEqual({ ok: true, depth: 1 });
      expect(await queue.hold(rs[1]!.command, gw, rs[1]!.expiresAt, 2)).toEqual({ ok: true, depth: 2 });
      expect(await queue.hold(rs[2]!.command, gw, rs[2]!.expiresAt, 2)).toEqual({
        ok: false,
        reason: 'full',
        depth: 2,
      });
      expect(await queue.depth(gw)).toBe(2);
    });

    it('concurrent holds never exceed maxDepth', async () => {
      const { queue, other, clock } = await make();
      const gw = uniqueId('gw');
      const rs = Array.from({ length: 10 }, () => record(clock, gw));
      for (const r of rs) await queue.claim(r);
      const results = await Promise.all(rs.map((r, i) => (i % 2 ? other : queue).hold(r.command, gw, r.expiresAt, 4)));
      expect(results.filter((x) => x.ok)).toHaveLength(4);
      expect(await queue.depth(gw)).toBe(4);
    });

    it('claims and holds in one step; a full queue records nothing, so the same jti can be claimed later', async () => {
      const { queue, other, clock } = await make();
      const gw = uniqueId('gw');
      const [a, b, c] = [record(clock, gw), record(clock, gw), record(clock, gw)];
      expect(await queue.claim(a, { maxDepth: 2 })).toEqual({ ok: true });
      expect(await other.claim(b, { maxDepth: 2 })).toEqual({ ok: true });
      expect(await queue.claim(c, { maxDepth: 2 })).toEqual({ ok: false, reason: 'full', depth: 2 });
      expect(await queue.get(c.command)).toBeUndefined();
      expect(await queue.claim(a, { maxDepth: 2 })).toEqual({ ok: false, reason: 'duplicate' });
      expect(await queue.depth(gw)).toBe(2);
      expect((await other.take(gw, clock.now())).map((r) => r.command)).toEqual([a.command, b.command]);
      expect(await queue.claim(c, { maxDepth: 2 })).toEqual({ ok: true });
      expect((await queue.take(gw, clock.now())).map((r) => r.command)).toEqual([c.command]);
    });

    it('concurrent claim-and-holds never exceed maxDepth and hold each jti once', async () => {
      const { queue, other, clock } = await make();
      const gw = uniqueId('gw');
      const rs = Array.from({ length: 10 }, () => record(clock, gw));
      const results = await Promise.all(
        [...rs, ...rs].map((r, i) => (i % 2 ? other : queue).claim(r, { maxDepth: 6 })),
      );
      expect(results.filter((x) => x.ok)).toHaveLength(6);
      const taken = await queue.take(gw, clock.now());
      expect(new Set(taken.map((r) => r.command)).size).toBe(6);
      expect(taken).toHaveLength(6);
    });

    it('refuses to hold a command that was never claimed', async () => {
      const { queue, clock } = await make();
      await expect(queue.hold(uniqueId('jti'), uniqueId('gw'), clock.now() + 1_000, 5)).rejects.toMatchObject({
        code: 'unknown_command',
      });
    });

    it('leaves expired held commands to reapExpired, which returns each to exactly one caller', async () => {
      const { queue, other, clock } = await make();
      const gw = uniqueId('gw');
      const short = record(clock, gw, { expiresAt: clock.now() + 1_000 });
      const long = record(clock, gw, { expiresAt: clock.now() + 60_000 });
      for (const r of [short, long]) {
        await queue.claim(r);
        await queue.hold(r.command, gw, r.expiresAt, 10);
      }
      clock.advance(1_000);
      expect(await queue.depth(gw)).toBe(1);
      expect((await queue.take(gw, clock.now())).map((r) => r.command)).toEqual([long.command]);
      const reaped = (
        await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? other : queue).reapExpired(clock.now())))
      )
        .flat()
        .filter((r) => r.gateway === gw);
      expect(reaped.map((r) => r.command)).toEqual([short.command]);
      expect(reaped[0]).toMatchObject({ command: short.command, origin: short.origin, token: short.token });
      expect((await queue.reapExpired(clock.now())).filter((r) => r.gateway === gw)).toEqual([]);
      // The record itself is still there (for the `expired` status and replay refusal).
      expect(await queue.get(short.command)).toBeDefined();
    });

    it('expires many commands across gateways exactly once under concurrent reapers and takers', async () => {
      const { queue, other, clock } = await make();
      const gws = [uniqueId('gw'), uniqueId('gw'), uniqueId('gw')];
      const rs = gws.flatMap((gw) =>
        Array.from({ length: 5 }, (_, i) => record(clock, gw, { expiresAt: clock.now() + (i % 2 ? 500 : 100_000) })),
      );
      for (const r of rs) {
        await queue.claim(r);
        await queue.hold(r.command, r.gateway, r.expiresAt, 100);
      }
      clock.advance(1_000);
      const out = await Promise.all([
        queue.reapExpired(clock.now()),
        other.reapExpired(clock.now()),
        ...gws.map((gw) => other.take(gw, clock.now())),
        ...gws.map((gw) => queue.take(gw, clock.now())),
      ]);
      const seen = out
        .flat()
        .map((r) => r.command)
        .filter((c) => rs.some((r) => r.command === c));
      expect(seen.sort()).toEqual(rs.map((r) => r.command).sort());
    });

    it('holds a taken command again when no gateway state was recorded for it within the lease (the taker died)', async () => {
      const { queue, other, clock, redeliverAfterMs } = await make();
      const gw = uniqueId('gw');
      const [lost, acked, late] = [
        record(clock, gw),
        record(clock, gw),
        record(clock, gw, { expiresAt: clock.now() + redeliverAfterMs / 2 }),
      ];
      for (const r of [lost, acked, late]) await queue.claim(r, { maxDepth: 10 });
      expect(await queue.take(gw, clock.now())).toHaveLength(3);
      await queue.setState(lost.command, 'delivered');
      await other.setState(acked.command, 'verified');
      clock.advance(redeliverAfterMs - 1);
      expect((await queue.reapExpired(clock.now())).filter((r) => r.gateway === gw)).toEqual([]);
      expect(await queue.depth(gw)).toBe(0);
      clock.advance(2);
      // Past the lease: the unacknowledged one is held again; the one whose token ran out meanwhile is expired.
      const reapers = await Promise.all([queue.reapExpired(clock.now()), other.reapExpired(clock.now())]);
      expect(
        reapers
          .flat()
          .filter((r) => r.gateway === gw)
          .map((r) => r.command),
      ).toEqual([late.command]);
      expect(await queue.depth(gw)).toBe(1);
      const again = await other.take(gw, clock.now());
      expect(again.map((r) => r.command)).toEqual([lost.command]);
      expect(again[0]!.state).toBe('delivered');
    });

    it('a terminal state is final: setState refuses to overwrite it, from any node', async () => {
      const { queue, other, clock } = await make();
      const r = record(clock, uniqueId('gw'));
      await queue.claim(r);
      expect(await queue.setState(r.command, 'running')).toBe(true);
      expect(await other.setState(r.command, 'completed')).toBe(true);
      expect(await queue.setState(r.command, 'failed')).toBe(false);
      expect(await queue.setState(r.command, 'running')).toBe(false);
      expect((await queue.get(r.command))!.state).toBe('completed');
      expect(await queue.setState(uniqueId('jti'), 'completed')).toBe(false);
    });

    it('reapOverdue ends each command without a terminal state past the cutoff timed_out, once, held or not', async () => {
      const { queue, other, clock } = await make();
      const gw = uniqueId('gw');
      const running = record(clock, gw);
      const held = record(clock, gw);
      const done = record(clock, gw);
      const later = record(clock, gw, { expiresAt: clock.now() + 600_000 });
      for (const r of [running, held, done, later]) await queue.claim(r, { maxDepth: 10 });
      await queue.take(gw, clock.now());
      await queue.setState(running.command, 'running');
      await queue.setState(done.command, 'completed');
      await queue.hold(held.command, gw, held.expiresAt, 10);
      const ours = new Set([running.command, held.command, done.command, later.command]);
      const mine = (rs: CommandRecord[]) => rs.filter((r) => ours.has(r.command)).map((r) => r.command);
      expect(mine(await queue.reapOverdue(running.expiresAt - 1))).toEqual([]);
      clock.advance(61_000);
      const [a, b] = await Promise.all([queue.reapOverdue(running.expiresAt), other.reapOverdue(running.expiresAt)]);
      expect([...mine(a), ...mine(b)].sort()).toEqual([running.command, held.command].sort());
      for (const r of [...a, ...b]) if (ours.has(r.command)) expect(r.state).toBe('timed_out');
      expect((await queue.get(running.command))!.state).toBe('timed_out');
      expect((await queue.get(done.command))!.state).toBe('completed');
      expect((await queue.get(later.command))!.state).toBe('accepted');
      // Never delivered after its deadline, never reported twice, and a late outcome cannot overwrite it.
      expect(mine(await queue.take(gw, clock.now() - 61_000))).not.toContain(held.command);
      expect(mine(await queue.reapOverdue(running.expiresAt))).toEqual([]);
      expect(await other.setState(running.command, 'completed')).toBe(false);
    });

    it('dropGateway removes and returns everything held for that gateway only', async () => {
      const { queue, other, clock } = await make();
      const gw = uniqueId('gw');
      const gw2 = uniqueId('gw');
      const a = record(clock, gw);
      const b = record(clock, gw2);
      for (const r of [a, b]) {
        await queue.claim(r);
        await queue.hold(r.command, r.gateway, r.expiresAt, 10);
      }
      expect((await other.dropGateway(gw)).map((r) => r.command)).toEqual([a.command]);
      expect(await queue.depth(gw)).toBe(0);
      expect(await queue.take(gw, clock.now())).toEqual([]);
      expect((await queue.take(gw2, clock.now())).map((r) => r.command)).toEqual([b.command]);
      expect(await queue.dropGateway(gw)).toEqual([]);
    });

    it('refuses bad ids before they reach the backend', async () => {
      const { queue, clock } = await make();
      for (const bad of BAD_IDS) {
        await expect(queue.claim(record(clock, bad))).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(queue.take(bad, clock.now())).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(queue.depth(bad)).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(queue.dropGateway(bad)).rejects.toMatchObject({ code: 'invalid_id' });
      }
      for (const bad of ['', '{x}', 'a b', 'x'.repeat(201), '*']) {
        await expect(queue.claim(record(clock, 'gw-1', { command: bad }))).rejects.toMatchObject({
          code: 'invalid_id',
        });
        await expect(queue.get(bad)).rejects.toMatchObject({ code: 'invalid_id' });
      }
    });
  });
}
