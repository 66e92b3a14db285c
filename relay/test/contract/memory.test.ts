/** Every port contract against the in-memory implementations (and the file registry). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BusPayload } from '../../src/ports/bus.js';
import { MemoryBus, MemoryBusHub } from '../../src/ports/bus-memory.js';
import { MemoryCommandQueue } from '../../src/ports/command-queue-memory.js';
import { MemoryEventLog } from '../../src/ports/event-log-memory.js';
import { MemoryPresence } from '../../src/ports/presence-memory.js';
import type { Registry } from '../../src/ports/registry.js';
import { FileRegistry } from '../../src/ports/registry-file.js';
import { MemoryRegistry } from '../../src/ports/registry-memory.js';
import { busContract } from './bus.contract.js';
import { commandQueueContract } from './command-queue.contract.js';
import { eventLogContract } from './event-log.contract.js';
import { ManualClock } from './manual-clock.js';
import { presenceContract } from './presence.contract.js';
import { registryContract } from './registry.contract.js';

busContract('memory', async () => {
  const hub = new MemoryBusHub();
  const buses: MemoryBus[] = [];
  return {
    node: async () => {
      const bus = new MemoryBus(hub);
      buses.push(bus);
      return bus;
    },
    close: async () => {
      await Promise.all(buses.map((b) => b.close()));
    },
  };
});

eventLogContract('memory', async (limits) => {
  const clock = new ManualClock();
  const hub = new MemoryBusHub();
  const publisher = new MemoryBus(hub);
  const publish = (c: string, p: BusPayload) => publisher.publish(c, p);
  const bus = new MemoryBus(hub);
  return {
    log: new MemoryEventLog(limits, clock, { publish }),
    clock,
    bus,
    loseHistory: async () => new MemoryEventLog(limits, clock, { publish }),
    close: async () => {
      await bus.close();
    },
  };
});

presenceContract('memory', async () => {
  const clock = new ManualClock();
  const presence = new MemoryPresence(clock);
  return { presence, other: presence, clock, close: async () => {} };
});

commandQueueContract('memory', async () => {
  const clock = new ManualClock();
  const queue = new MemoryCommandQueue(clock, { retainMs: 120_000 });
  return { queue, other: queue, clock, retainMs: 120_000, redeliverAfterMs: 15_000, close: async () => {} };
});

registryContract('memory', async () => {
  const clock = new ManualClock();
  const registry = new MemoryRegistry(clock);
  return {
    registry,
    other: async () => registry,
    restart: async () => registry,
    clock,
    close: async () => {},
  };
});

registryContract('file', async () => {
  const clock = new ManualClock();
  const dir = await mkdtemp(join(tmpdir(), 'scanrelay-registry-'));
  let registry: Registry = await FileRegistry.open(dir, clock);
  return {
    get registry() {
      return registry;
    },
    other: async () => registry,
    restart: async () => {
      await registry.close();
      registry = await FileRegistry.open(dir, clock);
      return registry;
    },
    clock,
    close: async () => {
      await registry.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
