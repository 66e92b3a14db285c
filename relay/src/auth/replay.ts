/**
 * A bounded "seen once" set with expiry: each id is remembered until its token expires, then forgotten.
 * Used for gateway-assertion `jti`s (single use within their ≤ 60 s lifetime). Memory is capped: when the set
 * is full of unexpired ids, new ids are refused (fail closed) rather than evicting live ones, which would let
 * an evicted token be replayed.
 */
export class ReplayGuard {
  readonly #seen = new Map<string, number>();
  readonly #max: number;
  #sinceSweep = 0;

  constructor(maxEntries = 100_000) {
    this.#max = maxEntries;
  }

  /**
   * Remember `id` until `expiresAt` (ms epoch). Returns `'ok'` the first time, `'replayed'` if it is already
   * remembered, `'full'` if it cannot be remembered.
   */
  claim(id: string, expiresAt: number, now: number): 'ok' | 'replayed' | 'full' {
    const until = this.#seen.get(id);
    if (until !== undefined && until > now) return 'replayed';
    if (++this.#sinceSweep >= 1_000 || this.#seen.size >= this.#max) this.#sweep(now);
    if (this.#seen.size >= this.#max) return 'full';
    this.#seen.set(id, expiresAt);
    return 'ok';
  }

  get size(): number {
    return this.#seen.size;
  }

  #sweep(now: number): void {
    this.#sinceSweep = 0;
    for (const [id, until] of this.#seen) if (until <= now) this.#seen.delete(id);
  }
}
