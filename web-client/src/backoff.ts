/**
 * Full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff And Jitter"): the delay before
 * attempt n is uniform in [0, min(max, initial · 2ⁿ)], so a relay restart does not see every browser come back
 * in the same instant.
 */
export interface BackoffOptions {
  /** Ceiling of the first delay, ms. Default 500. */
  initialDelayMs?: number;
  /** Largest ceiling, ms. Default 30,000. */
  maxDelayMs?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = Object.freeze({ initialDelayMs: 500, maxDelayMs: 30_000 });

/** Delay before retry number `attempt` (0-based), given a uniform random number in [0, 1). */
export function fullJitterDelay(attempt: number, random: number, opts: Required<BackoffOptions>): number {
  // 2^30 already exceeds any sane ceiling; capping the exponent keeps the product finite.
  const ceiling = Math.min(opts.maxDelayMs, opts.initialDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random * ceiling);
}
