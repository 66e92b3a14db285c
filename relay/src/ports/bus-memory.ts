/**
 * In-memory Bus: an EventEmitter hub shared by every MemoryBus attached to it. One relay node uses its own
 * hub; several nodes in one process (tests) share one `MemoryHub` and behave like nodes on one Redis.
 *
 * Delivery is asynchronous (a microtask after `publish`), in publish order, like a pub/sub backend: a
 * publisher never re-enters its own handler synchronously. Handlers receive the published object itself and
 * must not mutate it (other nodes in the process see the same object).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Bus, BusHandler, BusPayload } from './bus.js';
import { assertChannel } from './ids.js';

/** The process-wide half of the memory bus: where MemoryBus instances meet. */
export class MemoryBusHub {
  readonly emitter = new EventEmitter();
  constructor() {
    // Many nodes × many channels in tests; the default warning at 10 listeners would be noise.
    this.emitter.setMaxListeners(0);
  }
}

export class MemoryBus implements Bus {
  readonly #hub: MemoryBusHub;
  readonly #logger: Logger | undefined;
  readonly #listeners = new Map<string, (payload: BusPayload) => void>();
  #closed = false;

  constructor(hub: MemoryBusHub = new MemoryBusHub(), logger?: Logger) {
    this.#hub = hub;
    this.#logger = logger;
  }

  async publish(channel: string, payload: BusPayload): Promise<void> {
    assertChannel(channel);
    if (this.#closed) return;
    queueMicrotask(() => this.#hub.emitter.emit(channel, payload));
  }

  async subscribe(channel: string, handler: BusHandler): Promise<void> {
    assertChannel(channel);
    if (this.#closed) return;
    const previous = this.#listeners.get(channel);
    if (previous) this.#hub.emitter.off(channel, previous);
    const listener = (payload: BusPayload): void => {
      try {
        handler(payload);
      } catch (err) {
        // A handler bug must not stop delivery to the other nodes sharing the hub.
        this.#logger?.error({ err, channel, kind: payload.kind }, 'bus handler threw; message dropped for this node');
      }
    };
    this.#listeners.set(channel, listener);
    this.#hub.emitter.on(channel, listener);
  }

  async unsubscribe(channel: string): Promise<void> {
    const listener = this.#listeners.get(channel);
    if (!listener) return;
    this.#listeners.delete(channel);
    this.#hub.emitter.off(channel, listener);
  }

  healthy(): boolean {
    return !this.#closed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const [channel, listener] of this.#listeners) this.#hub.emitter.off(channel, listener);
    this.#listeners.clear();
  }
}
