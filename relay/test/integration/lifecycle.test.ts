/**
 * Connection lifecycle (DESIGN.md "Connection lifecycle"): hello → welcome for both roles, what happens
 * before and instead of hello, ping/pong, bad messages, and refused tokens with their close codes
 * (SECURITY.md cases 15, 16).
 */
import { CODES } from '@scanrelay/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../contract/manual-clock.js';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture } from '../helpers/relay-fixture.js';
import { forgeUnsigned, generateManageKey, mintSession, TEST_ISSUER } from '../helpers/tokens.js';
import { itOverWebSocket } from '../transport-webtransport/wire.js';

let fx: Fixture;
afterEach(async () => {
  await fx.close();
});

describe('hello', () => {
  it('welcomes a browser with its session, node, expiry and limits', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const { welcome } = await fx.browser(relay, { ttlSeconds: 600 });
    expect(welcome).toMatchObject({
      type: 'welcome',
      node: 'node-1',
      limits: { maxMessageBytes: 65_536, maxSubscriptions: 64, messagesPerSecond: 50, pingIntervalMs: 15_000 },
    });
    expect(typeof welcome.session).toBe('string');
    expect(welcome.expiresAt).toBeGreaterThan(Date.now() + 500_000);
  });

  it('welcomes a gateway with its identity and acked = 0 when nothing is stored', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const { welcome } = await fx.gateway(relay, 'gw-1', { site: 'site-a', codec: 'msgpack' });
    expect(welcome).toEqual({ type: 'welcome', gateway: 'gw-1', site: 'site-a', node: 'node-1', acked: 0 });
  });

  it('closes with unauthenticated (4501) when no hello arrives in time', async () => {
    const clock = new ManualClock();
    fx = await createFixture({ clock });
    const relay = await fx.start({ limits: { helloTimeoutMs: 1_000 } });
    const c = await fx.connectBrowser(relay);
    const gw = await fx.connectGateway(relay);
    clock.advance(999);
    expect(relay.connectionCount).toBe(2);
    clock.advance(2);
    for (const client of [c, gw]) {
      expect((await client.next('error')).code).toBe('unauthenticated');
      expect((await client.closed).code).toBe(4501);
    }
  });

  it('closes with unauthenticated when anything but hello comes first (case 15)', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    for (const first of [
      { type: 'subscribe', site: 'site-a' },
      { type: 'command', ref: 'r1', token: 'x.y.z' },
      { type: 'ping' },
    ]) {
      const c = await fx.connectBrowser(relay);
      c.send(first);
      expect((await c.next('error')).code).toBe('unauthenticated');
      const closed = await c.closed;
      expect(closed).toEqual({ code: CODES.unauthenticated.closeCode, reason: 'unauthenticated' });
    }
  });

  it('refuses a second hello as a bad message', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const { client, token } = await fx.browser(relay);
    client.send({ type: 'hello', token });
    expect((await client.next('error')).code).toBe('bad_message');
  });

  it.each([
    ['wrong aud', { aud: 'another-relay' }, {}],
    ['wrong iss', { iss: 'https://evil.test' }, {}],
    ['wrong typ', {}, { typ: 'JWT' }],
  ])('refuses a session token with %s and closes 4501 (case 16)', async (_what, claims, header) => {
    fx = await createFixture();
    const relay = await fx.start();
    const c = await fx.connectBrowser(relay);
    c.send({ type: 'hello', token: await mintSession(fx.manage, { claims, header }) });
    expect((await c.next('error')).code).toBe('unauthenticated');
    expect((await c.closed).code).toBe(4501);
    const rejections = await relay.metrics.authRejections.get();
    expect(rejections.values.some((v) => v.labels.role === 'browser' && v.value >= 1)).toBe(true);
  });

  it('refuses an alg:none token, a token signed by an unpinned key, and an expired one', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const other = await generateManageKey({ kid: fx.manage.kid });
    const tokens = [
      forgeUnsigned({ typ: 'scanrelay-session+jwt', kid: fx.manage.kid }, { iss: TEST_ISSUER, sub: 'u' }),
      await mintSession(other),
    ];
    for (const token of tokens) {
      const c = await fx.connectBrowser(relay);
      c.send({ type: 'hello', token });
      expect((await c.next('error')).code).toBe('unauthenticated');
      expect((await c.closed).code).toBe(4501);
    }
    const c = await fx.connectBrowser(relay);
    c.send({ type: 'hello', token: await mintSession(fx.manage, { now: Date.now() - 3_600_000, ttlSeconds: 60 }) });
    const err = await c.next('error');
    expect(['token_expired', 'unauthenticated']).toContain(err.code);
    expect((await c.closed).code).toBe(CODES[err.code as 'token_expired'].closeCode);
  });

  it('refuses a session token offered as a gateway assertion, and a gateway nobody registered', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const c = await fx.connectGateway(relay);
    c.send({ type: 'hello', token: await fx.session() });
    expect((await c.next('error')).code).toBe('unauthenticated');
    expect((await c.closed).code).toBe(4501);
  });
});

describe('after welcome', () => {
  it('answers ping with pong carrying the ref, for both roles', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const { client } = await fx.browser(relay);
    client.send({ type: 'ping', ref: 'p-1' });
    expect(await client.next('pong')).toEqual({ type: 'pong', ref: 'p-1' });
    client.send({ type: 'ping' });
    expect(await client.next('pong')).toEqual({ type: 'pong' });
    const gw = await fx.gateway(relay, 'gw-1');
    gw.client.send({ type: 'ping', ref: 'g' });
    expect(await gw.client.next('pong')).toEqual({ type: 'pong', ref: 'g' });
  });

  it('names the bad field, and closes 4500 after repeated bad messages', async () => {
    fx = await createFixture();
    const relay = await fx.start({ limits: { maxBadMessages: 3 } });
    const { client } = await fx.browser(relay);
    client.send({ type: 'subscribe', site: 'site-a', extra: 1 });
    const e1 = await client.next('error');
    expect(e1).toMatchObject({ code: 'bad_message' });
    expect(e1.message).toContain('extra');
    client.sendRaw('{not json');
    expect((await client.next('error')).message).toMatch(/JSON/);
    client.send({ type: 'event', seq: 1, kind: 'a.b', at: 1, data: {} }); // a gateway's message type
    expect((await client.next('error')).code).toBe('bad_message');
    expect(await client.closed).toEqual({ code: 4500, reason: 'bad_message' });
  });

  // WebTransport frames carry no text/binary flag: the codec alone decides how a frame is read.
  itOverWebSocket('answers a binary frame on the JSON subprotocol (and text on msgpack) with bad_message', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const { client } = await fx.browser(relay);
    client.sendRaw(Buffer.from('{"type":"ping"}'), true);
    expect((await client.next('error')).message).toMatch(/binary/);
    const m = await fx.browser(relay, { codec: 'msgpack' });
    m.client.sendRaw('{"type":"ping"}', false);
    expect((await m.client.next('error')).message).toMatch(/text frame/);
  });
});
