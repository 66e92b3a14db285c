/**
 * Factories that run the port contracts against real Redis (single server or cluster). Each fixture opens its
 * own connections (one per simulated node) and closes them; the server itself is the test file's.
 */
import pino from 'pino';
import { RedisBus } from '../../src/ports/bus-redis.js';
import { RedisCommandQueue } from '../../src/ports/command-queue-redis.js';
import { RedisEventLog } from '../../src/ports/event-log-redis.js';
import { RedisPresence } from '../../src/ports/presence-redis.js';
import { RedisConnection } from '../../src/ports/redis-connection.js';
import { RedisRegistry } from '../../src/ports/registry-redis.js';
import { busContract } from './bus.contract.js';
import { commandQueueContract } from './command-queue.contract.js';
import { eventLogContract } from './event-log.contract.js';
import { ManualClock } from './manual-clock.js';
import { presenceContract } from './presence.contract.js';
import { registryContract } from './registry.contract.js';

export const silent = pino({ level: 'silent' });

export interface RedisTarget {
  urls(): string[];
  /** Remove every key (history lost). */
  flush(): Promise<void>;
}

export async function openConnection(target: RedisTarget): Promise<RedisConnection> {
  return RedisConnection.open({ urls: target.urls(), logger: silent, name: 'scanrelay:test' });
}

/** Run every port contract against `target`. */
export function redisContracts(name: string, target: RedisTarget): void {
  busContract(name, async () => {
    const conns: RedisConnection[] = [];
    const buses: RedisBus[] = [];
    return {
      node: async () => {
        const conn = await openConnection(target);
        conns.push(conn);
        const bus = new RedisBus(conn, silent);
        buses.push(bus);
        return bus;
      },
      close: async () => {
        await Promise.all(buses.map((b) => b.close()));
        await Promise.all(conns.map((c) => c.close()));
      },
    };
  });

  eventLogContract(name, async (limits) => {
    const clock = new ManualClock();
    const conns = [await openConnection(target)];
    const bus = new RedisBus(conns[0]!, silent);
    return {
      log: new RedisEventLog(conns[0]!, limits, clock),
      clock,
      bus,
      loseHistory: async () => {
        await target.flush();
        const conn = await openConnection(target);
        conns.push(conn);
        return new RedisEventLog(conn, limits, clock);
      },
      close: async () => {
        await bus.close();
        await Promise.all(conns.map((c) => c.close()));
      },
    };
  });

  presenceContract(name, async () => {
    const clock = new ManualClock();
    const [a, b] = [await openConnection(target), await openConnection(target)];
    return {
      presence: new RedisPresence(a, clock),
      other: new RedisPresence(b, clock),
      clock,
      close: async () => {
        await Promise.all([a.close(), b.close()]);
      },
    };
  });

  commandQueueContract(name, async () => {
    const clock = new ManualClock();
    const [a, b] = [await openConnection(target), await openConnection(target)];
    return {
      queue: new RedisCommandQueue(a, clock, { retainMs: 120_000 }),
      other: new RedisCommandQueue(b, clock, { retainMs: 120_000 }),
      clock,
      retainMs: 120_000,
      redeliverAfterMs: 15_000,
      close: async () => {
        await Promise.all([a.close(), b.close()]);
      },
    };
  });

  registryContract(name, async () => {
    const clock = new ManualClock();
    const conns = [await openConnection(target)];
    let registry = new RedisRegistry(conns[0]!, clock);
    return {
      get registry() {
        return registry;
      },
      other: async () => {
        const conn = await openConnection(target);
        conns.push(conn);
        return new RedisRegistry(conn, clock);
      },
      restart: async () => {
        const conn = await openConnection(target);
        conns.push(conn);
        registry = new RedisRegistry(conn, clock);
        return registry;
      },
      clock,
      close: async () => {
        await Promise.all(conns.map((c) => c.close()));
      },
    };
  });
}
