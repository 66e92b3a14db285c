/**
 * One Redis (or Redis Cluster) connection shared by every Redis port of a node, with the failure behaviour
 * the relay needs:
 *
 * - **Fail fast, fail closed.** The offline queue is off and every command has a timeout, so while Redis is
 *   down or hung (SIGSTOP) calls reject within `commandTimeoutMs` with a `PortError('unavailable')` instead
 *   of piling up; the core refuses new authentication rather than trusting stale state.
 * - **No crash loop.** Reconnection is ioredis's, with capped exponential backoff and jitter; errors are
 *   logged (rate-limited), never thrown from an event handler.
 * - **Health proven by traffic.** `healthy()` is false unless the connection is ready AND the last PING,
 *   sent every `healthIntervalMs`, was answered in time (a paused Redis keeps its TCP socket open).
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { PortError } from './errors.js';
import { defineScripts, runScript, type ScriptName } from './redis-scripts.js';

export interface RedisConnectionOptions {
  /** One URL: a single Redis. Several: seed nodes of a Redis Cluster. */
  urls: string[];
  logger: Logger;
  /** Name shown in CLIENT LIST (`scanrelay:<node>`). */
  name: string;
  /** Per-command timeout, ms. Default 2000. */
  commandTimeoutMs?: number;
  /** Health PING interval, ms. Default 1000. */
  healthIntervalMs?: number;
  /** How long to wait for the first connection at start-up, ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Force cluster mode with a single seed URL. */
  cluster?: boolean;
}

export type RedisClient = Redis | Cluster;

/** Backoff for reconnects: 100 ms doubling to 5 s, with full jitter so nodes do not reconnect in lockstep. */
export function reconnectDelay(attempt: number): number {
  const cap = Math.min(5_000, 100 * 2 ** Math.min(attempt, 6));
  return Math.round(cap / 2 + Math.random() * (cap / 2));
}

function parseUrl(url: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`SCANRELAY_REDIS_URL entry ${JSON.stringify(url)} is not a URL; use redis://host:port`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new TypeError(`SCANRELAY_REDIS_URL entry ${redactUrl(url)} must start with redis:// or rediss://`);
  }
  return { host: u.hostname, port: Number(u.port || 6379) };
}

export class RedisConnection {
  readonly client: RedisClient;
  readonly isCluster: boolean;
  readonly #logger: Logger;
  readonly #options: RedisConnectionOptions;
  readonly #commandTimeoutMs: number;
  #pingOk = false;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #lastErrorLog = 0;
  #closed = false;

  private constructor(options: RedisConnectionOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 2_000;
    this.isCluster = options.cluster === true || options.urls.length > 1;
    this.client = this.#makeClient(false);
  }

  /** Connect, register scripts, start the health loop. Rejects (`unavailable`) if Redis cannot be reached. */
  static async open(options: RedisConnectionOptions): Promise<RedisConnection> {
    for (const url of options.urls) parseUrl(url);
    const conn = new RedisConnection(options);
    try {
      await conn.#waitReady(conn.client, options.connectTimeoutMs ?? 10_000);
      await conn.client.ping();
    } catch (err) {
      conn.client.disconnect();
      throw new PortError(
        'unavailable',
        `cannot reach Redis at ${options.urls.map(redactUrl).join(', ')} (SCANRELAY_REDIS_URL): ${(err as Error).message}; ` +
          'check the URL and that Redis is running, or unset SCANRELAY_REDIS_URL to run one embedded node',
        { cause: err },
      );
    }
    conn.#pingOk = true;
    conn.#pingTimer = setInterval(() => conn.#ping(), options.healthIntervalMs ?? 1_000);
    conn.#pingTimer.unref();
    return conn;
  }

  /**
   * A second connection for subscriber mode (pub/sub needs its own). On a cluster it subscribes through
   * sharded subscribers, one per master. Its offline queue is on: a (re)subscribe made while disconnected is
   * sent on reconnect, and ioredis re-subscribes every channel after a reconnect.
   */
  async subscriber(): Promise<RedisClient> {
    const sub = this.#makeClient(true);
    await this.#waitReady(sub, this.#options.connectTimeoutMs ?? 10_000);
    return sub;
  }

  healthy(): boolean {
    return !this.#closed && this.client.status === 'ready' && this.#pingOk;
  }

  /** Run a Redis call, turning any failure into `PortError('unavailable')` (a PortError passes through). */
  async call<T>(what: string, fn: (client: RedisClient) => Promise<T>): Promise<T> {
    try {
      return await fn(this.client);
    } catch (err) {
      if (err instanceof PortError) throw err;
      throw new PortError('unavailable', `Redis ${what} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Run one of the registered Lua scripts (see redis-scripts.ts). */
  script(name: ScriptName, keys: string[], args: (string | number)[]): Promise<unknown> {
    return this.call(name, (client) => runScript(client, name, keys, args));
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  #makeClient(subscriber: boolean): RedisClient {
    const common: RedisOptions = {
      connectionName: this.#options.name,
      lazyConnect: true,
      enableOfflineQueue: subscriber,
      commandTimeout: subscriber ? undefined : this.#commandTimeoutMs,
      connectTimeout: 5_000,
      maxRetriesPerRequest: subscriber ? null : 0,
      enableAutoPipelining: !subscriber,
      retryStrategy: reconnectDelay,
    };
    let client: RedisClient;
    if (this.isCluster) {
      client = new Cluster(
        this.#options.urls.map((u) => parseUrl(u)),
        {
          redisOptions: common,
          lazyConnect: true,
          enableOfflineQueue: subscriber,
          enableAutoPipelining: !subscriber,
          clusterRetryStrategy: reconnectDelay,
          shardedSubscribers: subscriber,
          slotsRefreshTimeout: 2_000,
        },
      );
    } else {
      client = new Redis(this.#options.urls[0]!, common);
    }
    if (!subscriber) defineScripts(client);
    client.on('error', (err: Error) => this.#logError(err, subscriber));
    client.on('ready', () => this.#logger.info({ subscriber }, 'Redis connection ready'));
    return client;
  }

  async #waitReady(client: RedisClient, timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        client.connect(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  #ping(): void {
    if (this.client.status !== 'ready') {
      this.#pingOk = false;
      return;
    }
    this.client.ping().then(
      () => {
        if (!this.#pingOk) this.#logger.info('Redis answers again; backends healthy');
        this.#pingOk = true;
      },
      (err: Error) => {
        if (this.#pingOk) {
          this.#logger.error(
            { err: err.message },
            'Redis did not answer PING in time: new authentications fail closed until it does; check the Redis server',
          );
        }
        this.#pingOk = false;
      },
    );
  }

  #logError(err: Error, subscriber: boolean): void {
    const now = Date.now();
    // ioredis emits an error per reconnect attempt: one line every 10 s is enough for an operator.
    if (now - this.#lastErrorLog < 10_000) return;
    this.#lastErrorLog = now;
    this.#logger.error(
      { err: err.message, subscriber },
      'Redis connection error; retrying with backoff. Calls fail closed until Redis is reachable (SCANRELAY_REDIS_URL)',
    );
  }
}

/** A Redis URL fit for a log or an error: user and password replaced, so credentials never reach a log. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username) u.username = '***';
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
