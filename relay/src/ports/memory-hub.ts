/**
 * MemoryHub — what several relay nodes in ONE process share when they run without Redis (tests): the bus
 * hub and one set of stores, like nodes sharing one Redis. Pass the same hub to each node's `createPorts`;
 * the first call creates the stores (the registry file lives in that node's data dir), later calls reuse
 * them. A node's `Ports.close()` detaches its bus only; `hub.close()` closes the shared stores.
 *
 * ```ts
 * const hub = new MemoryHub();
 * const a = await createRelay({ ..., memoryHub: hub });
 * const b = await createRelay({ ..., memoryHub: hub });
 * ```
 */
import { MemoryBusHub } from './bus-memory.js';
import type { CommandQueue } from './command-queue.js';
import type { EventLog } from './event-log.js';
import type { Presence } from './presence.js';
import type { Registry } from './registry.js';

export interface SharedStores {
  eventLog: EventLog;
  presence: Presence;
  commands: CommandQueue;
  registry: Registry;
}

export class MemoryHub {
  readonly bus = new MemoryBusHub();
  #stores: Promise<SharedStores> | undefined;

  /** The shared stores, created by `make` on first use. */
  stores(make: () => Promise<SharedStores>): Promise<SharedStores> {
    this.#stores ??= make();
    return this.#stores;
  }

  async close(): Promise<void> {
    const stores = await this.#stores?.catch(() => undefined);
    this.#stores = undefined;
    if (!stores) return;
    await Promise.all([stores.commands.close(), stores.presence.close(), stores.eventLog.close()]);
    await stores.registry.close();
  }
}
