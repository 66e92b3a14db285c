/**
 * createPorts — the ONE place that chooses the relay's backends: in-memory (plus the file registry) when no
 * Redis is configured, Redis (single node or Cluster) when `redisUrl` is set.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { MemoryBus, MemoryBusHub } from './bus-memory.js';
import { type CommandQueueOptions, MemoryCommandQueue } from './command-queue-memory.js';
import type { EventLogLimits } from './event-log.js';
import { MemoryEventLog } from './event-log-memory.js';
import { validateLimits } from './event-log-shared.js';
import { assertNodeId } from './ids.js';
import type { Ports } from './index.js';
import { MemoryHub, type SharedStores } from './memory-hub.js';
import { MemoryPresence, type PresenceOptions } from './presence-memory.js';
import { FileRegistry } from './registry-file.js';

export interface CreatePortsOptions {
  /**
   * `SCANRELAY_REDIS_URL`: unset → embedded memory ports; one `redis://` / `rediss://` URL → one Redis;
   * several URLs (array) → Redis Cluster seed nodes.
   */
  redisUrl?: string | string[];
  /** `SCANRELAY_DATA_DIR`: where the embedded registry file lives (unused with Redis). */
  dataDir: string;
  /** `SCANRELAY_NODE_ID`: this node's id (names its `node:<id>` channel and its presence records). */
  nodeId: string;
  clock: Clock;
  logger: Logger;
  /** History bounds per site. */
  eventLog: EventLogLimits;
  /** Memory only: share the bus and stores with other nodes in this process (tests). */
  memoryHub?: MemoryHub;
  /** Command retention and redelivery lease (defaults: 10 min, 15 s). */
  commands?: CommandQueueOptions;
  /** How long offline gateways stay listed (default 24 h). */
  presence?: PresenceOptions;
}

export async function createPorts(opts: CreatePortsOptions): Promise<Ports> {
  assertNodeId(opts.nodeId, 'SCANRELAY_NODE_ID');
  validateLimits(opts.eventLog);
  const redisUrls = opts.redisUrl === undefined ? [] : Array.isArray(opts.redisUrl) ? opts.redisUrl : [opts.redisUrl];
  if (redisUrls.length > 0) {
    const { createRedisPorts } = await import('./create-redis.js');
    return createRedisPorts({ ...opts, redisUrls });
  }
  return createMemoryPorts(opts);
}

async function createMemoryPorts(opts: CreatePortsOptions): Promise<Ports> {
  const logger = opts.logger.child({ component: 'ports', backend: 'memory' });
  const hub = opts.memoryHub;
  const busHub = hub?.bus ?? new MemoryBusHub();
  const make = async (): Promise<SharedStores> => {
    // The event log publishes appended events itself (EventLog.append's `publish`), through the same hub.
    const publisher = new MemoryBus(busHub, logger);
    return {
      eventLog: new MemoryEventLog(opts.eventLog, opts.clock, { publish: (c, p) => publisher.publish(c, p) }),
      presence: new MemoryPresence(opts.clock, opts.presence),
      commands: new MemoryCommandQueue(opts.clock, opts.commands),
      registry: await FileRegistry.open(opts.dataDir, opts.clock),
    };
  };
  const stores = hub ? await hub.stores(make) : await make();
  const bus = new MemoryBus(busHub, logger);
  return {
    bus,
    ...stores,
    async close() {
      await bus.close();
      // Shared stores belong to the hub; a node leaving must not close them under the others.
      if (hub) return;
      await Promise.all([stores.commands.close(), stores.presence.close(), stores.eventLog.close()]);
      await stores.registry.close();
    },
  };
}

export { MemoryHub };
