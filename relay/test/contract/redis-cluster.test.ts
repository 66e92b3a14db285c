/**
 * Every port contract against a real three-master Redis Cluster on loopback: hash-tagged keys keep each
 * script's keys on one slot, and the bus uses sharded SPUBLISH/SSUBSCRIBE.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import { type RedisCluster, startRedisCluster } from '../helpers/redis.js';
import { redisContracts } from './redis-fixtures.js';

const execFileAsync = promisify(execFile);

let cluster: RedisCluster;
beforeAll(async () => {
  cluster = await startRedisCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

redisContracts('redis cluster', {
  urls: () => cluster.urls,
  flush: async () => {
    await Promise.all(
      cluster.nodes.map((n) => execFileAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(n.port), 'FLUSHALL'])),
    );
  },
});
