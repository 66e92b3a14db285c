/**
 * Bus — cross-node publish/subscribe and node-addressed delivery.
 *
 * Channels used by the core (names are built only from validated ids, never from raw input):
 *
 * | channel            | carries                                                             |
 * |--------------------|---------------------------------------------------------------------|
 * | `site:<site>`      | events, presence changes and command states for a site's watchers  |
 * | `node:<node>`      | messages for one node (command deliveries, statuses for its browsers)|
 * | `control`          | revocations, session kills, gateway replacement (every node)        |
 *
 * Implementations: `bus-memory.ts` (EventEmitter; one process) and `bus-redis.ts` (PUB/SUB; sharded
 * SPUBLISH/SSUBSCRIBE on Redis Cluster). A node holds at most one subscription per channel however many
 * local sockets watch it; the core fans out locally.
 *
 * Delivery is at-most-once and may be lost (Redis pub/sub): anything that must not be lost is also written to
 * a durable port (EventLog, CommandQueue, Registry) and re-checked by a sweep.
 */
export type BusPayload = { readonly kind: string } & Record<string, unknown>;

export type BusHandler = (payload: BusPayload) => void;

export interface Bus {
  /** Publish to every node subscribed to `channel`, this one included. Resolves once handed to the backend. */
  publish(channel: string, payload: BusPayload): Promise<void>;
  /** Start receiving a channel. A second subscribe to the same channel replaces the handler. */
  subscribe(channel: string, handler: BusHandler): Promise<void>;
  /** Stop receiving a channel. Unknown channels are ignored. */
  unsubscribe(channel: string): Promise<void>;
  /**
   * Register `listener` to be called when the backend connection was lost and is back: messages published in
   * between may have been lost, so a subscriber re-reads what it can from the durable ports. Called
   * synchronously when the connection is restored, before any message arrives through the restored
   * subscriptions (so a listener can switch to buffering first). Optional: the memory Bus never reconnects.
   */
  onReconnect?(listener: () => void): void;
  /**
   * Register `listener` to be called when the backend connection (or, on a cluster, one shard's subscriber)
   * is lost, so a subscriber can start buffering before anything of the restored subscriptions arrives; an
   * `onReconnect` call follows when it is back. Optional, like `onReconnect`.
   */
  onDisconnect?(listener: () => void): void;
  /** True while the backend is reachable (memory: always). Used by /readyz. */
  healthy(): boolean;
  close(): Promise<void>;
}
