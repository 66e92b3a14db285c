/**
 * Issue 4: several relay nodes in one process on one real Redis behave as one relay. Browsers and gateways
 * on different nodes; every message crosses the Redis Bus, history, presence and queues.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Msg } from '../helpers/client.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { createFixture, type Fixture, until } from '../helpers/relay-fixture.js';
import { decodeParts } from '../helpers/tokens.js';

let redis: RedisServer;
let fx: Fixture;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
beforeEach(async () => {
  await redis.flushAll();
  fx = await createFixture({ config: { redisUrl: redis.url } });
});
afterEach(async () => {
  await fx.close();
});

const ev = (seq: number) => ({
  type: 'event',
  seq,
  kind: 'images.received',
  subject: `ACC${seq % 3}`,
  at: 1_700_000_000_000 + seq,
  data: { count: seq },
});

async function subscribed(relay: Parameters<Fixture['browser']>[0], sub = 'watcher', since?: string) {
  const b = await fx.browser(relay, { sub });
  b.client.send({ type: 'subscribe', site: 'site-a', ...(since ? { since } : {}) });
  const first = await Promise.race([b.client.next('subscribed'), b.client.next('resync')]);
  return { ...b, first };
}

describe('cross-node on Redis', () => {
  it('a browser on node A commands a gateway on node B and sees every state; watchers on both nodes see them', async () => {
    const a = await fx.start();
    const b = await fx.start();
    const gw = await fx.gateway(b, 'gw-1');
    const watchA = await subscribed(a);
    const watchB = await subscribed(b);
    const { client } = await fx.browser(a, { sid: 'sid-1' });
    const token = await fx.command({ aud: 'gw-1', site: 'site-a', cmd: 'echo', args: { aet: 'US1' } });
    const jti = decodeParts(token).payload.jti as string;
    client.send({ type: 'command', ref: 'c1', token });
    const delivery = await gw.client.next('command');
    expect(delivery).toEqual({ type: 'command', command: jti, token, from: { sub: 'user-1', session: 'sid-1' } });
    for (const state of ['verified', 'running', 'completed']) {
      gw.client.send({
        type: 'command.status',
        command: jti,
        state,
        ...(state === 'completed' ? { detail: { ok: true } } : {}),
      });
    }
    const states: string[] = [];
    while (states.at(-1) !== 'completed') {
      states.push((await client.next('command.status', (m) => m.ref === 'c1')).state as string);
    }
    expect(states).toEqual(['accepted', 'delivered', 'verified', 'running', 'completed']);
    for (const w of [watchA, watchB]) {
      await w.client.next('event', (m) => m.kind === 'command.status' && (m.data as Msg).state === 'completed');
    }
    // The jti is claimed cluster-wide: the same token on the other node is refused.
    const again = await fx.browser(b, { sid: 'sid-2' });
    again.client.send({ type: 'command', ref: 'dup', token });
    expect(await again.client.next('error', (m) => m.ref === 'dup')).toMatchObject({
      code: 'bad_message',
      message: expect.stringContaining('already used'),
    });
  });

  it('events from a gateway on B reach subscribers on every node once, in seq order, and presence shows everywhere', async () => {
    const a = await fx.start();
    const b = await fx.start();
    const c = await fx.start();
    const watchers = [await subscribed(a), await subscribed(b), await subscribed(c)];
    const gw = await fx.gateway(b, 'gw-1');
    for (const w of watchers) {
      expect(await w.client.next('presence')).toMatchObject({ site: 'site-a', gateway: 'gw-1', online: true });
    }
    for (let seq = 1; seq <= 30; seq++) gw.client.send(ev(seq));
    await gw.client.next('event.ack', (m) => m.seq === 30);
    for (const w of watchers) {
      await w.client.next('event', (m) => m.seq === 30);
      await w.client.roundTrip();
      const seqs = w.client.received
        .filter((m) => m.type === 'event' && m.kind === 'images.received')
        .map((m) => m.seq);
      expect(seqs).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    }
    // A late subscriber on another node gets the presence and the snapshot from Redis.
    const late = await subscribed(c, 'late');
    expect(late.first).toMatchObject({
      type: 'subscribed',
      presence: [expect.objectContaining({ gateway: 'gw-1', online: true })],
    });
    expect((late.first.snapshot as Msg[]).map((e) => e.subject).sort()).toEqual(['ACC0', 'ACC1', 'ACC2']);
    gw.client.close();
    for (const w of watchers) {
      expect(await w.client.next('presence', (m) => m.online === false)).toMatchObject({ gateway: 'gw-1' });
    }
  });

  it('a gateway reconnecting to another node replaces its old socket cluster-wide; commands go to the new one only', async () => {
    const a = await fx.start();
    const b = await fx.start();
    const old = await fx.gateway(a, 'gw-1');
    const fresh = await fx.gateway(b, 'gw-1');
    expect((await old.client.closed).code).toBe(4505);
    expect(await a.ports.presence.get('gw-1')).toMatchObject({ node: b.nodeId });
    const { client } = await fx.browser(a);
    const token = await fx.command({ aud: 'gw-1' });
    client.send({ type: 'command', ref: 'r', token });
    expect((await fresh.client.next('command')).token).toBe(token);
    await client.next('command.status', (m) => m.state === 'delivered');
    expect(old.client.received.filter((m) => m.type === 'command')).toEqual([]);
  });

  it('a command queued for an offline gateway is delivered by whichever node the gateway reaches', async () => {
    const a = await fx.start();
    const b = await fx.start();
    await fx.addGateway('gw-1', 'site-a');
    const { client } = await fx.browser(a);
    const token = await fx.command({ aud: 'gw-1' });
    client.send({ type: 'command', ref: 'q', token });
    await client.next('command.status', (m) => m.state === 'queued');
    expect(await b.ports.commands.depth('gw-1')).toBe(1);
    const gw = await fx.gateway(b, 'gw-1');
    expect((await gw.client.next('command')).token).toBe(token);
    await client.next('command.status', (m) => m.state === 'delivered');
    expect(await a.ports.commands.depth('gw-1')).toBe(0);
  });

  it('a browser resuming on another node gets exactly the events it missed', async () => {
    const a = await fx.start();
    const b = await fx.start();
    const gw = await fx.gateway(a, 'gw-1');
    const first = await subscribed(a, 'resumer');
    for (let seq = 1; seq <= 5; seq++) gw.client.send(ev(seq));
    const fifth = await first.client.next('event', (m) => m.seq === 5);
    first.client.close();
    for (let seq = 6; seq <= 12; seq++) gw.client.send(ev(seq));
    await gw.client.next('event.ack', (m) => m.seq === 12);
    const resumed = await subscribed(b, 'resumer', fifth.position as string);
    expect(resumed.first.type).toBe('subscribed');
    await resumed.client.next('event', (m) => m.seq === 12);
    await resumed.client.roundTrip();
    const seqs = resumed.client.received
      .filter((m) => m.type === 'event' && m.kind === 'images.received')
      .map((m) => m.seq);
    expect(seqs).toEqual([6, 7, 8, 9, 10, 11, 12]);
  });

  it('a browser resuming after Redis lost its history is told to resync', async () => {
    const a = await fx.start();
    const gw = await fx.gateway(a, 'gw-1');
    const first = await subscribed(a, 'resumer');
    gw.client.send(ev(1));
    const e = await first.client.next('event', (m) => m.seq === 1);
    await redis.flushAll();
    const again = await subscribed(a, 'resumer', e.position as string);
    expect(again.first.type).toBe('resync');
  });

  it('a session revoked through one node closes its sockets on every node', async () => {
    const a = await fx.start();
    const b = await fx.start();
    const onA = await fx.browser(a, { sid: 'sid-x' });
    const onB = await fx.browser(b, { sid: 'sid-x' });
    await a.hooks.sessionRevoked('sid-x');
    for (const c of [onA.client, onB.client]) expect((await c.closed).code).toBe(4506);
  });

  it('a revoked gateway is cut on every node and its held commands dropped', async () => {
    const a = await fx.start();
    const b = await fx.start();
    const gw = await fx.gateway(b, 'gw-1');
    await a.ports.registry.revoke('gw-1', Date.now());
    await a.hooks.gatewayRevoked('gw-1');
    expect((await gw.client.closed).code).toBe(4506);
    await until(async () => (await a.ports.presence.get('gw-1')) === undefined, 'presence released');
  });
});
