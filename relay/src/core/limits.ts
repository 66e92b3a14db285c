/**
 * Small, allocation-free limiters used per connection and per node.
 */
import type { Clock } from '../clock.js';

/**
 * Token bucket: `rate` tokens per second, holding at most `burst`. `take()` spends one token if there is
 * one. Refill is computed lazily from the clock, so an idle connection costs nothing.
 */
export class TokenBucket {
  #tokens: number;
  #last: number;
  constructor(
    private readonly clock: Clock,
    private readonly rate: number,
    private readonly burst: number,
  ) {
    this.#tokens = burst;
    this.#last = clock.now();
  }

  take(): boolean {
    const now = this.clock.now();
    const elapsed = now - this.#last;
    if (elapsed > 0) {
      this.#tokens = Math.min(this.burst, this.#tokens + (elapsed * this.rate) / 1000);
      this.#last = now;
    }
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    return false;
  }
}

/** Counts open things per key (IP, user) and refuses past a cap. Keys with a zero count are dropped. */
export class KeyedCounter {
  readonly #counts = new Map<string, number>();
  constructor(private readonly max: number) {}

  /** Whether one more would still be within the cap. */
  hasRoom(key: string): boolean {
    return (this.#counts.get(key) ?? 0) < this.max;
  }

  increment(key: string): void {
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  decrement(key: string): void {
    const n = (this.#counts.get(key) ?? 0) - 1;
    if (n <= 0) this.#counts.delete(key);
    else this.#counts.set(key, n);
  }

  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }
}
