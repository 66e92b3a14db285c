/**
 * Redis CommandQueue.
 *
 * | key               | type   | holds                                                                    |
 * |-------------------|--------|--------------------------------------------------------------------------|
 * | `sr:{cmdq}:cmd:<jti>` | hash | `r` record JSON, `k` keep-until (ms), `s` latest state; PEXPIRE backstop |
 * | `sr:{cmdq}:q`     | zset   | held commands, members `<gateway>\|<counter>\|<jti>` (lex order = age)    |
 * | `sr:{cmdq}:exp`   | zset   | held jti → token expiry (ms), for the exactly-once reap                   |
 * | `sr:{cmdq}:m`     | hash   | held jti → its queue member                                              |
 * | `sr:{cmdq}:rec`   | hash   | held jti → record JSON (so take returns records in the same script)       |
 * | `sr:{cmdq}:ctr`   | string | queue order counter                                                      |
 * | `sr:{cmdq}:take:<id>` | list | one take's result for a minute (a retry after a lost reply gets it) |
 * | `sr:{cmdq}:open`  | zset   | jti → token expiry of every command without a terminal state (reapOverdue → `timed_out`) |
 * | `sr:{cmdq}:inflight` / `:inrec` | zset / hash | taken, not yet acknowledged by a gateway state: redelivery deadline, `<gw> <exp> <record>` |
 *
 * Claim-once is a Lua check of `k` against the node clock (so retention follows the injected clock exactly
 * like the memory queue; the PEXPIRE is only the garbage collector). Every key shares the `{cmdq}` hash tag:
 * one cluster slot, so claim+hold, take, reap and drop are single scripts and each held command goes to
 * exactly one of take, reap or drop. The volume is one record per command, small for one shard.
 */
import { randomBytes } from 'node:crypto';
import { type CommandState, GATEWAY_STATES, TERMINAL_STATES } from '@scanrelay/protocol';
import type { Clock } from '../clock.js';
import type { ClaimResult, CommandQueue, CommandRecord, HoldResult } from './command-queue.js';
import {
  type CommandQueueOptions,
  DEFAULT_COMMAND_RETAIN_MS,
  DEFAULT_REDELIVER_AFTER_MS,
  validateRecord,
} from './command-queue-memory.js';
import { PortError } from './errors.js';
import { assertCommandId, assertId } from './ids.js';
import type { RedisConnection } from './redis-connection.js';

const Q = 'sr:{cmdq}';
const HELD = [`${Q}:q`, `${Q}:exp`, `${Q}:m`, `${Q}:rec`];
const COUNTER = `${Q}:ctr`;
const IN_FLIGHT = [`${Q}:inflight`, `${Q}:inrec`];
/** zset: jti → token expiry of every command without a terminal state yet (reapOverdue). */
const OPEN = `${Q}:open`;
/** Redis keeps a record this long past its keep-until, in case node clocks disagree a little. */
const TTL_SLACK_MS = 60 * 60 * 1000;
const REAP_BATCH = 500;
/** How long a take's result is kept for a retry after a lost reply. */
const TAKE_RESULT_TTL_MS = 60_000;
/** Most commands one reapOverdue call ends (the next maintenance pass takes the rest). */
const OVERDUE_BATCH = 500;
/** How long take retries while Redis is unreachable before giving up. */
const TAKE_RETRY_MS = 10_000;

export function commandKey(jti: string): string {
  return `${Q}:cmd:${jti}`;
}

export class RedisCommandQueue implements CommandQueue {
  readonly #conn: RedisConnection;
  readonly #clock: Clock;
  readonly #retainMs: number;
  readonly #redeliverAfterMs: number;

  constructor(conn: RedisConnection, clock: Clock, options: CommandQueueOptions = {}) {
    this.#conn = conn;
    this.#clock = clock;
    this.#retainMs = options.retainMs ?? DEFAULT_COMMAND_RETAIN_MS;
    this.#redeliverAfterMs = options.redeliverAfterMs ?? DEFAULT_REDELIVER_AFTER_MS;
  }

  async claim(record: CommandRecord, hold?: { maxDepth: number }): Promise<ClaimResult> {
    validateRecord(record);
    const now = this.#clock.now();
    const keep = Math.max(record.expiresAt, now) + this.#retainMs;
    const [result, depth] = (await this.#conn.script(
      'command-claim',
      [commandKey(record.command), ...HELD, COUNTER, OPEN],
      [
        JSON.stringify(record),
        keep,
        now,
        record.state,
        keep - now + TTL_SLACK_MS,
        record.gateway,
        record.command,
        record.expiresAt,
        hold ? hold.maxDepth : '',
      ],
    )) as [number, number?];
    if (Number(result) === 1) return { ok: true };
    if (Number(result) === 2) return { ok: false, reason: 'full', depth: Number(depth) };
    return { ok: false, reason: 'duplicate' };
  }

  async get(command: string): Promise<CommandRecord | undefined> {
    assertCommandId(command, 'command id');
    const [json, keep, state] = await this.#conn.call('get command', (c) =>
      c.hmget(commandKey(command), 'r', 'k', 's'),
    );
    if (json === null || keep === null || Number(keep) <= this.#clock.now()) return undefined;
    const record = parseRecord(json);
    if (state !== null) record.state = state as CommandState;
    return record;
  }

  async setState(command: string, state: CommandState): Promise<boolean> {
    assertCommandId(command, 'command id');
    const updated = await this.#conn.script(
      'command-set-state',
      [commandKey(command), ...IN_FLIGHT, OPEN],
      [
        state,
        this.#clock.now(),
        this.#retainMs,
        TTL_SLACK_MS,
        GATEWAY_STATES.has(state) ? '1' : '',
        TERMINAL_STATES.has(state) ? '1' : '',
      ],
    );
    return Number(updated) === 1;
  }

  async reapOverdue(cutoff: number): Promise<CommandRecord[]> {
    const reply = (await this.#conn.script(
      'command-reap-overdue',
      [OPEN, ...IN_FLIGHT, ...HELD],
      [cutoff, OVERDUE_BATCH, `${Q}:cmd:`],
    )) as string[];
    return reply.map((json) => ({ ...parseRecord(json), state: 'timed_out' as const }));
  }

  async hold(command: string, gateway: string, expiresAt: number, maxDepth: number): Promise<HoldResult> {
    assertCommandId(command, 'command id');
    assertId(gateway, 'gateway');
    const record = await this.get(command);
    if (!record) throw new PortError('unknown_command', `hold: command ${command} was never claimed`);
    const [ok, depth] = (await this.#conn.script(
      'held-hold',
      [...HELD, COUNTER],
      [gateway, command, expiresAt, maxDepth, this.#clock.now(), JSON.stringify(record)],
    )) as [number, number];
    return Number(ok) === 1 ? { ok: true, depth: Number(depth) } : { ok: false, reason: 'full', depth: Number(depth) };
  }

  async take(gateway: string, now: number): Promise<CommandRecord[]> {
    assertId(gateway, 'gateway');
    // One id per call: a retry after a lost reply returns what the first execution took (held-take.lua).
    const resultKey = `${Q}:take:${randomBytes(12).toString('hex')}`;
    const reply = (await this.#retryUnavailable(() =>
      this.#conn.script(
        'held-take',
        [...HELD, resultKey, ...IN_FLIGHT],
        [gateway, now, TAKE_RESULT_TTL_MS, this.#redeliverAfterMs],
      ),
    )) as string[];
    return this.#withCurrentState(reply);
  }

  async reapExpired(now: number): Promise<CommandRecord[]> {
    const out: CommandRecord[] = [];
    for (;;) {
      const reply = (await this.#conn.script(
        'held-reap',
        [...HELD, COUNTER, ...IN_FLIGHT],
        [now, REAP_BATCH],
      )) as string[];
      out.push(...(await this.#withCurrentState(reply)));
      if (reply.length < REAP_BATCH) return out;
    }
  }

  async dropGateway(gateway: string): Promise<CommandRecord[]> {
    assertId(gateway, 'gateway');
    const reply = (await this.#conn.script('held-drop', [...HELD, ...IN_FLIGHT], [gateway])) as string[];
    return this.#withCurrentState(reply);
  }

  async depth(gateway: string): Promise<number> {
    assertId(gateway, 'gateway');
    return Number(await this.#conn.script('held-depth', HELD.slice(0, 2), [gateway, this.#clock.now()]));
  }

  async close(): Promise<void> {}

  /**
   * Run an idempotent call, retrying while the backend is unavailable (a lost reply must not lose the
   * commands it carried), for up to TAKE_RETRY_MS; then give up with the error.
   */
  async #retryUnavailable<T>(call: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + TAKE_RETRY_MS;
    for (let delay = 100; ; delay = Math.min(delay * 2, 1_000)) {
      try {
        return await call();
      } catch (err) {
        if (!(err instanceof PortError) || err.code !== 'unavailable' || Date.now() + delay > deadline) throw err;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Held copies carry the state at hold time; overlay the latest recorded state (best effort). */
  async #withCurrentState(jsons: string[]): Promise<CommandRecord[]> {
    const records = jsons.map(parseRecord);
    if (records.length === 0) return records;
    const states = await Promise.all(
      records.map((r) =>
        this.#conn.call('get command state', (c) => c.hget(commandKey(r.command), 's')).catch(() => null),
      ),
    );
    records.forEach((r, i) => {
      const s = states[i];
      if (typeof s === 'string') r.state = s as CommandState;
    });
    return records;
  }
}

function parseRecord(json: string): CommandRecord {
  try {
    return JSON.parse(json) as CommandRecord;
  } catch (err) {
    throw new PortError('corrupt', 'a command record in Redis is not valid JSON', { cause: err });
  }
}
