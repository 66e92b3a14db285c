/**
 * Full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff And Jitter"): the delay before
 * attempt n is uniform in [0, min(max, base · 2ⁿ)], so many gateways cut off by one relay restart do not
 * reconnect in lock-step.
 */
export interface BackoffOptions {
  /** First ceiling, ms (default 500). */
  baseMs?: number;
  /** Largest ceiling, ms (default 30 000). */
  maxMs?: number;
  /** Uniform random in [0, 1) (injectable for tests). */
  random?: () => number;
}

export class Backoff {
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? 500;
    this.maxMs = opts.maxMs ?? 30_000;
    this.random = opts.random ?? Math.random;
  }

  /** Failed attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The ceiling for the next delay, ms. */
  ceiling(): number {
    // 2 ** 30 already dwarfs any sane maxMs; capping the exponent avoids Infinity.
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
  }

  /** Delay before the next attempt, ms; counts one more failed attempt. */
  next(): number {
    const delay = Math.floor(this.random() * this.ceiling());
    this.attempt++;
    return delay;
  }

  /** A uniform delay in [0, maxMs) that does not count as an attempt (e.g. after a 1001 node shutdown). */
  jitter(maxMs: number): number {
    return Math.floor(this.random() * maxMs);
  }

  reset(): void {
    this.attempt = 0;
  }
}
