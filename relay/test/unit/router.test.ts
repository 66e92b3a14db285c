/**
 * SiteRouter: ONE Bus subscription per site per node however many local sockets watch it, and each event
 * encoded once per codec for all of them (not once per subscriber). The sockets here are recording fakes of
 * the transport side; the router, Bus and connections are the real ones.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { DEFAULT_LIMITS } from '../../src/config.js';
import { siteChannel } from '../../src/core/bus-messages.js';
import { BrowserConn, type ConnEnv } from '../../src/core/connection.js';
import { SiteRouter } from '../../src/core/router.js';
import type { TransportConnection } from '../../src/core/transport.js';
import { RelayMetrics } from '../../src/observability/metrics.js';
import type { BusHandler, BusPayload } from '../../src/ports/bus.js';
import { MemoryBus } from '../../src/ports/bus-memory.js';

class CountingBus extends MemoryBus {
  subscribes: string[] = [];
  unsubscribes: string[] = [];
  override async subscribe(channel: string, handler: BusHandler): Promise<void> {
    this.subscribes.push(channel);
    return super.subscribe(channel, handler);
  }
  override async unsubscribe(channel: string): Promise<void> {
    this.unsubscribes.push(channel);
    return super.unsubscribe(channel);
  }
}

class RecordingSocket implements TransportConnection {
  frames: (string | Uint8Array)[] = [];
  bufferedAmount = 0;
  send(frame: string | Uint8Array): boolean {
    this.frames.push(frame);
    return true;
  }
  cork(fn: () => void): void {
    fn();
  }
  close(): void {}
  terminate(): void {}
  ping(): void {}
}

const env: ConnEnv = {
  clock: systemClock,
  limits: DEFAULT_LIMITS,
  metrics: new RelayMetrics({ defaultMetrics: false }),
  logger: pino({ level: 'silent' }),
};

function browser(codec: 'json' | 'msgpack', site: string): { conn: BrowserConn; socket: RecordingSocket } {
  const socket = new RecordingSocket();
  const conn = new BrowserConn(`c-${Math.random()}`, socket, codec, '127.0.0.1', env);
  conn.state = 'open';
  conn.sites = new Set([site]);
  conn.subscriptions.set(site, { site, buffer: undefined, late: false });
  return { conn, socket };
}

const event = (site: string): BusPayload => ({
  kind: 'event',
  receivedAt: Date.now(),
  event: { site, gateway: 'gw-1', seq: 1, kind: 'images.received', at: 1, data: { count: 3 }, position: 'e-1' },
});

describe('SiteRouter', () => {
  it('holds one Bus subscription per site, dropped with the last watcher', async () => {
    const bus = new CountingBus();
    const router = new SiteRouter(bus, systemClock, env.metrics, env.logger, 100);
    const watchers = [browser('json', 'site-a'), browser('json', 'site-a'), browser('msgpack', 'site-a')];
    for (const w of watchers) await router.watch('site-a', w.conn);
    expect(bus.subscribes).toEqual(['site:site-a']);
    router.unwatch('site-a', watchers[0]!.conn);
    router.unwatch('site-a', watchers[1]!.conn);
    expect(bus.unsubscribes).toEqual([]);
    router.unwatch('site-a', watchers[2]!.conn);
    await new Promise((r) => setImmediate(r));
    expect(bus.unsubscribes).toEqual(['site:site-a']);
    // Leave-then-join in one tick ends subscribed.
    const again = browser('json', 'site-a');
    await router.watch('site-a', again.conn);
    router.unwatch('site-a', again.conn);
    await router.watch('site-a', again.conn);
    await bus.publish(siteChannel('site-a'), event('site-a'));
    await new Promise((r) => setImmediate(r));
    expect(again.socket.frames).toHaveLength(1);
  });

  it('encodes each event once per codec, shared by every subscriber of that codec', async () => {
    const bus = new CountingBus();
    const router = new SiteRouter(bus, systemClock, env.metrics, env.logger, 100);
    const packs = [browser('msgpack', 'site-a'), browser('msgpack', 'site-a')];
    const jsons = [browser('json', 'site-a'), browser('json', 'site-a')];
    for (const w of [...packs, ...jsons]) await router.watch('site-a', w.conn);
    await bus.publish(siteChannel('site-a'), event('site-a'));
    await new Promise((r) => setImmediate(r));
    const [p1, p2] = packs.map((w) => w.socket.frames[0]);
    expect(p1).toBeInstanceOf(Uint8Array);
    expect(p1).toBe(p2); // the same buffer object: encoded once
    expect(jsons.map((w) => w.socket.frames[0])).toEqual([jsons[0]!.socket.frames[0], jsons[0]!.socket.frames[0]]);
    expect(JSON.parse(jsons[0]!.socket.frames[0] as string)).toMatchObject({ type: 'event', site: 'site-a', seq: 1 });
  });

  it('never delivers a payload whose site differs from its channel, nor to a session that lost the site', async () => {
    const bus = new CountingBus();
    const router = new SiteRouter(bus, systemClock, env.metrics, env.logger, 100);
    const w = browser('json', 'site-a');
    const narrowed = browser('json', 'site-a');
    await router.watch('site-a', w.conn);
    await router.watch('site-a', narrowed.conn);
    narrowed.conn.sites = new Set(['site-b']);
    await bus.publish(siteChannel('site-a'), event('site-b'));
    await bus.publish(siteChannel('site-a'), event('site-a'));
    await new Promise((r) => setImmediate(r));
    expect(w.socket.frames).toHaveLength(1);
    expect(narrowed.socket.frames).toHaveLength(0);
  });
});
