/**
 * Bus contract: every behaviour documented in relay/src/ports/bus.ts, run against each implementation
 * (bus.test.ts). Each "node" is its own Bus instance on one shared backend.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Bus, BusPayload } from '../../src/ports/bus.js';
import { uniqueId } from './ids.js';

export interface BusFixture {
  /** A new Bus on the shared backend (one per simulated node). */
  node(): Promise<Bus>;
  close(): Promise<void>;
}

export type BusFactory = () => Promise<BusFixture>;

/** Collects payloads and lets a test await a count without sleeping. */
export class Inbox {
  readonly items: BusPayload[] = [];
  #waiters: { n: number; resolve: () => void }[] = [];
  readonly handler = (p: BusPayload): void => {
    this.items.push(p);
    this.#waiters = this.#waiters.filter((w) => {
      if (this.items.length >= w.n) w.resolve();
      return this.items.length < w.n;
    });
  };
  waitFor(n: number): Promise<void> {
    if (this.items.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }
}

export function busContract(name: string, factory: BusFactory): void {
  describe(`Bus contract: ${name}`, () => {
    const open: BusFixture[] = [];
    async function make(): Promise<BusFixture> {
      const f = await factory();
      open.push(f);
      return f;
    }
    afterEach(async () => {
      await Promise.all(open.splice(0).map((f) => f.close()));
    });

    it('delivers a publish to every node subscribed to the channel, the publisher included, in order', async () => {
      const fx = await make();
      const [a, b, c] = [await fx.node(), await fx.node(), await fx.node()];
      const channel = `site:${uniqueId('site')}`;
      const inA = new Inbox();
      const inB = new Inbox();
      const inC = new Inbox();
      await a.subscribe(channel, inA.handler);
      await b.subscribe(channel, inB.handler);
      await c.subscribe(`site:${uniqueId('site')}`, inC.handler);
      for (let i = 0; i < 50; i++) await a.publish(channel, { kind: 'event', i, nested: { s: 'x', list: [1, null] } });
      await Promise.all([inA.waitFor(50), inB.waitFor(50)]);
      expect(inB.items.map((p) => p.i)).toEqual(Array.from({ length: 50 }, (_, i) => i));
      expect(inA.items[7]).toEqual({ kind: 'event', i: 7, nested: { s: 'x', list: [1, null] } });
      expect(inC.items).toEqual([]);
    });

    it('keeps one subscription per channel: a second subscribe replaces the handler', async () => {
      const fx = await make();
      const a = await fx.node();
      const channel = `node:${uniqueId('n')}`;
      const first = new Inbox();
      const second = new Inbox();
      await a.subscribe(channel, first.handler);
      await a.subscribe(channel, second.handler);
      await a.publish(channel, { kind: 'one' });
      await a.publish(channel, { kind: 'two' });
      await second.waitFor(2);
      expect(first.items).toEqual([]);
      expect(second.items.map((p) => p.kind)).toEqual(['one', 'two']);
    });

    it('stops delivering after unsubscribe; unknown channels are ignored', async () => {
      const fx = await make();
      const [a, b] = [await fx.node(), await fx.node()];
      const channel = 'control';
      const inA = new Inbox();
      const inB = new Inbox();
      await a.subscribe(channel, inA.handler);
      await b.subscribe(channel, inB.handler);
      await a.unsubscribe(channel);
      await a.unsubscribe(`site:${uniqueId('never')}`);
      await b.publish(channel, { kind: 'after' });
      await inB.waitFor(1);
      // b got it, so a (unsubscribed before the publish) would have had it by now if it still listened.
      await b.publish(channel, { kind: 'fence' });
      await inB.waitFor(2);
      expect(inA.items).toEqual([]);
    });

    it('a throwing handler does not stop delivery to others or crash the process', async () => {
      const fx = await make();
      const [a, b] = [await fx.node(), await fx.node()];
      const channel = `site:${uniqueId('site')}`;
      const inB = new Inbox();
      await a.subscribe(channel, () => {
        throw new Error('handler bug');
      });
      await b.subscribe(channel, inB.handler);
      await a.publish(channel, { kind: 'x' });
      await a.publish(channel, { kind: 'y' });
      await inB.waitFor(2);
      expect(inB.items.map((p) => p.kind)).toEqual(['x', 'y']);
    });

    it('refuses channels that are not built from valid ids (no patterns, no raw input)', async () => {
      const fx = await make();
      const a = await fx.node();
      for (const bad of [
        'site:*',
        'site:UPPER',
        'site:',
        '*',
        'other',
        'site:a b',
        'node:',
        `site:${'x'.repeat(65)}`,
      ]) {
        await expect(a.publish(bad, { kind: 'x' })).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(a.subscribe(bad, () => {})).rejects.toMatchObject({ code: 'invalid_id' });
      }
    });

    it('is healthy while open and delivers nothing after close', async () => {
      const fx = await make();
      const [a, b] = [await fx.node(), await fx.node()];
      expect(a.healthy()).toBe(true);
      const channel = `site:${uniqueId('site')}`;
      const inA = new Inbox();
      const inB = new Inbox();
      await a.subscribe(channel, inA.handler);
      await b.subscribe(channel, inB.handler);
      await a.close();
      await b.publish(channel, { kind: 'x' });
      await b.publish(channel, { kind: 'y' });
      await inB.waitFor(2);
      expect(inA.items).toEqual([]);
    });
  });
}
