/** Every port contract against one real redis-server. */
import { afterAll, beforeAll } from 'vitest';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { redisContracts } from './redis-fixtures.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

redisContracts('redis', { urls: () => [redis.url], flush: () => redis.flushAll() });
