/**
 * A Clock whose time only moves when a test says so. Timers fire synchronously inside `advance`, in due
 * order. Starts at the real time so Redis-side TTL backstops computed from it stay sensible.
 */
import type { Clock, Timer } from '../../src/clock.js';

interface Pending {
  id: number;
  due: number;
  fn: () => void;
  every?: number;
}

export class ManualClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, Pending>();

  constructor(start: number = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const id = this.#nextId++;
    this.#timers.set(id, { id, due: this.#now + ms, fn });
    return id as unknown as Timer;
  }

  clearTimeout(timer: Timer): void {
    this.#timers.delete(timer as unknown as number);
  }

  setInterval(fn: () => void, ms: number): Timer {
    const id = this.#nextId++;
    this.#timers.set(id, { id, due: this.#now + ms, fn, every: Math.max(1, ms) });
    return id as unknown as Timer;
  }

  clearInterval(timer: Timer): void {
    this.#timers.delete(timer as unknown as number);
  }

  /** Move time forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let next: Pending | undefined;
      for (const t of this.#timers.values()) if (t.due <= target && (!next || t.due < next.due)) next = t;
      if (!next) break;
      this.#now = next.due;
      if (next.every) next.due += next.every;
      else this.#timers.delete(next.id);
      next.fn();
    }
    this.#now = target;
  }
}
