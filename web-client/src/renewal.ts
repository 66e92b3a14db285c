/**
 * In-band session renewal (the KHEOPS/OHIF lesson: a token that expires mid-session must be renewable without
 * losing work). Ahead of expiry — on a timer, or at once on `auth.expiring` — get a fresh token and send `auth`;
 * `auth.ok` moves the expiry on. No reconnect, no lost subscriptions. A failure is retried with a short backoff
 * while the session lasts; if it never succeeds the relay closes with `token_expired` and the client reconnects
 * with a fresh token instead.
 */
import type { ScanRelayError } from './errors.js';
import type { Timers } from './types.js';

export interface RenewalDeps {
  now: () => number;
  timers: Timers;
  /** Renew at most this long before expiry, ms. */
  renewBeforeMs: number;
  fetchToken: () => Promise<string>;
  /** Send `auth`; false when the socket is not open. */
  send: (token: string, ref: string) => boolean;
  nextRef: () => string;
  renewed: (expiresAt: number, token: string) => void;
  failed: (error: ScanRelayError) => void;
}

/** Retry delay after a failed renewal, ms (doubles up to 30 s, never past the expiry). */
const RETRY_MS = 2_000;

export class Renewal {
  readonly #d: RenewalDeps;
  #timer: unknown;
  #expiresAt = 0;
  #inFlight: { ref: string; token: string } | undefined;
  #fetching = false;
  #failures = 0;
  /** Bumped on every stop(): a token fetched for an old socket is not sent on a new one. */
  #epoch = 0;

  constructor(deps: RenewalDeps) {
    this.#d = deps;
  }

  /** A session began (welcome): plan the renewal. */
  start(expiresAt: number): void {
    this.stop();
    this.#expiresAt = expiresAt;
    this.#failures = 0;
    this.#plan();
  }

  /** The socket is gone: nothing is renewed until the next `start`. */
  stop(): void {
    this.#epoch++;
    if (this.#timer !== undefined) this.#d.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#inFlight = undefined;
    this.#fetching = false;
  }

  /** `auth.expiring`: the relay's warning; renew now unless already under way. */
  expiring(expiresAt: number): void {
    this.#expiresAt = expiresAt;
    void this.#renew();
  }

  /** `auth.ok`. */
  ok(expiresAt: number, ref: string | undefined): void {
    const inFlight = this.#inFlight;
    if (!inFlight || (ref !== undefined && ref !== inFlight.ref)) return;
    this.#inFlight = undefined;
    this.#failures = 0;
    this.#expiresAt = expiresAt;
    this.#d.renewed(expiresAt, inFlight.token);
    this.#plan();
  }

  /** An `error` reply; true when it answered our `auth`. */
  refused(ref: string, error: ScanRelayError): boolean {
    if (this.#inFlight?.ref !== ref) return false;
    this.#inFlight = undefined;
    this.#d.failed(error);
    this.#retry();
    return true;
  }

  #plan(): void {
    if (this.#timer !== undefined) this.#d.timers.clearTimeout(this.#timer);
    const remaining = this.#expiresAt - this.#d.now();
    // Renew renewBeforeMs ahead, but for short tokens no later than after a quarter of what is left.
    const lead = Math.min(this.#d.renewBeforeMs, remaining / 4);
    this.#timer = this.#d.timers.setTimeout(
      () => {
        this.#timer = undefined;
        void this.#renew();
      },
      Math.max(0, remaining - lead),
    );
  }

  #retry(): void {
    const delay = Math.min(RETRY_MS * 2 ** this.#failures++, 30_000, Math.max(0, this.#expiresAt - this.#d.now()));
    if (this.#timer !== undefined) this.#d.timers.clearTimeout(this.#timer);
    this.#timer = this.#d.timers.setTimeout(() => {
      this.#timer = undefined;
      void this.#renew();
    }, delay);
  }

  async #renew(): Promise<void> {
    if (this.#inFlight || this.#fetching) return;
    const epoch = this.#epoch;
    this.#fetching = true;
    let token: string;
    try {
      token = await this.#d.fetchToken();
    } catch (err) {
      if (epoch !== this.#epoch) return;
      this.#fetching = false;
      this.#d.failed(err as ScanRelayError);
      this.#retry();
      return;
    }
    if (epoch !== this.#epoch) return;
    this.#fetching = false;
    const ref = this.#d.nextRef();
    if (!this.#d.send(token, ref)) return; // Socket gone; the next welcome starts over.
    this.#inFlight = { ref, token };
  }
}
