/** Redis-backed ports (see create.ts). */

import type { CreatePortsOptions } from './create.js';
import { PortError } from './errors.js';
import type { Ports } from './index.js';

export async function createRedisPorts(_opts: CreatePortsOptions & { redisUrls: string[] }): Promise<Ports> {
  throw new PortError('unavailable', 'Redis ports are not built yet; unset SCANRELAY_REDIS_URL to run embedded');
}
