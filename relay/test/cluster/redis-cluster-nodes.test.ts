/**
 * Issue 4 on a real three-master Redis Cluster: relay nodes given every master as seed (comma list) use
 * sharded pub/sub and hash-tagged keys; a command and the site's events still cross nodes.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Msg } from '../helpers/client.js';
import { type RedisCluster, startRedisCluster } from '../helpers/redis.js';
import { createFixture, type Fixture } from '../helpers/relay-fixture.js';
import { decodeParts } from '../helpers/tokens.js';

let cluster: RedisCluster;
let fx: Fixture;

beforeAll(async () => {
  cluster = await startRedisCluster();
});
afterAll(async () => {
  await cluster?.stop();
});
beforeEach(async () => {
  fx = await createFixture({ config: { redisUrl: cluster.urls.join(',') } });
});
afterEach(async () => {
  await fx.close();
});

describe('relay nodes on a Redis Cluster', () => {
  it('routes a command from a browser on A to a gateway on B and fans the site events out on both nodes', async () => {
    const a = await fx.start();
    const b = await fx.start();
    const gw = await fx.gateway(b, 'gw-c1', { site: 'site-c1' });
    const watchers = [];
    for (const relay of [a, b]) {
      const w = await fx.browser(relay, { sub: 'watcher', sites: ['site-c1'] });
      w.client.send({ type: 'subscribe', site: 'site-c1' });
      await w.client.next('subscribed');
      watchers.push(w);
    }
    const { client } = await fx.browser(a, { sites: ['site-c1'] });
    const token = await fx.command({ aud: 'gw-c1', site: 'site-c1' });
    const jti = decodeParts(token).payload.jti as string;
    client.send({ type: 'command', ref: 'c', token });
    expect((await gw.client.next('command')).command).toBe(jti);
    gw.client.send({ type: 'command.status', command: jti, state: 'completed' });
    await client.next('command.status', (m) => m.ref === 'c' && m.state === 'completed');
    for (let seq = 1; seq <= 10; seq++) {
      gw.client.send({ type: 'event', seq, kind: 'images.received', subject: 'ACC', at: seq, data: { n: seq } });
    }
    for (const w of watchers) {
      await w.client.next('event', (m) => m.seq === 10);
      await w.client.roundTrip();
      const seqs = w.client.received
        .filter((m) => m.type === 'event' && m.kind === 'images.received')
        .map((m) => m.seq);
      expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(w.client.received.some((m) => m.type === 'event' && (m.data as Msg).state === 'completed')).toBe(true);
    }
  });

  it('holds a command in the cluster and delivers it through the other node', async () => {
    const a = await fx.start();
    const b = await fx.start();
    await fx.addGateway('gw-c2', 'site-c2');
    const { client } = await fx.browser(a, { sites: ['site-c2'] });
    const token = await fx.command({ aud: 'gw-c2', site: 'site-c2' });
    client.send({ type: 'command', ref: 'q', token });
    await client.next('command.status', (m) => m.state === 'queued');
    const gw = await fx.gateway(b, 'gw-c2', { site: 'site-c2' });
    expect((await gw.client.next('command')).token).toBe(token);
    await client.next('command.status', (m) => m.state === 'delivered');
  });
});
