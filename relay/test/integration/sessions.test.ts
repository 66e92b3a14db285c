/**
 * Session renewal and expiry (SECURITY.md 17, 18): `auth` renews in-band, `auth.expiring` comes ahead of
 * expiry, the socket closes with token_expired at expiry, and a renewal that drops a site ends that site's
 * subscription and its commands. Time is a manual clock; sockets and tokens are real.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../contract/manual-clock.js';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture } from '../helpers/relay-fixture.js';
import { mintSession } from '../helpers/tokens.js';

let fx: Fixture;
let clock: ManualClock;
afterEach(async () => {
  await fx.close();
});

async function setup() {
  clock = new ManualClock();
  // Liveness off the manual clock's path: only token expiry moves here.
  fx = await createFixture({
    clock,
    config: { timings: { pingIntervalMs: 86_400_000, livenessTimeoutMs: 172_800_000, presenceTtlMs: 172_800_000 } },
  });
  return fx.start();
}

describe('renewal', () => {
  it('renews with a fresh token for the same sub: auth.ok with the new expiry, nothing lost', async () => {
    const relay = await setup();
    const { client, welcome } = await fx.browser(relay, { ttlSeconds: 300 });
    client.send({ type: 'subscribe', site: 'site-a' });
    await client.next('subscribed');
    clock.advance(200_000);
    client.send({ type: 'auth', token: await fx.session({ ttlSeconds: 300 }), ref: 'r1' });
    const ok = await client.next('auth.ok');
    expect(ok.ref).toBe('r1');
    expect(ok.expiresAt).toBeGreaterThan(welcome.expiresAt as number);
    // The old expiry passes without a close.
    clock.advance(150_000);
    const gw = await fx.gateway(relay, 'gw-1');
    gw.client.send({ type: 'event', seq: 1, kind: 'worklist.added', at: 1, data: {} });
    await client.next('event', (m) => m.kind === 'worklist.added');
  });

  it('refuses a renewal for another user without closing; refuses a forged one and closes', async () => {
    const relay = await setup();
    const { client } = await fx.browser(relay);
    client.send({ type: 'auth', token: await fx.session({ sub: 'mallory' }), ref: 'm' });
    expect(await client.next('error')).toMatchObject({ code: 'forbidden', ref: 'm' });
    await client.roundTrip();
    client.send({
      type: 'auth',
      token: await mintSession(fx.manage, { claims: { aud: 'elsewhere' }, now: clock.now() }),
    });
    expect((await client.next('error')).code).toBe('unauthenticated');
    expect((await client.closed).code).toBe(4501);
  });

  it('refuses a renewal with an older token (iat) than the one in force: session unchanged (issue 12 item 7)', async () => {
    const relay = await setup();
    const { client } = await fx.browser(relay, { ttlSeconds: 600, sites: ['site-a'] });
    // Minted now, before the renewal below: valid, wider (site-b), but older than what will be in force.
    const older = await fx.session({ ttlSeconds: 600, sites: ['site-a', 'site-b'] });
    clock.advance(10_000);
    client.send({ type: 'auth', token: await fx.session({ ttlSeconds: 600, sites: ['site-a'] }), ref: 'new' });
    const ok = await client.next('auth.ok');
    client.send({ type: 'auth', token: older, ref: 'old' });
    expect(await client.next('error')).toMatchObject({ code: 'forbidden', ref: 'old' });
    // Unchanged: still only site-a, the socket open, expiry as the newer token set it.
    client.send({ type: 'subscribe', site: 'site-b', ref: 's' });
    expect(await client.next('error')).toMatchObject({ code: 'forbidden', ref: 's' });
    client.send({ type: 'auth', token: await fx.session({ ttlSeconds: 600, sites: ['site-a'] }), ref: 'same-iat' });
    expect((await client.next('auth.ok')).expiresAt).toBe(ok.expiresAt);
  });

  it('a renewal that removes a site ends its subscription, its events and its commands (17)', async () => {
    const relay = await setup();
    const gwB = await fx.gateway(relay, 'gw-b', { site: 'site-b' });
    const { client } = await fx.browser(relay, { sites: ['site-a', 'site-b'] });
    client.send({ type: 'subscribe', site: 'site-b' });
    await client.next('subscribed');
    gwB.client.send({ type: 'event', seq: 1, kind: 'worklist.added', at: 1, data: {} });
    await client.next('event', (m) => m.seq === 1);
    client.send({ type: 'auth', token: await fx.session({ sites: ['site-a'] }) });
    expect(await client.next('unsubscribed')).toEqual({ type: 'unsubscribed', site: 'site-b' });
    await client.next('auth.ok');
    gwB.client.send({ type: 'event', seq: 2, kind: 'worklist.added', at: 2, data: {} });
    await gwB.client.next('event.ack', (m) => m.seq === 2);
    client.send({ type: 'command', ref: 'c', token: await fx.command({ aud: 'gw-b', site: 'site-b' }) });
    expect(await client.next('error')).toMatchObject({ code: 'forbidden', ref: 'c' });
    client.send({ type: 'subscribe', site: 'site-b', ref: 's' });
    expect(await client.next('error')).toMatchObject({ code: 'forbidden', ref: 's' });
    expect(client.received.filter((m) => m.type === 'event' && m.seq === 2)).toEqual([]);
  });
});

describe('expiry', () => {
  it('warns ahead of expiry and closes with token_expired (4502) at expiry (18)', async () => {
    const relay = await setup();
    const { client, welcome } = await fx.browser(relay, { ttlSeconds: 600 });
    clock.advance(530_000);
    await client.roundTrip();
    expect(client.received.filter((m) => m.type === 'auth.expiring')).toEqual([]);
    clock.advance(15_000);
    expect(await client.next('auth.expiring')).toEqual({ type: 'auth.expiring', expiresAt: welcome.expiresAt });
    clock.advance(60_000);
    expect((await client.next('error')).code).toBe('token_expired');
    expect(await client.closed).toEqual({ code: 4502, reason: 'token_expired' });
  });

  it('warns short-lived sessions 10 % of their lifetime ahead', async () => {
    const relay = await setup();
    const { client } = await fx.browser(relay, { ttlSeconds: 100 });
    clock.advance(89_000);
    await client.roundTrip();
    expect(client.received.filter((m) => m.type === 'auth.expiring')).toEqual([]);
    clock.advance(2_000);
    await client.next('auth.expiring');
  });
});
