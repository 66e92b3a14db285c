/**
 * In-memory CommandQueue: command records by `jti` (claim-once) and, per offline gateway, the ordered list of
 * held commands. Everything a caller gets back is a copy, as it would be from Redis.
 *
 * Retention: a record is kept until `max(expiresAt, last state change) + retainMs` (default 10 min), so a
 * replayed `jti` is refused for at least the token's lifetime (plus the verifier's clock tolerance) and a
 * long-running command's late statuses (a C-MOVE can outlast its token) still route back to their browser.
 * Expired records are purged lazily on access and by `reapExpired`.
 */
import { type CommandState, GATEWAY_STATES, TERMINAL_STATES } from '@scanrelay/protocol';
import type { Clock } from '../clock.js';
import type { ClaimResult, CommandQueue, CommandRecord, HoldResult } from './command-queue.js';
import { PortError } from './errors.js';
import { assertCommandId, assertId } from './ids.js';

export interface CommandQueueOptions {
  /** How long a record outlives its token expiry or its last state change, ms. Default 10 min. */
  retainMs?: number;
  /**
   * A taken command that no gateway state (GATEWAY_STATES) has been recorded for within this long is held
   * again by `reapExpired` (the node that took it may have died before writing it). Default 15 s.
   */
  redeliverAfterMs?: number;
}

export const DEFAULT_COMMAND_RETAIN_MS = 10 * 60 * 1000;
export const DEFAULT_REDELIVER_AFTER_MS = 15_000;

interface Entry {
  record: CommandRecord;
  keepUntil: number;
}

interface Held {
  command: string;
  expiresAt: number;
}

export class MemoryCommandQueue implements CommandQueue {
  readonly #clock: Clock;
  readonly #retainMs: number;
  readonly #records = new Map<string, Entry>();
  /** gateway → held commands, oldest first. */
  readonly #held = new Map<string, Held[]>();
  /** Taken, not yet acknowledged by a gateway state: jti → lease deadline. */
  readonly #inFlight = new Map<string, { gateway: string; expiresAt: number; deadline: number }>();
  readonly #redeliverAfterMs: number;
  /** Commands without a terminal state yet: jti → token expiry (what reapOverdue scans; bounded by those live). */
  readonly #open = new Map<string, number>();

  constructor(clock: Clock, options: CommandQueueOptions = {}) {
    this.#clock = clock;
    this.#retainMs = options.retainMs ?? DEFAULT_COMMAND_RETAIN_MS;
    this.#redeliverAfterMs = options.redeliverAfterMs ?? DEFAULT_REDELIVER_AFTER_MS;
  }

  async claim(record: CommandRecord, hold?: { maxDepth: number }): Promise<ClaimResult> {
    validateRecord(record);
    const existing = this.#live(record.command);
    if (existing) return { ok: false, reason: 'duplicate' };
    if (hold) {
      const depth = countLive(this.#held.get(record.gateway) ?? [], this.#clock.now());
      if (depth >= hold.maxDepth) return { ok: false, reason: 'full', depth };
    }
    this.#records.set(record.command, {
      record: clone(record),
      keepUntil: Math.max(record.expiresAt, this.#clock.now()) + this.#retainMs,
    });
    if (hold) this.#queue(record.gateway).push({ command: record.command, expiresAt: record.expiresAt });
    if (!TERMINAL_STATES.has(record.state)) this.#open.set(record.command, record.expiresAt);
    return { ok: true };
  }

  async get(command: string): Promise<CommandRecord | undefined> {
    assertCommandId(command, 'command id');
    const entry = this.#live(command);
    return entry ? clone(entry.record) : undefined;
  }

  async setState(command: string, state: CommandState): Promise<boolean> {
    assertCommandId(command, 'command id');
    const entry = this.#live(command);
    if (!entry || TERMINAL_STATES.has(entry.record.state)) return false;
    entry.record.state = state;
    entry.keepUntil = Math.max(entry.keepUntil, this.#clock.now() + this.#retainMs);
    if (GATEWAY_STATES.has(state)) this.#inFlight.delete(command);
    if (TERMINAL_STATES.has(state)) this.#open.delete(command);
    return true;
  }

  async reapOverdue(cutoff: number): Promise<CommandRecord[]> {
    const overdue: CommandRecord[] = [];
    for (const [command, expiresAt] of this.#open) {
      if (expiresAt > cutoff) continue;
      this.#open.delete(command);
      const entry = this.#live(command);
      if (!entry || TERMINAL_STATES.has(entry.record.state)) continue;
      entry.record.state = 'timed_out';
      this.#inFlight.delete(command);
      for (const [gateway, queue] of this.#held) {
        const kept = queue.filter((h) => h.command !== command);
        if (kept.length !== queue.length) this.#setQueue(gateway, kept);
      }
      overdue.push(clone(entry.record));
    }
    return overdue;
  }

  async hold(command: string, gateway: string, expiresAt: number, maxDepth: number): Promise<HoldResult> {
    assertCommandId(command, 'command id');
    assertId(gateway, 'gateway');
    if (!this.#live(command)) throw new PortError('unknown_command', `hold: command ${command} was never claimed`);
    const queue = this.#queue(gateway);
    const now = this.#clock.now();
    if (queue.some((h) => h.command === command)) return { ok: true, depth: countLive(queue, now) };
    const depth = countLive(queue, now);
    if (depth >= maxDepth) return { ok: false, reason: 'full', depth };
    queue.push({ command, expiresAt });
    return { ok: true, depth: depth + 1 };
  }

  async take(gateway: string, now: number): Promise<CommandRecord[]> {
    assertId(gateway, 'gateway');
    const queue = this.#held.get(gateway);
    if (!queue) return [];
    const taken: CommandRecord[] = [];
    const kept: Held[] = [];
    for (const held of queue) {
      // Expired ones stay for reapExpired, which reports them `expired` to their senders.
      if (held.expiresAt <= now) kept.push(held);
      else {
        this.#pushRecord(taken, held.command);
        this.#inFlight.set(held.command, {
          gateway,
          expiresAt: held.expiresAt,
          deadline: now + this.#redeliverAfterMs,
        });
      }
    }
    this.#setQueue(gateway, kept);
    return taken;
  }

  async reapExpired(now: number): Promise<CommandRecord[]> {
    const reaped: CommandRecord[] = [];
    // Taken but never acknowledged: hold again (or, if its token ran out meanwhile, report it expired).
    for (const [command, f] of this.#inFlight) {
      if (f.deadline > now) continue;
      this.#inFlight.delete(command);
      if (f.expiresAt <= now) this.#pushRecord(reaped, command);
      else if (!this.#queue(f.gateway).some((h) => h.command === command)) {
        this.#queue(f.gateway).push({ command, expiresAt: f.expiresAt });
      }
    }
    for (const [gateway, queue] of this.#held) {
      const kept: Held[] = [];
      for (const held of queue) {
        if (held.expiresAt <= now) this.#pushRecord(reaped, held.command);
        else kept.push(held);
      }
      this.#setQueue(gateway, kept);
    }
    const clockNow = this.#clock.now();
    for (const [command, entry] of this.#records) if (entry.keepUntil <= clockNow) this.#records.delete(command);
    return reaped;
  }

  async dropGateway(gateway: string): Promise<CommandRecord[]> {
    assertId(gateway, 'gateway');
    const queue = this.#held.get(gateway) ?? [];
    this.#held.delete(gateway);
    const dropped: CommandRecord[] = [];
    for (const held of queue) this.#pushRecord(dropped, held.command);
    for (const [command, f] of this.#inFlight) if (f.gateway === gateway) this.#inFlight.delete(command);
    return dropped;
  }

  async depth(gateway: string): Promise<number> {
    assertId(gateway, 'gateway');
    return countLive(this.#held.get(gateway) ?? [], this.#clock.now());
  }

  async close(): Promise<void> {}

  #live(command: string): Entry | undefined {
    const entry = this.#records.get(command);
    if (entry && entry.keepUntil <= this.#clock.now()) {
      this.#records.delete(command);
      return undefined;
    }
    return entry;
  }

  #pushRecord(out: CommandRecord[], command: string): void {
    // A held command always has a record: records outlive their token expiry by retainMs.
    const entry = this.#records.get(command);
    if (entry) out.push(clone(entry.record));
  }

  #queue(gateway: string): Held[] {
    let queue = this.#held.get(gateway);
    if (!queue) {
      queue = [];
      this.#held.set(gateway, queue);
    }
    return queue;
  }

  #setQueue(gateway: string, queue: Held[]): void {
    if (queue.length === 0) this.#held.delete(gateway);
    else this.#held.set(gateway, queue);
  }
}

function countLive(queue: Held[], now: number): number {
  let n = 0;
  for (const held of queue) if (held.expiresAt > now) n++;
  return n;
}

export function validateRecord(record: CommandRecord): void {
  assertCommandId(record.command, 'command id (jti)');
  assertId(record.gateway, 'command gateway');
  assertId(record.site, 'command site');
  if (!Number.isSafeInteger(record.expiresAt)) throw new PortError('invalid_id', 'command expiresAt must be ms epoch');
}

function clone(record: CommandRecord): CommandRecord {
  return { ...record, origin: { ...record.origin } };
}
