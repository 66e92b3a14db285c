/**
 * Several relay nodes in one process sharing one MemoryHub (as nodes share one Redis): every cross-socket
 * delivery goes through the Bus, so commands, statuses, events, replacement and revocation cross nodes
 * (SECURITY.md 19, 27).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../contract/manual-clock.js';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture } from '../helpers/relay-fixture.js';
import { mintAdmin } from '../helpers/tokens.js';

let fx: Fixture;
afterEach(async () => {
  await fx.close();
});

describe('two nodes', () => {
  it('routes a command from a browser on A to its gateway on B, and statuses and events back', async () => {
    fx = await createFixture();
    const a = await fx.start();
    const b = await fx.start();
    const gw = await fx.gateway(b, 'gw-1');
    expect(gw.welcome.node).toBe('node-2');
    const { client } = await fx.browser(a);
    client.send({ type: 'subscribe', site: 'site-a' });
    const sub = await client.next('subscribed');
    expect(sub.presence).toEqual([{ gateway: 'gw-1', online: true, since: expect.any(Number) }]);
    client.send({ type: 'command', ref: 'x', token: await fx.command({ aud: 'gw-1' }) });
    const delivery = await gw.client.next('command');
    expect((await client.next('command.status', (m) => m.state === 'delivered')).ref).toBe('x');
    gw.client.send({ type: 'command.status', command: delivery.command, state: 'completed', detail: { result: {} } });
    expect(await client.next('command.status', (m) => m.state === 'completed')).toMatchObject({ ref: 'x' });
    gw.client.send({ type: 'event', seq: 1, kind: 'procedure.started', subject: 'A1', at: 1, data: {} });
    expect(await client.next('event', (m) => m.kind === 'procedure.started')).toMatchObject({ gateway: 'gw-1' });
  });

  it('a gateway connecting on B replaces its socket on A (4505), cluster-wide', async () => {
    fx = await createFixture();
    const a = await fx.start();
    const b = await fx.start();
    const first = await fx.gateway(a, 'gw-1');
    const second = await fx.gateway(b, 'gw-1');
    expect(await first.client.closed).toEqual({ code: 4505, reason: 'replaced' });
    const { client } = await fx.browser(a);
    client.send({ type: 'command', ref: 'r', token: await fx.command({ aud: 'gw-1' }) });
    await second.client.next('command');
    const live = await a.ports.presence.get('gw-1');
    expect(live?.node).toBe('node-2');
  });

  it('revoking a session on A closes its socket on B; revoking a gateway on A closes it on B (19, 27)', async () => {
    fx = await createFixture();
    const a = await fx.start();
    const b = await fx.start();
    const browser = await fx.browser(b, { sid: 'sid-b' });
    const gw = await fx.gateway(b, 'gw-1');
    const admin = await mintAdmin(fx.manage);
    const auth = { authorization: `Bearer ${admin}` };
    expect((await fetch(fx.http(a, '/v1/admin/sessions/sid-b/revoke'), { method: 'POST', headers: auth })).status).toBe(
      200,
    );
    expect((await browser.client.closed).code).toBe(4506);
    expect((await fetch(fx.http(a, '/v1/admin/gateways/gw-1'), { method: 'DELETE', headers: auth })).status).toBe(200);
    expect((await gw.client.closed).code).toBe(4506);
  });

  it('a node shutting down tells the other nodes’ watchers its gateways went offline', async () => {
    fx = await createFixture();
    const a = await fx.start();
    const b = await fx.start();
    await fx.gateway(b, 'gw-1');
    const { client } = await fx.browser(a);
    client.send({ type: 'subscribe', site: 'site-a' });
    await client.next('subscribed');
    await b.close();
    expect(await client.next('presence', (m) => m.online === false)).toMatchObject({ gateway: 'gw-1' });
  });

  it('reports the gateways of a node that died (its presence leases lapse) offline from another node', async () => {
    const clock = new ManualClock();
    fx = await createFixture({
      clock,
      config: { timings: { pingIntervalMs: 30_000, livenessTimeoutMs: 7_200_000, presenceTtlMs: 45_000 } },
    });
    const a = await fx.start();
    const { client } = await fx.browser(a, { ttlSeconds: 3_600 });
    client.send({ type: 'subscribe', site: 'site-a' });
    await client.next('subscribed');
    // What a node that then crashed left behind: a lease nobody will ever renew or release.
    await a.ports.presence.claim(
      { gateway: 'gw-9', site: 'site-a', node: 'node-dead', connection: 'c-dead', since: clock.now() },
      45_000,
    );
    clock.advance(44_000);
    await a.runMaintenance();
    clock.advance(2_000);
    await a.runMaintenance();
    expect(await client.next('presence', (m) => m.online === false)).toMatchObject({ gateway: 'gw-9' });
    await client.next('event', (m) => m.kind === 'gateway.offline');
  });
});
