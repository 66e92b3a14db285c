/**
 * Redis Bus: PUBLISH/SUBSCRIBE on one Redis, sharded SPUBLISH/SSUBSCRIBE on a Redis Cluster (a message then
 * only travels to the shard that owns its channel, not to every node of the cluster).
 *
 * Commands go on the shared connection; subscriptions on a dedicated subscriber connection, one Redis
 * subscription per channel per node. Channel `<c>` travels as `sr:{<c>}:bus`, so `site:<id>` hashes with the
 * site's keys (`sr:{site:<id>}:…`) to the same cluster slot.
 *
 * Payloads are JSON. What arrives is parsed defensively: oversized, non-JSON, or not an object with a string
 * `kind` → logged (without the payload) and dropped, never thrown.
 */
import type { Logger } from 'pino';
import type { Bus, BusHandler, BusPayload } from './bus.js';
import { PortError } from './errors.js';
import { assertChannel } from './ids.js';
import type { RedisClient, RedisConnection } from './redis-connection.js';

/** Largest bus message accepted, bytes. */
export const MAX_BUS_MESSAGE_BYTES = 1024 * 1024;

export function busChannel(channel: string): string {
  return `sr:{${channel}}:bus`;
}

export class RedisBus implements Bus {
  readonly #conn: RedisConnection;
  readonly #logger: Logger;
  readonly #handlers = new Map<string, BusHandler>();
  readonly #reconnectListeners: (() => void)[] = [];
  readonly #disconnectListeners: (() => void)[] = [];
  #sub: RedisClient | undefined;
  #subReady: Promise<RedisClient> | undefined;
  #closed = false;
  /** Subscribe/unsubscribe run one at a time so Redis ends in the state of the last call. */
  #chain: Promise<unknown> = Promise.resolve();

  constructor(conn: RedisConnection, logger: Logger) {
    this.#conn = conn;
    this.#logger = logger;
  }

  async publish(channel: string, payload: BusPayload): Promise<void> {
    assertChannel(channel);
    if (this.#closed) throw new PortError('unavailable', 'bus is closed');
    const message = JSON.stringify(payload);
    if (Buffer.byteLength(message) > MAX_BUS_MESSAGE_BYTES) {
      throw new PortError(
        'invalid_id',
        `bus message of kind ${payload.kind} is larger than ${MAX_BUS_MESSAGE_BYTES} bytes`,
      );
    }
    const target = busChannel(channel);
    await this.#conn.call('publish', (c) =>
      this.#conn.isCluster ? (c as RedisClient).spublish(target, message) : c.publish(target, message),
    );
  }

  async subscribe(channel: string, handler: BusHandler): Promise<void> {
    assertChannel(channel);
    return this.#serial(async () => {
      if (this.#closed) return;
      const known = this.#handlers.has(channel);
      this.#handlers.set(channel, handler);
      if (known) return;
      const sub = await this.#subscriber();
      const target = busChannel(channel);
      try {
        await withTimeout(this.#conn.isCluster ? sub.ssubscribe(target) : sub.subscribe(target), 3_000);
      } catch (err) {
        // The subscribe stays queued on the subscriber connection and is sent when Redis is back; the
        // caller learns now that delivery is not established yet.
        throw new PortError('unavailable', `Redis subscribe to ${channel} not confirmed: ${(err as Error).message}`, {
          cause: err,
        });
      }
    });
  }

  async unsubscribe(channel: string): Promise<void> {
    return this.#serial(async () => {
      if (!this.#handlers.delete(channel) || !this.#sub) return;
      const target = busChannel(channel);
      const sub = this.#sub;
      await withTimeout(this.#conn.isCluster ? sub.sunsubscribe(target) : sub.unsubscribe(target), 3_000).catch(
        (err: Error) => {
          // Harmless: messages for a channel without a handler are ignored, and the reconnect resubscribe of
          // ioredis no longer includes it once the command is processed.
          this.#logger.warn({ channel, err: err.message }, 'Redis unsubscribe not confirmed');
        },
      );
    });
  }

  onReconnect(listener: () => void): void {
    this.#reconnectListeners.push(listener);
  }

  onDisconnect(listener: () => void): void {
    this.#disconnectListeners.push(listener);
  }

  healthy(): boolean {
    return !this.#closed && this.#conn.healthy() && (this.#sub === undefined || this.#sub.status === 'ready');
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#handlers.clear();
    const sub = this.#sub ?? (await this.#subReady?.catch(() => undefined));
    this.#sub = undefined;
    if (sub) {
      try {
        await withTimeout(sub.quit(), 2_000);
      } catch {
        sub.disconnect();
      }
    }
  }

  #notify(listeners: (() => void)[], what: string): void {
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        this.#logger.error({ err, what }, 'bus connection listener threw');
      }
    }
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn);
    this.#chain = run.catch(() => {});
    return run;
  }

  #subscriber(): Promise<RedisClient> {
    this.#subReady ??= this.#conn.subscriber().then((sub) => {
      const onMessage = (target: string, message: string): void => this.#deliver(target, message);
      sub.on(this.#conn.isCluster ? 'smessage' : 'message', onMessage);
      // Single Redis: `close` / `ready` (ioredis emits `ready` before it re-subscribes). Cluster: a shard's
      // subscriber ending is `-node`; the group having re-subscribed is `subscribersReady`.
      let lost = false;
      sub.on(this.#conn.isCluster ? '-node' : 'close', () => {
        if (lost || this.#closed) return;
        lost = true;
        this.#notify(this.#disconnectListeners, 'disconnect');
      });
      sub.on(this.#conn.isCluster ? 'subscribersReady' : 'ready', () => {
        if (!lost || this.#closed) return;
        lost = false;
        this.#logger.warn('Redis bus reconnected: messages published meanwhile may be lost; subscribers catch up');
        this.#notify(this.#reconnectListeners, 'reconnect');
      });
      this.#sub = sub;
      return sub;
    });
    this.#subReady.catch(() => {
      this.#subReady = undefined;
    });
    return this.#subReady;
  }

  #deliver(target: string, message: string): void {
    // target is `sr:{<channel>}:bus`.
    const channel = target.slice(4, -5);
    const handler = this.#handlers.get(channel);
    if (!handler) return;
    const payload = parsePayload(message);
    if (!payload) {
      this.#logger.warn({ channel, bytes: message.length }, 'dropped a malformed bus message');
      return;
    }
    try {
      handler(payload);
    } catch (err) {
      this.#logger.error({ err, channel, kind: payload.kind }, 'bus handler threw; message dropped for this node');
    }
  }
}

/** A bus payload, or undefined if `message` is not one. */
export function parsePayload(message: string): BusPayload | undefined {
  if (message.length > MAX_BUS_MESSAGE_BYTES) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  if (typeof (value as { kind?: unknown }).kind !== 'string') return undefined;
  return value as BusPayload;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
