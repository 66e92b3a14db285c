/**
 * Redis ports when Redis misbehaves: malformed bus payloads, a hung Redis (SIGSTOP), a restart, an
 * unreachable URL. Fail closed, never crash, recover by themselves.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisBus } from '../../src/ports/bus-redis.js';
import { RedisCommandQueue } from '../../src/ports/command-queue-redis.js';
import { createPorts, type Ports } from '../../src/ports/index.js';
import type { RedisConnection } from '../../src/ports/redis-connection.js';
import { RedisRegistry } from '../../src/ports/registry-redis.js';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';
import { Inbox } from './bus.contract.js';
import { uniqueId } from './ids.js';
import { ManualClock } from './manual-clock.js';
import { openConnection, silent } from './redis-fixtures.js';

const execFileAsync = promisify(execFile);

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('Redis ports under failure', () => {
  let redis: RedisServer;
  const cleanup: (() => Promise<void>)[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    redis.resume();
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });
  afterAll(async () => {
    await redis?.stop();
  });
  async function conn(): Promise<RedisConnection> {
    const c = await openConnection({ urls: () => [redis.url], flush: async () => {} });
    cleanup.push(() => c.close());
    return c;
  }

  it('drops malformed bus payloads with a log line and keeps delivering', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => lines.push(s) });
    const bus = new RedisBus(await conn(), logger);
    cleanup.push(() => bus.close());
    const channel = `site:${uniqueId('site')}`;
    const inbox = new Inbox();
    await bus.subscribe(channel, inbox.handler);
    const raw = `sr:{${channel}}:bus`;
    for (const bad of ['not json', '[1,2]', '{"no":"kind"}', '{"kind":5}', 'null', '{"kind":"x"']) {
      await execFileAsync('redis-cli', ['-p', String(redis.port), 'PUBLISH', raw, bad]);
    }
    await execFileAsync('redis-cli', [
      '-p',
      String(redis.port),
      'PUBLISH',
      raw,
      '{"kind":"ok","__proto__":{"polluted":1}}',
    ]);
    await inbox.waitFor(1);
    expect(inbox.items).toHaveLength(1);
    expect(inbox.items[0]!.kind).toBe('ok');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(lines.filter((l) => l.includes('malformed bus message'))).toHaveLength(6);
    // No payload text in the logs.
    expect(lines.join('')).not.toContain('not json');
  });

  it('fails closed while Redis is paused (SIGSTOP) and recovers on SIGCONT', async () => {
    const c = await conn();
    const registry = new RedisRegistry(c, new ManualClock());
    expect(c.healthy()).toBe(true);
    redis.pause();
    // Rejects (command timeout) instead of waiting for the TCP connection to die.
    await expect(registry.isSessionRevoked('sid-1', Date.now())).rejects.toMatchObject({ code: 'unavailable' });
    await until(() => !c.healthy(), 'unhealthy while paused');
    redis.resume();
    await until(() => c.healthy(), 'healthy after SIGCONT');
    expect(await registry.isSessionRevoked('sid-1', Date.now())).toBe(false);
  });

  it('survives a Redis restart: calls fail while it is down, data and subscriptions come back', async () => {
    const clock = new ManualClock();
    const dir = await mkdtemp(join(tmpdir(), 'scanrelay-ports-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const ports: Ports = await createPorts({
      redisUrl: redis.url,
      dataDir: dir,
      nodeId: 'node-a',
      clock,
      logger: silent,
      eventLog: { maxEvents: 100, maxAgeMs: 600_000, maxSubjects: 10 },
    });
    cleanup.push(() => ports.close());
    const site = uniqueId('site');
    const gw = uniqueId('gw');
    const first = await ports.eventLog.append({ site, gateway: gw, seq: 1, kind: 'images.received', at: 1, data: {} });
    const inbox = new Inbox();
    await ports.bus.subscribe(`site:${site}`, inbox.handler);

    await redis.crash();
    // Appendfsync always: the acknowledged event survived the kill -9; the epoch is unchanged.
    await until(() => ports.bus.healthy(), 'bus healthy after restart');
    await until(async () => (await ports.eventLog.lastSeq(gw).catch(() => -1)) === 1, 'lastSeq after restart');
    if (first.duplicate) throw new Error('unexpected duplicate');
    const read = await ports.eventLog.readSince(site, first.event.position, 10);
    expect(read).toMatchObject({ gap: false, events: [], head: first.event.position });
    // ioredis re-subscribed the bus channel after the reconnect.
    await until(async () => {
      await ports.bus.publish(`site:${site}`, { kind: 'after-restart' }).catch(() => {});
      return inbox.items.length > 0;
    }, 'delivery after restart');
    expect(inbox.items[0]!.kind).toBe('after-restart');
  });

  it('tells bus users when the connection was lost and when it is back, before restored messages arrive', async () => {
    const bus = new RedisBus(await conn(), silent);
    cleanup.push(() => bus.close());
    const seen: string[] = [];
    bus.onDisconnect(() => seen.push('lost'));
    bus.onReconnect(() => seen.push('back'));
    const channel = `site:${uniqueId('site')}`;
    await bus.subscribe(channel, (p) => seen.push(`message:${p.kind}`));
    await redis.restart();
    await until(() => seen.includes('back'), 'reconnect reported');
    await until(async () => {
      await bus.publish(channel, { kind: 'after' }).catch(() => {});
      return seen.includes('message:after');
    }, 'delivery after reconnect');
    expect(seen.slice(0, 3)).toEqual(['lost', 'back', 'message:after']);
  });

  it('a take whose reply was lost is retried under the same id and returns the same commands', async () => {
    const c = await conn();
    const clock = new ManualClock();
    const queue = new RedisCommandQueue(c, clock);
    const gw = uniqueId('gw');
    const jti = uniqueId('jti');
    await queue.claim(
      {
        command: jti,
        gateway: gw,
        site: 'site-1',
        cmd: 'echo',
        token: 't',
        origin: { node: 'n', connection: 'c', ref: 'r', sub: 'u', session: 's' },
        expiresAt: clock.now() + 60_000,
        acceptedAt: clock.now(),
        state: 'accepted',
      },
      { maxDepth: 10 },
    );
    const keys = [
      'sr:{cmdq}:q',
      'sr:{cmdq}:exp',
      'sr:{cmdq}:m',
      'sr:{cmdq}:rec',
      `sr:{cmdq}:take:${uniqueId('call')}`,
      'sr:{cmdq}:inflight',
      'sr:{cmdq}:inrec',
    ];
    const first = (await c.script('held-take', keys, [gw, clock.now(), 60_000, 15_000])) as string[];
    // The "retry": same call id, after the first execution already removed the command from the queue.
    const again = (await c.script('held-take', keys, [gw, clock.now(), 60_000, 15_000])) as string[];
    expect(first).toHaveLength(1);
    expect(again).toEqual(first);
    expect(await queue.take(gw, clock.now())).toEqual([]);
  });

  it('refuses to start on an unreachable Redis with a message naming SCANRELAY_REDIS_URL', async () => {
    const port = await freePort();
    await expect(
      createPorts({
        redisUrl: `redis://127.0.0.1:${port}`,
        dataDir: tmpdir(),
        nodeId: 'node-a',
        clock: new ManualClock(),
        logger: silent,
        eventLog: { maxEvents: 10, maxAgeMs: 1_000, maxSubjects: 1 },
      }),
    ).rejects.toMatchObject({ code: 'unavailable', message: expect.stringContaining('SCANRELAY_REDIS_URL') });
    await expect(
      createPorts({
        redisUrl: 'http://127.0.0.1:1',
        dataDir: tmpdir(),
        nodeId: 'node-a',
        clock: new ManualClock(),
        logger: silent,
        eventLog: { maxEvents: 10, maxAgeMs: 1_000, maxSubjects: 1 },
      }),
    ).rejects.toThrow(/SCANRELAY_REDIS_URL.*redis:\/\//);
  });
});
