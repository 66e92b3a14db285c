/**
 * The client library against the real relay (createRelay, in-process on port 0). The gateway side is the
 * relay's protocol test client — a stand-in only for the other end of the gateway socket.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Relay } from '../../../relay/src/relay.js';
import type { TestClient } from '../../../relay/test/helpers/client.js';
import { createFixture, type Fixture, ORIGIN } from '../../../relay/test/helpers/relay-fixture.js';
import type { SiteEvent } from '../../src/index.js';
import { type Recorded, recordedClient, wsWithOrigin } from '../helpers/node-client.js';

const WS = wsWithOrigin(ORIGIN);

describe.each(['msgpack', 'json'] as const)('client ↔ real relay (%s)', (codec) => {
  let fx: Fixture;
  let relay: Relay;
  let gw: TestClient;
  let seq = 0;
  const clients: Recorded[] = [];

  beforeEach(async () => {
    fx = await createFixture();
    relay = await fx.start();
    gw = (await fx.gateway(relay, 'gw-1')).client;
    seq = 0;
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.client.close();
    await fx.close();
  });

  function client(
    opts: { ttlSeconds?: number; sites?: string[]; getToken?: () => Promise<string>; renewBeforeMs?: number } = {},
  ): Recorded {
    const r = recordedClient({
      ...(opts.renewBeforeMs !== undefined ? { renewBeforeMs: opts.renewBeforeMs } : {}),
      url: `http://127.0.0.1:${relay.port}`,
      codec,
      WebSocket: WS,
      getToken:
        opts.getToken ??
        (() =>
          fx.session({ sites: opts.sites ?? ['site-a'], ...(opts.ttlSeconds ? { ttlSeconds: opts.ttlSeconds } : {}) })),
      reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
    });
    clients.push(r);
    return r;
  }

  /**
   * Start a node on `port` again, at once: the relay releases its port on close (regression
   * relay/test/regression/issue-5-restart-same-port.test.ts), so "address in use" here is a bug, never retried.
   */
  async function startOn(port: number, config: Parameters<Fixture['start']>[0] = {}): Promise<Relay> {
    return fx.start({ ...config, port });
  }

  async function gatewayEvent(kind: string, subject: string, data: Record<string, unknown> = {}): Promise<number> {
    const s = ++seq;
    gw.send({ type: 'event', seq: s, kind, subject, at: Date.now(), data });
    await gw.next('event.ack', (m) => m.seq === s);
    return s;
  }

  it('connects, subscribes with a snapshot and presence, then receives live events once each', async () => {
    await gatewayEvent('worklist.added', 'ACC1', { stationAet: 'MG1' });
    const r = client();
    r.client.connect();
    const sub = r.client.subscribe('site-a');
    const snapshot = await sub.once('snapshot');
    expect(snapshot.reason).toBe('subscribed');
    expect(sub.board.get('ACC1')?.kind).toBe('worklist.added');
    expect(sub.presence.get('gw-1')?.online).toBe(true);
    expect(r.client.state).toBe('connected');
    const live = sub.once('event');
    await gatewayEvent('procedure.started', 'ACC1');
    expect((await live).kind).toBe('procedure.started');
    expect(sub.board.get('ACC1')?.kind).toBe('procedure.started');
  });

  it('streams a command status by status and resolves done with the final state', async () => {
    const r = client();
    r.client.connect();
    const sub = r.client.subscribe('site-a');
    await sub.once('snapshot');
    const token = await fx.command({ aud: 'gw-1', site: 'site-a', cmd: 'echo', args: { aet: 'MG1' } });
    const handle = r.client.send(token);
    const delivery = await gw.next('command');
    expect(delivery.command).toBe(handle.command);
    for (const state of ['verified', 'running'] as const)
      gw.send({ type: 'command.status', command: delivery.command, state });
    gw.send({ type: 'command.status', command: delivery.command, state: 'progress', progress: { done: 1, total: 2 } });
    gw.send({
      type: 'command.status',
      command: delivery.command,
      state: 'completed',
      detail: { result: { ok: true } },
    });
    const seen: string[] = [];
    for await (const status of handle) seen.push(status.state);
    expect(seen).toEqual(['accepted', 'delivered', 'verified', 'running', 'progress', 'completed']);
    const result = await handle.done;
    expect(result.state).toBe('completed');
    expect(result.detail).toEqual({ result: { ok: true } });
  });

  it('refuses a command for another site with the relay’s stable code', async () => {
    const r = client();
    r.client.connect();
    await r.nth('connected', 1);
    const token = await fx.command({ aud: 'gw-1', site: 'site-b', cmd: 'echo', args: { aet: 'MG1' } });
    const result = await r.client.send(token).done;
    expect(result.state).toBe('error');
    expect(result.error?.code).toBe('forbidden');
  });

  it('a subscription to a site the session does not list fails with forbidden; others keep working', async () => {
    const r = client({ sites: ['site-a'] });
    r.client.connect();
    const other = r.client.subscribe('site-b');
    const own = r.client.subscribe('site-a');
    const [error] = await Promise.all([other.once('error'), own.once('snapshot')]);
    expect(error.code).toBe('forbidden');
    expect(other.state).toBe('failed');
    expect(own.state).toBe('live');
    expect(r.client.subscriptions.has('site-b')).toBe(false);
  });

  it('renews the session in-band before expiry: no reconnect, subscription keeps flowing', async () => {
    const r = client({ ttlSeconds: 4 });
    r.client.connect();
    const sub = r.client.subscribe('site-a');
    await sub.once('snapshot');
    const first = r.client.session!.expiresAt;
    await r.nth('renewed', 2, 15_000);
    expect(r.client.session!.expiresAt).toBeGreaterThan(first);
    // Past the first token's expiry, still on the first connection.
    expect(Date.now()).toBeGreaterThan(first);
    expect(r.count('connected')).toBe(1);
    expect(r.count('disconnected')).toBe(0);
    const live = sub.once('event');
    await gatewayEvent('procedure.started', 'ACC2');
    expect((await live).subject).toBe('ACC2');
  });

  it('renews on the relay’s auth.expiring warning when its own timer would be too late', async () => {
    // renewBeforeMs 0: the client's own timer fires only at expiry, so the warning is what saves the session.
    const r = client({ ttlSeconds: 5, renewBeforeMs: 0 });
    r.client.connect();
    await r.nth('connected', 1);
    const first = r.client.session!.expiresAt;
    const renewed = await r.nth('renewed', 1, 10_000);
    // Renewed before the old token ran out: only the warning could have started it that early.
    expect(Date.now()).toBeLessThan(first);
    expect(renewed.expiresAt).toBeGreaterThan(first);
    expect(r.count('disconnected')).toBe(0);
  });

  it('after a token_expired close (renewal impossible) gets a fresh token, reconnects and resumes', async () => {
    let managerDown = true;
    let calls = 0;
    const r = client({
      getToken: async () => {
        calls++;
        if (calls > 1 && managerDown) throw new Error('manage app unreachable');
        return fx.session({ sites: ['site-a'], ttlSeconds: 3 });
      },
    });
    r.client.connect();
    const sub = r.client.subscribe('site-a');
    await sub.once('snapshot');
    const closed = await r.nth('disconnected', 1, 15_000);
    expect(closed.code).toBe(4502);
    expect(closed.error?.code).toBe('token_expired');
    expect(closed.reconnectInMs).toBeDefined();
    // The renewal failures were reported with the client's own code.
    expect(r.events.some((e) => e.type === 'error' && e.payload.code === 'token_unavailable')).toBe(true);
    // Events while the browser is away are caught up on resume.
    await gatewayEvent('worklist.added', 'ACC3');
    managerDown = false;
    const missed = sub.once('event');
    await r.nth('connected', 2, 15_000);
    expect((await missed).subject).toBe('ACC3');
    expect(sub.state).toBe('live');
  });

  it('stops for good on a permanent refusal (a token for another audience) after one fresh-token retry', async () => {
    const r = client({ getToken: () => fx.session({ claims: { aud: 'not-this-relay' } }) });
    r.client.connect();
    const { error } = await r.nth('closed', 1);
    expect(error?.code).toBe('unauthenticated');
    expect(r.client.state).toBe('closed');
    expect(r.count('connected')).toBe(0);
  });

  it('reconnects after the relay node restarts (1001) and catches up without duplicates', async () => {
    const r = client();
    r.client.connect();
    const sub = r.client.subscribe('site-a');
    await sub.once('snapshot');
    const seen: SiteEvent[] = [];
    sub.on('event', (e) => seen.push(e));
    await gatewayEvent('worklist.added', 'ACC4');
    await expect.poll(() => seen.length).toBe(1);
    const port = relay.port!;
    await relay.close();
    const gone = await r.nth('disconnected', 1);
    expect(gone.code).toBe(1001);
    // Same stores (MemoryHub), same port: the restarted node.
    relay = await startOn(port);
    const again = await fx.gateway(relay, 'gw-1');
    gw = again.client;
    expect(again.welcome.acked).toBe(seq);
    await gatewayEvent('procedure.started', 'ACC4');
    await gatewayEvent('images.received', 'ACC4', { count: 1 });
    await r.nth('connected', 2);
    await expect.poll(() => seen.filter((e) => e.seq > 0).length, { timeout: 10_000 }).toBe(3);
    const keys = seen.map((e) => `${e.gateway}:${e.seq > 0 ? e.seq : e.position}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(seen.filter((e) => e.seq > 0).map((e) => e.kind)).toEqual([
      'worklist.added',
      'procedure.started',
      'images.received',
    ]);
  });

  it('resumes past the relay’s catch-up limit with a resync: the board is rebuilt from the snapshot', async () => {
    // The browser's node holds little catch-up; a second node (same stores) stays up for another gateway.
    relay = await fx.start({ limits: { maxCatchUpEvents: 2 } });
    const port = relay.port!;
    // A second node (same stores) that stays up and carries another gateway of the site.
    const other = await fx.start({ limits: { maxCatchUpEvents: 2 } });
    const gw2 = (await fx.gateway(other, 'gw-2')).client;
    const r = client();
    r.client.connect();
    const sub = r.client.subscribe('site-a');
    await sub.once('snapshot');
    await relay.close();
    await r.nth('disconnected', 1);
    for (let i = 1; i <= 4; i++) {
      gw2.send({ type: 'event', seq: i, kind: 'worklist.added', subject: `R${i}`, at: Date.now(), data: {} });
      await gw2.next('event.ack', (m) => m.seq === i);
    }
    const resync = sub.once('snapshot');
    relay = await startOn(port, { limits: { maxCatchUpEvents: 2 } });
    const { reason, board } = await resync;
    expect(reason).toBe('resync');
    expect([...board.keys()].filter((k) => k.startsWith('R')).sort()).toEqual(['R1', 'R2', 'R3', 'R4']);
    expect(sub.state).toBe('live');
    // After the resync, a live event that the snapshot already held is not passed on again.
    const seen: SiteEvent[] = [];
    sub.on('event', (e) => seen.push(e));
    gw2.send({ type: 'event', seq: 5, kind: 'procedure.started', subject: 'R4', at: Date.now(), data: {} });
    await expect.poll(() => seen.filter((e) => e.seq === 5).length).toBe(1);
    expect(seen.filter((e) => e.gateway === 'gw-2' && e.seq <= 4)).toEqual([]);
  });
});
