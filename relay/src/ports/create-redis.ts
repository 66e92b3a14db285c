/** Redis-backed ports (chosen by create.ts when SCANRELAY_REDIS_URL is set). */
import { RedisBus } from './bus-redis.js';
import { RedisCommandQueue } from './command-queue-redis.js';
import type { CreatePortsOptions } from './create.js';
import { RedisEventLog } from './event-log-redis.js';
import type { Ports } from './index.js';
import { RedisPresence } from './presence-redis.js';
import { RedisConnection } from './redis-connection.js';
import { RedisRegistry } from './registry-redis.js';

export async function createRedisPorts(opts: CreatePortsOptions & { redisUrls: string[] }): Promise<Ports> {
  const logger = opts.logger.child({
    component: 'ports',
    backend: opts.redisUrls.length > 1 ? 'redis-cluster' : 'redis',
  });
  const conn = await RedisConnection.open({ urls: opts.redisUrls, logger, name: `scanrelay:${opts.nodeId}` });
  const bus = new RedisBus(conn, logger);
  return {
    bus,
    eventLog: new RedisEventLog(conn, opts.eventLog, opts.clock),
    presence: new RedisPresence(conn, opts.clock, opts.presence),
    commands: new RedisCommandQueue(conn, opts.clock, opts.commands),
    registry: new RedisRegistry(conn, opts.clock),
    async close() {
      await bus.close();
      await conn.close();
    },
  };
}
