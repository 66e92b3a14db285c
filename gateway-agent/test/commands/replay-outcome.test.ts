/**
 * The replay guard keeps how each command ended, so a refused redelivery of its jti can say so (`previous`):
 * after a restart, after kill -9, while still running, and when cut off by a crash — and the command never
 * runs a second time.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandDelivery, JsonObject } from '@scanrelay/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeParts,
  generateManageKey,
  type JwksFile,
  mintCommand,
  TEST_ISSUER,
  type TestKey,
  writeJwksFile,
} from '../../../relay/test/helpers/tokens.js';
import { CommandDispatcher, type StatusReport } from '../../src/commands/dispatch.js';
import { PinnedKeys } from '../../src/commands/pinned-keys.js';
import { INTERRUPTED, ReplayGuard } from '../../src/commands/replay-guard.js';
import { CommandVerifier } from '../../src/commands/verifier.js';
import { silentLogger } from '../../src/log.js';
import { bundle, type Child, cleanupBundles, startChild } from '../helpers/child.js';
import { createFakeDicom } from '../helpers/fake-dicom.js';
import { outcomeFor } from './outcome-writer.js';

const logger = silentLogger();
let dir: string;
let children: Child[] = [];

afterEach(async () => {
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  children = [];
  if (dir) await rm(dir, { recursive: true, force: true });
});
afterAll(async () => {
  await cleanupBundles();
});

describe('replay guard outcomes', () => {
  it('answers a seen jti with running, then its outcome — also after a restart', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outcome-'));
    const until = Date.now() + 60_000;
    const g = await ReplayGuard.open({ dir, logger });
    expect(g.previous('j1')).toBeUndefined();
    await g.claim('j1', until);
    expect(g.previous('j1')).toEqual({ state: 'running' });
    const done = g.complete('j1', { state: 'completed', detail: { result: { online: true, ms: 3 } } });
    // Visible at once, before the write completes: a redelivery racing the fsync is answered right.
    expect(g.previous('j1')).toEqual({ state: 'completed', detail: { result: { online: true, ms: 3 } } });
    await done;
    await g.claim('j2', until);
    await g.complete('j2', { state: 'rejected', detail: { reason: 'conflict', message: 'different details' } });
    await g.close();

    const h = await ReplayGuard.open({ dir, logger });
    expect(h.interrupted()).toEqual([]);
    expect(await h.claim('j1', until)).toBe('replayed');
    expect(h.previous('j1')).toEqual({ state: 'completed', detail: { result: { online: true, ms: 3 } } });
    expect(h.previous('j2')).toEqual({
      state: 'rejected',
      detail: { reason: 'conflict', message: 'different details' },
    });
    await h.close();
  });

  it('reports a command cut off by a stop as failed interrupted, before and after that is recorded', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outcome-'));
    const g = await ReplayGuard.open({ dir, logger });
    await g.claim('cut', Date.now() + 60_000);
    await g.close();
    const h = await ReplayGuard.open({ dir, logger });
    expect(h.interrupted()).toEqual(['cut']);
    expect(h.previous('cut')).toEqual(INTERRUPTED);
    await h.complete('cut'); // what the agent does after reporting it
    await h.close();
    const k = await ReplayGuard.open({ dir, logger });
    expect(k.interrupted()).toEqual([]);
    expect(k.previous('cut')).toEqual(INTERRUPTED);
    expect(await k.claim('cut', Date.now() + 60_000)).toBe('replayed');
    await k.close();
  });

  it('keeps only the state of a detail past its size bounds, and forgets outcomes with their jti', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outcome-'));
    let now = 1_000_000;
    const g = await ReplayGuard.open({ dir, logger, now: () => now, maxOutcomeBytes: 200, maxOutcomeTotalBytes: 300 });
    await g.claim('big', now + 10_000);
    await g.complete('big', { state: 'completed', detail: { result: { studies: ['x'.repeat(300)] } } });
    expect(g.previous('big')).toEqual({
      state: 'completed',
      detail: { omitted: true, message: expect.stringContaining('too large') },
    });
    // Two that fit alone but not together: the second keeps its state only (total budget).
    const mid: JsonObject = { result: { note: 'y'.repeat(150) } };
    await g.claim('a', now + 10_000);
    await g.complete('a', { state: 'completed', detail: mid });
    await g.claim('b', now + 10_000);
    await g.complete('b', { state: 'completed', detail: mid });
    expect(g.previous('a')).toEqual({ state: 'completed', detail: mid });
    expect(g.previous('b')).toMatchObject({ state: 'completed', detail: { omitted: true } });
    // Too deep to nest two levels further inside a refusal: state only.
    let deep: JsonObject = { leaf: 1 };
    for (let i = 0; i < 8; i++) deep = { d: deep };
    await g.claim('deep', now + 10_000);
    await g.complete('deep', { state: 'completed', detail: deep });
    expect(g.previous('deep')).toMatchObject({ state: 'completed', detail: { omitted: true } });
    now += 11_000;
    expect(g.previous('a')).toBeUndefined();
    await g.claim('c', now + 10_000); // prunes the expired entries, and frees their budget
    await g.complete('c', { state: 'completed', detail: mid });
    expect(g.previous('c')).toEqual({ state: 'completed', detail: mid });
    await g.close();
  });

  it('keeps outcomes (and running commands as unfinished) when it rewrites its file', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outcome-'));
    let now = 10_000_000;
    const g = await ReplayGuard.open({ dir, logger, now: () => now });
    for (let i = 0; i < 1500; i++) await g.claim(`old-${i}`, now + 1000);
    now += 2000;
    await g.claim('live-run', now + 60_000);
    await g.claim('live-done', now + 60_000);
    await g.complete('live-done', { state: 'failed', detail: { reason: 'dicom_error', message: 'timeout' } });
    for (let i = 0; i < 10; i++) await g.claim(`pad-${i}`, now + 60_000);
    const lines = (await readFile(join(dir, 'seen.log'), 'utf8')).trim().split('\n');
    expect(lines.length).toBeLessThan(100);
    await g.close();
    const h = await ReplayGuard.open({ dir, logger, now: () => now });
    expect(h.previous('live-done')).toEqual({ state: 'failed', detail: { reason: 'dicom_error', message: 'timeout' } });
    expect(h.interrupted()).toContain('live-run');
    expect(h.previous('live-run')).toEqual(INTERRUPTED);
    await h.close();
  });

  it('survives kill -9: every outcome confirmed before the kill is answered after restart; the running one is interrupted', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outcome-'));
    const child = startChild(await bundle('gateway-agent/test/commands/outcome-writer.ts'), [dir, '16']);
    children.push(child);
    const stuck = (await child.waitFor((l) => l.startsWith('running '))).slice(8);
    await child.waitFor((l) => l.startsWith('done ') && Number(l.split('-').at(-1)) >= 300);
    child.kill('SIGKILL');
    expect(await child.exited).toBe('SIGKILL');
    const done = child.lines.filter((l) => l.startsWith('done ')).map((l) => l.slice(5));
    expect(done.length).toBeGreaterThan(100);
    const g = await ReplayGuard.open({ dir, logger });
    for (const jti of done) {
      expect(await g.claim(jti, Date.now() + 60_000)).toBe('replayed');
      expect(g.previous(jti)).toEqual(outcomeFor(Number(jti.slice(4))));
    }
    expect(g.interrupted()).toContain(stuck);
    expect(g.previous(stuck)).toEqual(INTERRUPTED);
    await g.close();
  });
});

describe('dispatch of a replayed jti', () => {
  let manage: TestKey;
  let jwks: JwksFile;
  let verifier: CommandVerifier;

  beforeAll(async () => {
    manage = await generateManageKey({ kid: 'manage-1' });
    jwks = await writeJwksFile([manage]);
    const keys = await PinnedKeys.open(jwks.path, logger);
    verifier = new CommandVerifier({ keys, issuer: TEST_ISSUER, gatewayId: 'gw-1', site: 'site-a' });
  });
  afterAll(async () => {
    await jwks.cleanup();
  });

  const deliver = (token: string): CommandDelivery => ({
    type: 'command',
    command: decodeParts(token).payload.jti as string,
    token,
    from: { sub: 'user-1', session: 's1' },
  });

  it('refuses a redelivery while the first still runs with previous running; the real outcome follows', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-outcome-'));
    const guard = await ReplayGuard.open({ dir, logger });
    const statuses: StatusReport[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const dicom = createFakeDicom({ emit: async () => {} });
    const realEcho = dicom.echo.bind(dicom);
    dicom.echo = async (args) => {
      await gate;
      return realEcho(args);
    };
    const dispatcher = new CommandDispatcher({
      verifier,
      guard,
      dicom,
      refuseNewWork: () => false,
      report: (s) => statuses.push(s),
      logger,
    });
    const token = await mintCommand(manage); // echo;
    const jti = decodeParts(token).payload.jti as string;
    const first = dispatcher.handle(deliver(token));
    await until(() => statuses.some((s) => s.state === 'running'));
    await dispatcher.handle(deliver(token));
    expect(statuses.at(-1)).toEqual({
      command: jti,
      state: 'rejected',
      detail: { reason: 'replayed', message: expect.any(String), previous: { state: 'running' } },
    });
    release();
    await first;
    expect(statuses.at(-1)).toMatchObject({ command: jti, state: 'completed', detail: { result: { online: true } } });
    const completed = statuses.at(-1)!;
    await dispatcher.handle(deliver(token));
    expect(statuses.at(-1)).toEqual({
      command: jti,
      state: 'rejected',
      detail: {
        reason: 'replayed',
        message: expect.any(String),
        previous: { state: 'completed', detail: completed.detail },
      },
    });
    expect(dicom.calls.filter((c) => c.cmd === 'echo')).toHaveLength(1);
    await guard.close();
  });
});

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
}
