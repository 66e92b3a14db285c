/**
 * The ws transport and the upgrade policy (SECURITY.md 28–31, 40): Origin allowlist (403), subprotocol
 * (400), unknown path (404), per-IP cap (429), oversized frames (1009), frame-level violations, plain HTTP
 * routes, and graceful shutdown (1001).
 */
import { connect } from 'node:net';
import { encodeMessage } from '@scanrelay/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { TestClient, upgradeStatus } from '../helpers/client.js';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture, ORIGIN, until } from '../helpers/relay-fixture.js';
import { itOverWebSocket } from '../transport-webtransport/wire.js';

let fx: Fixture;
afterEach(async () => {
  await fx.close();
});

/** Write raw bytes after a real handshake and collect what comes back until the socket closes. */
/**
 * The suite also runs on uWS (relay/test/transport-uws/on-uws). uWS ends the TCP connection on a protocol
 * error without sending a close frame (its C++ core has no hook for one), so there the check is that the
 * server itself closed the socket rather than a close code.
 */
const onUws = process.env.SCANRELAY_TEST_TRANSPORT === 'uws';
/** Whether the last rawExchange ended because the server closed the socket (not by our 3 s timeout). */
let serverClosedLast = false;

async function rawExchange(port: number, frames: Buffer[]): Promise<Buffer> {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (d) => chunks.push(d));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(
    'GET /v1/gateway HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
      'Sec-WebSocket-Protocol: scanrelay.v1.json\r\n\r\n',
  );
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (Buffer.concat(chunks).includes('\r\n\r\n')) {
        socket.off('data', check);
        resolve();
      }
    };
    socket.on('data', check);
  });
  for (const f of frames) socket.write(f);
  serverClosedLast = true;
  await new Promise<void>((resolve) => {
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
    setTimeout(() => {
      serverClosedLast = false;
      socket.destroy();
      resolve();
    }, 3_000).unref();
  });
  return Buffer.concat(chunks);
}

/** Close code in the first close frame of a server byte stream after the 101 response. */
function closeCodeIn(bytes: Buffer): number | undefined {
  const start = bytes.indexOf('\r\n\r\n') + 4;
  for (let i = start; i < bytes.length - 3; i++) {
    if (bytes[i] === 0x88) return bytes.readUInt16BE(i + 2);
  }
  return undefined;
}

/** A masked client frame. */
function frame(opcode: number, payload: Buffer, opts: { fin?: boolean; rsv1?: boolean; mask?: boolean } = {}): Buffer {
  const { fin = true, rsv1 = false, mask = true } = opts;
  const head = [(fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode, (mask ? 0x80 : 0) | payload.length];
  const key = Buffer.from([1, 2, 3, 4]);
  const body = mask ? Buffer.from(payload.map((b, i) => b ^ key[i % 4]!)) : payload;
  return Buffer.concat([Buffer.from(head), mask ? key : Buffer.alloc(0), body]);
}

describe('upgrade policy', () => {
  // WebTransport: no HTTP upgrade; Origin is refused at the CONNECT (on-webtransport/transport-equivalents).
  itOverWebSocket('refuses browsers without an allowed Origin with 403 (28)', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const url = fx.url(relay, 'browser');
    expect(await upgradeStatus(url, {})).toBe(403);
    expect(await upgradeStatus(url, { origin: 'https://evil.test' })).toBe(403);
    expect(await upgradeStatus(url, { origin: 'https://manage.scanrelay.test.evil.test' })).toBe(403);
    expect(await upgradeStatus(url, { origin: 'https://evilmanage.scanrelay.test' })).toBe(403);
    expect(await upgradeStatus(url, { origin: 'http://manage.scanrelay.test' })).toBe(403);
    expect(await upgradeStatus(url, { origin: `${ORIGIN}/path` })).toBe(403);
    expect(await upgradeStatus(url, { origin: 'null' })).toBe(403);
    expect(await upgradeStatus(url, { origin: ORIGIN })).toBe(101);
    // Gateways need no Origin.
    expect(await upgradeStatus(fx.url(relay, 'gateway'), {})).toBe(101);
  });

  // WebTransport: the subprotocol travels in the stream preamble (4500 there; transport-equivalents).
  itOverWebSocket(
    'refuses an upgrade offering neither subprotocol with 400, and answers only a fixed name',
    async () => {
      fx = await createFixture();
      const relay = await fx.start();
      const url = fx.url(relay, 'gateway');
      expect(await upgradeStatus(url, { protocols: [] })).toBe(400);
      expect(await upgradeStatus(url, { protocols: ['chat', 'scanrelay.v2.json'] })).toBe(400);
      const c = await TestClient.connect(url, { protocols: ['chat', 'scanrelay.v1.json', 'scanrelay.v1.msgpack'] });
      expect(c.ws.protocol).toBe('scanrelay.v1.msgpack');
      c.close();
      const j = await TestClient.connect(url, { protocols: ['scanrelay.v1.json'] });
      expect(j.ws.protocol).toBe('scanrelay.v1.json');
      j.close();
    },
  );

  // WebTransport: the CONNECT answers 404 (transport-equivalents).
  itOverWebSocket('answers 404 for other paths and never reads a query string', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    expect(await upgradeStatus(fx.url(relay, '/v1/other'), {})).toBe(404);
    expect(await upgradeStatus(fx.url(relay, '/v1/gateway?token=abc'), {})).toBe(101);
  });

  // WebTransport: the peer address is known only after the CONNECT, so the cap closes 4001 (transport-equivalents).
  itOverWebSocket('caps connections per IP before authentication with 429 (40)', async () => {
    fx = await createFixture();
    const relay = await fx.start({ limits: { maxConnectionsPerIp: 3 } });
    const url = fx.url(relay, 'gateway');
    const open = [await fx.connectGateway(relay), await fx.connectGateway(relay), await fx.connectGateway(relay)];
    expect(await upgradeStatus(url, {})).toBe(429);
    open[0]!.close();
    await until(() => relay.connectionCount === 2, 'a slot to free up');
    expect(await upgradeStatus(url, {})).toBe(101);
  });

  // WebTransport: the adapter counts the QUIC/TLS peer address; no proxy in front of it adds X-Forwarded-For.
  itOverWebSocket(
    'behind a trusted proxy, counts the X-Forwarded-For client; otherwise ignores the header',
    async () => {
      fx = await createFixture();
      const trusted = await fx.start({ trustProxy: true, limits: { maxConnectionsPerIp: 1 } });
      const direct = await fx.start({ limits: { maxConnectionsPerIp: 1 } });
      const xff = (ip: string) => ({ headers: { 'x-forwarded-for': `6.6.6.6, ${ip}` } });
      await fx.connectGateway(trusted, xff('10.0.0.1'));
      expect(await upgradeStatus(fx.url(trusted, 'gateway'), xff('10.0.0.2'))).toBe(101);
      expect(await upgradeStatus(fx.url(trusted, 'gateway'), xff('10.0.0.1'))).toBe(429);
      await fx.connectGateway(direct, xff('10.0.0.1'));
      expect(await upgradeStatus(fx.url(direct, 'gateway'), xff('10.0.0.2'))).toBe(429);
    },
  );

  it('caps browser connections per user with rate_limited (4001)', async () => {
    fx = await createFixture();
    const relay = await fx.start({ limits: { maxConnectionsPerUser: 2 } });
    await fx.browser(relay, { sub: 'u' });
    await fx.browser(relay, { sub: 'u' });
    const third = await fx.connectBrowser(relay);
    third.send({ type: 'hello', token: await fx.session({ sub: 'u' }) });
    expect((await third.next('error')).code).toBe('rate_limited');
    expect((await third.closed).code).toBe(4001);
    await fx.browser(relay, { sub: 'other' });
  });
});

describe('frames', () => {
  it('closes an oversized frame with 1009 and keeps serving (29)', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const { client } = await fx.browser(relay);
    client.sendRaw(JSON.stringify({ type: 'ping', ref: 'x'.repeat(70_000) }));
    expect((await client.closed).code).toBe(1009);
    const again = await fx.browser(relay);
    await again.client.roundTrip();
  });

  // WebTransport has no WebSocket framing (bad UTF-8 → 1007 is in transport-equivalents).
  itOverWebSocket(
    'closes compressed (RSV1), unmasked and reserved-opcode frames with 1002, bad UTF-8 with 1007 (30, 31)',
    async () => {
      fx = await createFixture();
      const relay = await fx.start();
      const port = relay.port!;
      const ping = Buffer.from(JSON.stringify({ type: 'ping' }));
      const closedWith = async (bytes: Promise<Buffer>, code: number, uwsCloses = true): Promise<void> => {
        const received = closeCodeIn(await bytes);
        if (onUws)
          expect({ received, serverClosed: serverClosedLast }).toEqual({
            received: undefined,
            serverClosed: uwsCloses,
          });
        else expect(received).toBe(code);
      };
      await closedWith(rawExchange(port, [frame(1, ping, { rsv1: true })]), 1002);
      // uWS reads an unmasked frame's first payload bytes as a mask and waits for the rest: nothing is
      // delivered, and the hello deadline closes the socket later.
      await closedWith(rawExchange(port, [frame(1, ping, { mask: false })]), 1002, false);
      await closedWith(rawExchange(port, [frame(3, ping)]), 1002);
      await closedWith(rawExchange(port, [frame(1, Buffer.from([0x22, 0xff, 0xfe, 0x22]))]), 1007);
      await until(() => relay.connectionCount === 0, 'raw sockets gone');
    },
  );

  // WebTransport has no fragments: one length prefix per message, capped before buffering (1009).
  itOverWebSocket('refuses a fragment flood (many tiny continuation frames) without buffering them all', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const frames = [frame(1, Buffer.from('{'), { fin: false })];
    for (let i = 0; i < 300; i++) frames.push(frame(0, Buffer.from(' '), { fin: false }));
    // ws refuses more fragments than configured with 1008 (policy violation). uWS has no fragment count: it
    // appends fragments to one buffer capped by maxPayloadLength, so a flood costs no more than one big frame;
    // there the socket stays open, nothing is delivered, and the relay keeps serving.
    const code = closeCodeIn(await rawExchange(relay.port!, [Buffer.concat(frames)]));
    if (onUws) {
      expect({ code, serverClosed: serverClosedLast }).toEqual({ code: undefined, serverClosed: false });
      await (await fx.browser(relay)).client.roundTrip();
    } else expect(code).toBe(1008);
  });
});

describe('hostile msgpack (32)', () => {
  it('refuses deep nesting, huge declared lengths, extension types, __proto__ keys, trailing bytes and int64', async () => {
    fx = await createFixture();
    const relay = await fx.start({ limits: { maxBadMessages: 100 } });
    const gw = await fx.gateway(relay, 'gw-1', { codec: 'msgpack' });
    const ping = encodeMessage('msgpack', { type: 'ping' }) as Uint8Array;
    const hostile: Uint8Array[] = [
      Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff]), // array32 claiming 2^32-1 elements
      Uint8Array.from([0xdf, 0xff, 0xff, 0xff, 0xff]), // map32 likewise
      Uint8Array.from(Array(30_000).fill(0x91)), // 30,000 nested arrays
      Uint8Array.from([0xd4, 0x65, 0x00]), // Error extension
      Uint8Array.from([0xd6, 0xff, 0, 0, 0, 0]), // Date extension (timestamp)
      Uint8Array.from([0xc7, 0x01, 0x73, 0x90]), // Set extension
      Buffer.concat([ping, Buffer.from([0xc0])]), // trailing byte
      encodeMessage('msgpack', { type: 'event', seq: 1n, kind: 'a.b', at: 1, data: {} } as never) as Uint8Array,
      Buffer.from(
        '82a474797065a570696e67a95f5f70726f746f5f5f81a8706f6c6c75746564c3', // {type:'ping', __proto__:{polluted:true}}
        'hex',
      ),
    ];
    for (const frame of hostile) {
      gw.client.sendRaw(Buffer.from(frame), true);
      expect((await gw.client.next('error')).code).toBe('bad_message');
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const deep = Buffer.from(Array(100_000).fill(0x91)); // past the frame cap: 1009 before any decoding
    gw.client.sendRaw(deep, true);
    expect((await gw.client.closed).code).toBe(1009);
  });
});

describe('http routes', () => {
  it('serves /healthz, /readyz, /version and /metrics; 404 and 405 as JSON', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    await fx.browser(relay);
    const get = (p: string, init?: RequestInit) => fetch(fx.http(relay, p), init);
    expect(await (await get('/healthz')).json()).toEqual({ status: 'ok' });
    expect((await get('/readyz')).status).toBe(200);
    const version = (await (await get('/version')).json()) as Record<string, unknown>;
    expect(version).toMatchObject({
      name: 'scanrelay-relay',
      protocol: 1,
      node: 'node-1',
      transport: onUws ? 'uws' : 'ws',
    });
    const metrics = await (await get('/metrics')).text();
    expect(metrics).toContain('scanrelay_connections{role="browser"} 1');
    expect(metrics).toContain('scanrelay_messages_in_total{role="browser",type="hello"} 1');
    const missing = await get('/nope');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'not_found' });
    expect((await get('/healthz', { method: 'POST' })).status).toBe(405);
  });
});

describe('shutdown', () => {
  it('closes every client with 1001 shutting_down, refuses new upgrades, and reports not ready', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const { client } = await fx.browser(relay);
    const gw = await fx.gateway(relay, 'gw-1');
    const pending = await fx.connectBrowser(relay);
    const closing = relay.close();
    for (const c of [client, gw.client, pending]) {
      expect(await c.closed).toEqual({ code: 1001, reason: 'shutting_down' });
    }
    await closing;
    expect(relay.ready).toBe(false);
    await expect(fetch(fx.http(relay, '/healthz'))).rejects.toThrow();
    // Its messages were valid protocol (an error then the close).
    expect(client.received.at(-1)).toMatchObject({ type: 'error', code: 'shutting_down' });
    expect(encodeMessage('json', { type: 'ping' })).toBe('{"type":"ping"}');
  });
});
