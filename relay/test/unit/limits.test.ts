/** Token bucket and per-key counters, driven by a manual clock. */
import { describe, expect, it } from 'vitest';
import { KeyedCounter, TokenBucket } from '../../src/core/limits.js';
import { ManualClock } from '../contract/manual-clock.js';

describe('TokenBucket', () => {
  it('allows the burst, then the sustained rate, never more than the burst after idling', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(clock, 10, 5);
    expect(Array.from({ length: 6 }, () => bucket.take())).toEqual([true, true, true, true, true, false]);
    clock.advance(100); // 10/s → one token
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    clock.advance(60_000);
    expect(Array.from({ length: 6 }, () => bucket.take()).filter(Boolean)).toHaveLength(5);
  });
});

describe('KeyedCounter', () => {
  it('caps per key and forgets keys that drop to zero', () => {
    const counter = new KeyedCounter(2);
    counter.increment('a');
    counter.increment('a');
    expect(counter.hasRoom('a')).toBe(false);
    expect(counter.hasRoom('b')).toBe(true);
    counter.decrement('a');
    expect(counter.hasRoom('a')).toBe(true);
    counter.decrement('a');
    counter.decrement('a');
    expect(counter.count('a')).toBe(0);
  });
});
