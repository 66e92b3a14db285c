/**
 * The command lifecycle through the relay with a protocol-speaking fake gateway (the other side of the wire)
 * — DESIGN.md "Command lifecycle"; SECURITY.md 14, 19, 27, 33, 34, 41.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../contract/manual-clock.js';
import type { Msg, TestClient } from '../helpers/client.js';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture, until } from '../helpers/relay-fixture.js';
import { decodeParts, mintAdmin } from '../helpers/tokens.js';

let fx: Fixture;
afterEach(async () => {
  await fx.close();
});

async function watcher(relay: Parameters<Fixture['browser']>[0], sub = 'user-2'): Promise<TestClient> {
  const { client } = await fx.browser(relay, { sub });
  client.send({ type: 'subscribe', site: 'site-a' });
  await client.next('subscribed');
  return client;
}

const statusOf = (ref: string) => (m: Msg) => m.ref === ref;

describe('command flow', () => {
  it('routes a command to its gateway and every state back to the sender and onto the site channel', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const gw = await fx.gateway(relay, 'gw-1');
    const watch = await watcher(relay);
    const { client, welcome } = await fx.browser(relay, { sid: 'sid-1' });
    const token = await fx.command({ aud: 'gw-1', site: 'site-a', cmd: 'echo', args: { aet: 'US1' } });
    const jti = decodeParts(token).payload.jti as string;
    client.send({ type: 'command', ref: 'c1', token });
    expect(await client.next('command.status', statusOf('c1'))).toEqual({
      type: 'command.status',
      ref: 'c1',
      command: jti,
      state: 'accepted',
    });
    const delivery = await gw.client.next('command');
    expect(delivery).toEqual({ type: 'command', command: jti, token, from: { sub: 'user-1', session: 'sid-1' } });
    expect((await client.next('command.status', statusOf('c1'))).state).toBe('delivered');
    gw.client.send({ type: 'command.status', command: jti, state: 'verified' });
    gw.client.send({ type: 'command.status', command: jti, state: 'running' });
    gw.client.send({ type: 'command.status', command: jti, state: 'progress', progress: { done: 1, total: 2 } });
    gw.client.send({ type: 'command.status', command: jti, state: 'completed', detail: { result: { ok: true } } });
    const states: string[] = [];
    for (let i = 0; i < 4; i++) states.push((await client.next('command.status', statusOf('c1'))).state as string);
    expect(states).toEqual(['verified', 'running', 'progress', 'completed']);
    expect(client.received.find((m) => m.state === 'progress')?.progress).toEqual({ done: 1, total: 2 });
    expect(client.received.find((m) => m.state === 'completed')?.detail).toEqual({ result: { ok: true } });
    // Every watcher of the site sees each state as an event.
    for (const state of ['accepted', 'delivered', 'verified', 'running', 'progress', 'completed']) {
      const e = await watch.next('event', (m) => m.kind === 'command.status' && (m.data as Msg).state === state);
      expect(e).toMatchObject({ site: 'site-a', gateway: 'gw-1', seq: 0, data: { command: jti } });
    }
    // A late report after the final state changes nothing.
    gw.client.send({ type: 'command.status', command: jti, state: 'failed' });
    await gw.client.roundTrip();
    await client.roundTrip();
    expect(client.received.filter((m) => m.state === 'failed')).toEqual([]);
    // One audit line, at the final state, with ids only.
    const audit = fx.logsWhere((l) => l.audit === 'command');
    expect(audit).toEqual([
      expect.objectContaining({
        jti,
        user: 'user-1',
        site: 'site-a',
        gateway: 'gw-1',
        cmd: 'echo',
        state: 'completed',
      }),
    ]);
    const allLogs = JSON.stringify(fx.logs);
    expect(allLogs).not.toContain(token.split('.')[2]);
    expect(allLogs).not.toContain('US1');
    expect(welcome.session).toBeTruthy();
    const metrics = await (await fetch(fx.http(relay, '/metrics'))).text();
    expect(metrics).toContain('scanrelay_commands_total{state="completed"} 1');
    expect(metrics).toMatch(/scanrelay_event_fanout_lag_seconds_count [1-9]/);
    expect(metrics).toContain('scanrelay_gateways_online 1');
  });

  it('holds a command while the gateway is offline (queued) and delivers it when it connects', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    await fx.addGateway('gw-1', 'site-a');
    const { client } = await fx.browser(relay);
    const token = await fx.command({ aud: 'gw-1' });
    client.send({ type: 'command', ref: 'q', token });
    expect((await client.next('command.status', statusOf('q'))).state).toBe('accepted');
    expect((await client.next('command.status', statusOf('q'))).state).toBe('queued');
    expect(await relay.ports.commands.depth('gw-1')).toBe(1);
    const gw = await fx.gateway(relay, 'gw-1');
    expect((await gw.client.next('command')).token).toBe(token);
    expect((await client.next('command.status', statusOf('q'))).state).toBe('delivered');
    expect(await relay.ports.commands.depth('gw-1')).toBe(0);
  });

  it('ends a held command as expired when its token runs out', async () => {
    const clock = new ManualClock();
    fx = await createFixture({
      clock,
      config: { timings: { pingIntervalMs: 3_600_000, livenessTimeoutMs: 7_200_000, presenceTtlMs: 7_200_000 } },
    });
    const relay = await fx.start();
    await fx.addGateway('gw-1', 'site-a');
    const { client } = await fx.browser(relay, { ttlSeconds: 3_000 });
    client.send({ type: 'command', ref: 'e', token: await fx.command({ aud: 'gw-1' }, { ttlSeconds: 60 }) });
    await client.next('command.status', (m) => m.state === 'queued');
    clock.advance(59_000);
    await relay.runMaintenance();
    clock.advance(2_000);
    await relay.runMaintenance();
    expect(await client.next('command.status', (m) => m.ref === 'e' && m.state === 'expired')).toMatchObject({
      command: expect.any(String),
    });
    const audit = fx.logsWhere((l) => l.audit === 'command');
    expect(audit.map((a) => a.state)).toEqual(['expired']);
    // The gateway that connects afterwards gets nothing.
    const gw = await fx.gateway(relay, 'gw-1');
    await gw.client.roundTrip();
    expect(gw.client.received.filter((m) => m.type === 'command')).toEqual([]);
  });

  it('refuses a command token whose jti was already accepted', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    await fx.gateway(relay, 'gw-1');
    const { client } = await fx.browser(relay);
    const token = await fx.command({ aud: 'gw-1' });
    client.send({ type: 'command', ref: 'a', token });
    await client.next('command.status', statusOf('a'));
    client.send({ type: 'command', ref: 'b', token });
    expect(await client.next('error', statusOf('b'))).toMatchObject({ code: 'bad_message' });
    const metrics = await (await fetch(fx.http(relay, '/metrics'))).text();
    expect(metrics).toContain('scanrelay_auth_rejections_total{role="command",reason="jti_replay"} 1');
  });

  it('answers the per-gateway hold cap with gateway_offline, and the gateway link is unaffected (case 41)', async () => {
    fx = await createFixture();
    const relay = await fx.start({ limits: { maxHeldCommandsPerGateway: 2 } });
    await fx.addGateway('gw-1', 'site-a');
    const { client } = await fx.browser(relay);
    for (const ref of ['1', '2', '3']) client.send({ type: 'command', ref, token: await fx.command({ aud: 'gw-1' }) });
    await client.next('command.status', (m) => m.ref === '2' && m.state === 'queued');
    const refusal = await client.next('error', statusOf('3'));
    expect(refusal.code).toBe('gateway_offline');
    expect(refusal.message).toMatch(/gw-1/);
    const gw = await fx.gateway(relay, 'gw-1');
    await gw.client.next('command');
    await gw.client.next('command');
    gw.client.send({ type: 'ping', ref: 'up' });
    await gw.client.next('pong');
  });
});

describe('command authorization', () => {
  it('does not forward a command for a site the session lacks, nor one with another user’s sub (33, 34)', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const gwB = await fx.gateway(relay, 'gw-b', { site: 'site-b' });
    const { client } = await fx.browser(relay, { sites: ['site-a'] });
    client.send({ type: 'command', ref: 'x', token: await fx.command({ aud: 'gw-b', site: 'site-b' }) });
    expect(await client.next('error', statusOf('x'))).toMatchObject({ code: 'forbidden' });
    const gwA = await fx.gateway(relay, 'gw-a', { site: 'site-a' });
    client.send({ type: 'command', ref: 'y', token: await fx.command({ aud: 'gw-a', sub: 'someone-else' }) });
    expect(await client.next('error', statusOf('y'))).toMatchObject({ code: 'forbidden' });
    await gwA.client.roundTrip();
    await gwB.client.roundTrip();
    expect([...gwA.client.received, ...gwB.client.received].filter((m) => m.type === 'command')).toEqual([]);
  });

  it('refuses a session token offered as a command, and a command for a gateway of another site', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    await fx.gateway(relay, 'gw-b', { site: 'site-b' });
    const { client, token } = await fx.browser(relay, { sites: ['site-a', 'site-b'] });
    client.send({ type: 'command', ref: 's', token });
    expect((await client.next('error', statusOf('s'))).code).toMatch(/unauthenticated|forbidden/);
    client.send({ type: 'command', ref: 'm', token: await fx.command({ aud: 'gw-b', site: 'site-a' }) });
    expect((await client.next('error', statusOf('m'))).code).toMatch(/forbidden|unknown_site/);
  });

  it('does not let a gateway report on another gateway’s command, nor set relay states', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const gw1 = await fx.gateway(relay, 'gw-1');
    const gw2 = await fx.gateway(relay, 'gw-2');
    const { client } = await fx.browser(relay);
    const token = await fx.command({ aud: 'gw-1' });
    client.send({ type: 'command', ref: 'o', token });
    const delivery = await gw1.client.next('command');
    gw2.client.send({ type: 'command.status', command: delivery.command, state: 'completed' });
    expect((await gw2.client.next('error')).code).toBe('forbidden');
    gw1.client.send({ type: 'command.status', command: delivery.command, state: 'expired' });
    expect((await gw1.client.next('error')).code).toBe('bad_message');
    await client.roundTrip();
    expect(client.received.filter((m) => m.state === 'completed' || m.state === 'expired')).toEqual([]);
  });
});

describe('revocation', () => {
  it('revoking a gateway over the admin API closes its socket (4506), refuses reconnects, rejects held commands (27)', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    await fx.addGateway('gw-2', 'site-a');
    const gw = await fx.gateway(relay, 'gw-1');
    const { client } = await fx.browser(relay);
    client.send({ type: 'command', ref: 'h', token: await fx.command({ aud: 'gw-2' }) });
    await client.next('command.status', (m) => m.ref === 'h' && m.state === 'queued');
    const admin = await mintAdmin(fx.manage);
    for (const id of ['gw-1', 'gw-2']) {
      const res = await fetch(fx.http(relay, `/v1/admin/gateways/${id}`), {
        method: 'DELETE',
        headers: { authorization: `Bearer ${admin}` },
      });
      expect(res.status).toBe(200);
    }
    expect(await gw.client.closed).toEqual({ code: 4506, reason: 'revoked' });
    expect(await client.next('command.status', (m) => m.ref === 'h' && m.state === 'rejected')).toMatchObject({
      detail: { reason: 'gateway_revoked' },
    });
    const again = await fx.connectGateway(relay);
    again.send({ type: 'hello', token: await fx.assertion('gw-1') });
    expect((await again.next('error')).code).toBe('revoked');
    expect((await again.closed).code).toBe(4506);
  });

  it('revoking a session closes its sockets; the periodic sweep catches a missed broadcast (19)', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const one = await fx.browser(relay, { sid: 'sid-x' });
    const two = await fx.browser(relay, { sid: 'sid-y' });
    const admin = await mintAdmin(fx.manage);
    const res = await fetch(fx.http(relay, '/v1/admin/sessions/sid-x/revoke'), {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(res.status).toBe(200);
    expect(await one.client.closed).toEqual({ code: 4506, reason: 'revoked' });
    // Revoked in the registry only (as if the Bus lost the message): the sweep closes it.
    await relay.ports.registry.revokeSession('sid-y', Date.now() + 600_000);
    await two.client.roundTrip();
    await relay.sweepRevocations();
    expect((await two.client.closed).code).toBe(4506);
    await until(() => relay.connectionCount === 0, 'sockets closed');
  });
});

describe('error codes', () => {
  it('answers a command for a gateway nobody registered with unknown_site (error only)', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const { client } = await fx.browser(relay);
    client.send({ type: 'command', ref: 'u', token: await fx.command({ aud: 'gw-nobody' }) });
    expect(await client.next('error')).toMatchObject({ ref: 'u', code: 'unknown_site' });
    await client.roundTrip();
  });
});

describe('unconfirmed deliveries', () => {
  it('holds again a command whose gateway link died before confirming it, and redelivers it', async () => {
    fx = await createFixture({ config: { timings: { commandAckTimeoutMs: 300, maintenanceIntervalMs: 50 } } });
    const relay = await fx.start();
    const zombie = await fx.gateway(relay, 'gw-1');
    const { client } = await fx.browser(relay);
    const token = await fx.command({ aud: 'gw-1' });
    client.send({ type: 'command', ref: 'z', token });
    const first = await zombie.client.next('command');
    // The gateway never answers: the relay presumes the link dead and cuts it.
    expect((await zombie.client.closed).code).toBe(1006);
    expect(await client.next('command.status', (m) => m.state === 'queued')).toMatchObject({
      ref: 'z',
      detail: { reason: 'redelivery' },
    });
    const back = await fx.gateway(relay, 'gw-1');
    const again = await back.client.next('command');
    expect(again.command).toBe(first.command);
    back.client.send({ type: 'command.status', command: again.command, state: 'completed' });
    await client.next('command.status', (m) => m.ref === 'z' && m.state === 'completed');
    expect(fx.logsWhere((l) => l.audit === 'command').map((l) => l.state)).toEqual(['completed']);
  });

  it('ignores the gateway refusing a redelivered command it already had, and takes its real outcome', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const gw = await fx.gateway(relay, 'gw-1');
    const { client } = await fx.browser(relay);
    client.send({ type: 'command', ref: 'd', token: await fx.command({ aud: 'gw-1' }) });
    const delivery = await gw.client.next('command');
    gw.client.close(); // the link drops before its `verified` got out
    await client.next('command.status', (m) => m.state === 'queued' && (m.detail as Msg)?.reason === 'redelivery');
    const back = await fx.gateway(relay, 'gw-1');
    await back.client.next('command');
    back.client.send({ type: 'command.status', command: delivery.command, state: 'verified' }); // its queued report
    back.client.send({
      type: 'command.status',
      command: delivery.command,
      state: 'rejected',
      detail: { reason: 'replayed', message: 'already used' },
    });
    back.client.send({ type: 'command.status', command: delivery.command, state: 'completed' });
    await client.next('command.status', (m) => m.ref === 'd' && m.state === 'completed');
    expect(client.received.filter((m) => m.state === 'rejected')).toEqual([]);
  });
});
