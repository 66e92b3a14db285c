/**
 * Two relay nodes on one real redis-server (the production topology): the same core paths as the memory
 * multi-node tests, now over Redis pub/sub, Streams and Lua — command routing across nodes, event fan-out and
 * resume, replacement, revocation; and Redis going away fails new authentications closed without a crash
 * (SECURITY.md 42).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../helpers/redis.js';
import { startRedis } from '../helpers/redis.js';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture } from '../helpers/relay-fixture.js';
import { mintAdmin } from '../helpers/tokens.js';

let redis: RedisServer;
let fx: Fixture;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});
afterEach(async () => {
  await fx.close();
  await redis.flushAll();
});

describe('two nodes on Redis', () => {
  it('routes commands, statuses and events across nodes; a resume gets exactly what was missed', async () => {
    fx = await createFixture({ config: { redisUrl: redis.url } });
    const a = await fx.start();
    const b = await fx.start();
    const gw = await fx.gateway(b, 'gw-1');
    const { client } = await fx.browser(a);
    client.send({ type: 'subscribe', site: 'site-a' });
    const sub = await client.next('subscribed');
    expect(sub.presence).toEqual([{ gateway: 'gw-1', online: true, since: expect.any(Number) }]);
    client.send({ type: 'command', ref: 'x', token: await fx.command({ aud: 'gw-1' }) });
    const delivery = await gw.client.next('command');
    gw.client.send({ type: 'command.status', command: delivery.command, state: 'completed', detail: { result: {} } });
    expect(await client.next('command.status', (m) => m.state === 'completed')).toMatchObject({ ref: 'x' });
    gw.client.send({ type: 'event', seq: 1, kind: 'worklist.added', subject: 'A1', at: 1, data: {} });
    const e1 = await client.next('event', (m) => m.kind === 'worklist.added');
    client.close();
    gw.client.send({ type: 'event', seq: 2, kind: 'procedure.started', subject: 'A1', at: 2, data: {} });
    await gw.client.next('event.ack', (m) => m.seq === 2);
    const again = await fx.browser(b);
    again.client.send({ type: 'subscribe', site: 'site-a', since: e1.position as string });
    await again.client.next('subscribed');
    expect(await again.client.next('event', (m) => m.seq !== 0)).toMatchObject({ seq: 2, kind: 'procedure.started' });
    // A restarted gateway learns what the cluster holds.
    gw.client.close();
    expect((await fx.gateway(a, 'gw-1')).welcome.acked).toBe(2);
  });

  it('replaces a gateway socket across nodes and revokes across nodes', async () => {
    fx = await createFixture({ config: { redisUrl: redis.url } });
    const a = await fx.start();
    const b = await fx.start();
    const first = await fx.gateway(a, 'gw-1');
    const second = await fx.gateway(b, 'gw-1');
    expect((await first.client.closed).code).toBe(4505);
    const browser = await fx.browser(a, { sid: 'sid-r' });
    const admin = await mintAdmin(fx.manage);
    const headers = { authorization: `Bearer ${admin}` };
    expect((await fetch(fx.http(a, '/v1/admin/gateways/gw-1'), { method: 'DELETE', headers })).status).toBe(200);
    expect((await second.client.closed).code).toBe(4506);
    expect((await fetch(fx.http(b, '/v1/admin/sessions/sid-r/revoke'), { method: 'POST', headers })).status).toBe(200);
    expect((await browser.client.closed).code).toBe(4506);
  });

  it('fails new authentications closed while Redis is unreachable, and recovers (42)', async () => {
    fx = await createFixture({ config: { redisUrl: redis.url } });
    const a = await fx.start();
    await fx.addGateway('gw-1', 'site-a');
    redis.pause();
    try {
      const c = await fx.connectGateway(a);
      c.send({ type: 'hello', token: await fx.assertion('gw-1') });
      const closed = await Promise.race([
        c.closed,
        new Promise<{ code: number }>((r) => setTimeout(() => r({ code: -1 }), 15_000).unref()),
      ]);
      // Either refused outright or still waiting on Redis: never welcomed.
      expect(c.received.filter((m) => m.type === 'welcome')).toEqual([]);
      if (closed.code !== -1) expect(closed.code).toBeOneOf([4000, 4501, 4506]);
      c.close();
    } finally {
      redis.resume();
    }
    expect((await fetch(fx.http(a, '/healthz'))).status).toBe(200);
    const gw = await fx.gateway(a, 'gw-1');
    expect(gw.welcome.gateway).toBe('gw-1');
  });
});
