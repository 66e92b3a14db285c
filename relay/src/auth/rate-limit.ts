/**
 * Fixed-window request limiter keyed by a string (client IP, or one shared key for a global limit), with a cap
 * on how many keys it tracks so a spray from many addresses cannot grow memory without bound.
 */
import type { Clock } from '../clock.js';

export interface LimitDecision {
  ok: boolean;
  /** Seconds until the current window ends (for `Retry-After`) when refused. */
  retryAfterS: number;
}

export class WindowLimiter {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #clock: Clock;
  readonly #windows = new Map<string, { start: number; count: number }>();

  constructor(opts: { limit: number; windowMs: number; clock: Clock; maxKeys?: number }) {
    this.#limit = opts.limit;
    this.#windowMs = opts.windowMs;
    this.#clock = opts.clock;
    this.#maxKeys = opts.maxKeys ?? 10_000;
  }

  /** Count one request for `key`; refused once `limit` requests were counted in the current window. */
  take(key: string): LimitDecision {
    const now = this.#clock.now();
    let w = this.#windows.get(key);
    if (w && now - w.start >= this.#windowMs) {
      this.#windows.delete(key);
      w = undefined;
    }
    if (!w) {
      if (this.#windows.size >= this.#maxKeys) this.#sweep(now);
      // Still full of live windows: refuse rather than forget someone's count.
      if (this.#windows.size >= this.#maxKeys) return { ok: false, retryAfterS: Math.ceil(this.#windowMs / 1000) };
      w = { start: now, count: 0 };
      this.#windows.set(key, w);
    }
    const retryAfterS = Math.max(1, Math.ceil((w.start + this.#windowMs - now) / 1000));
    if (w.count >= this.#limit) return { ok: false, retryAfterS };
    w.count += 1;
    return { ok: true, retryAfterS };
  }

  #sweep(now: number): void {
    for (const [key, w] of this.#windows) if (now - w.start >= this.#windowMs) this.#windows.delete(key);
  }
}
