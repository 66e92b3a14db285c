/**
 * Issue 4 on a real three-master Redis Cluster: relay nodes given every master as seed (comma list) use
 * sharded pub/sub and hash-tagged keys; a command and the site's events still cross nodes.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Msg } from '../helpers/client.js';
import { type RedisCluster, startRedisCluster } from '../helpers/redis.js';
import { createFixture, type Fixture } from '../helpers/relay-fixture.js';
import { decodeParts } from '../helpers/tokens.js';
import { eventually, ResilientGateway, ResilientWatcher } from './harness.js';

const execFileAsync = promisify(execFile);

/** The master that owns `key`'s slot. */
async function ownerOf(key: string): Promise<number> {
  const port = String(cluster.nodes[0]!.port);
  const slot = Number((await execFileAsync('redis-cli', ['-p', port, 'CLUSTER', 'KEYSLOT', key])).stdout.trim());
  const { stdout } = await execFileAsync('redis-cli', ['-p', port, 'CLUSTER', 'NODES']);
  for (const line of stdout.trim().split('\n')) {
    const parts = line.split(' ');
    const nodePort = Number(parts[1]!.split('@')[0]!.split(':')[1]);
    for (const range of parts.slice(8)) {
      const [from, to] = range.split('-').map(Number);
      if (slot >= from! && slot <= (to ?? from)!) return cluster.nodes.findIndex((n) => n.port === nodePort);
    }
  }
  throw new Error(`no owner for slot ${slot}`);
}

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

  it("restarting the master that owns a site's slot under load loses and doubles no event for live watchers", async () => {
    const a = await fx.start();
    const b = await fx.start();
    await fx.addGateway('gw-c3', 'site-c3');
    const gateway = new ResilientGateway(
      () => [fx.url(b, 'gateway'), fx.url(a, 'gateway')],
      () => fx.assertion('gw-c3'),
    );
    const watchers = [a, b].map(
      (relay, i) =>
        new ResilientWatcher(
          () => [fx.url(relay, 'browser')],
          () => fx.session({ sites: ['site-c3'], sub: `w${i}` }),
          'site-c3',
        ),
    );
    const stops = [gateway, ...watchers];
    let timer: ReturnType<typeof setInterval> | undefined;
    try {
      for (const c of stops) await c.start();
      await eventually(() => watchers.every((x) => x.subscribed), 'watchers subscribed');
      timer = setInterval(() => gateway.emit(), 10);
      await eventually(() => gateway.acked >= 50, 'events flowing');
      const owner = cluster.nodes[await ownerOf('sr:{site:site-c3}:events')]!;
      await owner.restart();
      await eventually(
        () => gateway.acked >= gateway.nextSeq - 20 && gateway.nextSeq > 200,
        'events flowing again',
        30_000,
      );
      clearInterval(timer);
      const produced = gateway.nextSeq - 1;
      await eventually(() => gateway.outbox.size === 0, 'all acked', 30_000);
      await eventually(
        () => watchers.every((x) => new Set(x.seqs).size >= produced),
        'all seen',
        30_000,
        () => JSON.stringify(watchers.map((x) => x.seqs.length)),
      );
      for (const x of watchers) {
        expect(x.seqs).toEqual(Array.from({ length: produced }, (_, i) => i + 1));
        expect(x.resyncs).toEqual([]);
      }
      // The shard's sharded subscribers really were lost and restored (the catch-up path ran).
      expect(fx.logsWhere((l) => String(l.msg).startsWith('Redis bus reconnected')).length).toBeGreaterThan(0);
    } finally {
      clearInterval(timer);
      for (const c of stops) c.stop();
    }
  }, 90_000);

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
