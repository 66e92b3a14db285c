/**
 * Renewal scheduling with an injected clock and timers (no sleeping): when it starts, what `auth.expiring`
 * does, how a failed `getToken()` is retried, and that a token fetched for a lost socket is never sent.
 */
import { describe, expect, it } from 'vitest';
import { ScanRelayError } from '../../src/errors.js';
import { Renewal } from '../../src/renewal.js';
import type { Timers } from '../../src/types.js';

class ManualTime implements Timers {
  now = 1_000_000;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 0;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#next;
    this.#timers.set(id, { at: this.now + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  /** Move time forward, firing due timers in order. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.#timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
      await Promise.resolve();
      await Promise.resolve();
    }
    this.now = end;
  }
}

function setup(tokens: Array<string | Error>) {
  const time = new ManualTime();
  const sent: Array<{ token: string; ref: string }> = [];
  const renewed: number[] = [];
  const failures: string[] = [];
  let ref = 0;
  const renewal = new Renewal({
    now: () => time.now,
    timers: time,
    renewBeforeMs: 30_000,
    fetchToken: async () => {
      const next = tokens.shift() ?? 'token';
      if (next instanceof Error) throw new ScanRelayError('token_unavailable', next.message);
      return next;
    },
    send: (token, r) => {
      sent.push({ token, ref: r });
      return true;
    },
    nextRef: () => `auth-${++ref}`,
    renewed: (expiresAt) => renewed.push(expiresAt),
    failed: (e) => failures.push(e.code),
  });
  return { time, sent, renewed, failures, renewal };
}

describe('in-band renewal schedule', () => {
  it('renews 30 s before a 10-minute token expires, and again after auth.ok', async () => {
    const { time, sent, renewed, renewal } = setup(['t1', 't2']);
    renewal.start(time.now + 600_000);
    await time.advance(569_000);
    expect(sent).toEqual([]);
    await time.advance(1_000);
    expect(sent).toEqual([{ token: 't1', ref: 'auth-1' }]);
    renewal.ok(time.now + 600_000, 'auth-1');
    expect(renewed).toHaveLength(1);
    await time.advance(570_000);
    expect(sent.map((s) => s.token)).toEqual(['t1', 't2']);
  });

  it('for a short token renews after three quarters of what is left', async () => {
    const { time, sent, renewal } = setup(['t1']);
    renewal.start(time.now + 8_000);
    await time.advance(5_999);
    expect(sent).toEqual([]);
    await time.advance(1);
    expect(sent).toHaveLength(1);
  });

  it('auth.expiring starts a renewal at once; a second warning does not start another', async () => {
    const { time, sent, renewal } = setup(['t1', 't2']);
    renewal.start(time.now + 600_000);
    renewal.expiring(time.now + 20_000);
    renewal.expiring(time.now + 20_000);
    await time.advance(0);
    expect(sent.map((s) => s.token)).toEqual(['t1']);
  });

  it('retries a failed getToken() with backoff, never past the expiry, and ignores a stray auth.ok', async () => {
    const { time, sent, failures, renewed, renewal } = setup([new Error('down'), new Error('down'), 't3']);
    renewal.start(time.now + 40_000);
    await time.advance(30_000); // lead = min(30 s, 10 s) → renew at 30 s: fails
    expect(failures).toEqual(['token_unavailable']);
    await time.advance(2_000); // retry after 2 s: fails
    expect(failures).toHaveLength(2);
    await time.advance(4_000); // then 4 s: succeeds
    expect(sent.map((s) => s.token)).toEqual(['t3']);
    renewal.ok(time.now + 600_000, 'auth-999');
    expect(renewed).toEqual([]);
    renewal.ok(time.now + 600_000, sent[0]!.ref);
    expect(renewed).toHaveLength(1);
  });

  it('a refusal of the auth is reported and retried', async () => {
    const { time, sent, failures, renewal } = setup(['t1', 't2']);
    renewal.start(time.now + 600_000);
    renewal.expiring(time.now + 60_000);
    await time.advance(0);
    expect(renewal.refused(sent[0]!.ref, new ScanRelayError('forbidden', 'different sub'))).toBe(true);
    expect(failures).toEqual(['forbidden']);
    await time.advance(2_000);
    expect(sent.map((s) => s.token)).toEqual(['t1', 't2']);
  });

  it('a token fetched while the socket was lost is not sent on the next one', async () => {
    let release!: (t: string) => void;
    const time = new ManualTime();
    const sent: string[] = [];
    const renewal = new Renewal({
      now: () => time.now,
      timers: time,
      renewBeforeMs: 30_000,
      fetchToken: () => new Promise<string>((resolve) => (release = resolve)),
      send: (token) => {
        sent.push(token);
        return true;
      },
      nextRef: () => 'auth-1',
      renewed: () => undefined,
      failed: () => undefined,
    });
    renewal.start(time.now + 600_000);
    renewal.expiring(time.now + 60_000);
    renewal.stop();
    release('late');
    await Promise.resolve();
    await Promise.resolve();
    expect(sent).toEqual([]);
  });
});
