/**
 * The client library over WebTransport against the real relay (createRelay with its WebTransport listener on
 * port 0, a self-signed certificate made with openssl and pinned by SHA-256), using Node's implementation
 * (`@fails-components/webtransport`, HTTP/2). The gateway side is the relay's protocol test client, on
 * WebSocket — a stand-in only for the other end of the gateway socket.
 */
import { createServer } from 'node:net';
import type { WebTransportConstructor } from '@scanrelay/protocol';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RelayConfigInput } from '../../../relay/src/config.js';
import type { Relay } from '../../../relay/src/relay.js';
import type { TestClient } from '../../../relay/test/helpers/client.js';
import { createFixture, type Fixture, ORIGIN } from '../../../relay/test/helpers/relay-fixture.js';
import type { ClientOptions, SiteEvent } from '../../src/index.js';
import { type Recorded, recordedClient, wsWithOrigin } from '../helpers/node-client.js';
import {
  browserOriginOnWebTransport,
  countingWebTransport,
  makeCertificate,
  memoryStorage,
  type TestCertificate,
} from '../helpers/webtransport.js';

const WS = wsWithOrigin(ORIGIN);
let tls: TestCertificate;
let undoOrigin: () => void;
beforeAll(() => {
  tls = makeCertificate();
  undoOrigin = browserOriginOnWebTransport(ORIGIN);
});
afterAll(() => {
  tls?.remove();
  undoOrigin?.();
});

/** A loopback port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const { port } = s.address() as { port: number };
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe('client over WebTransport ↔ real relay', () => {
  let fx: Fixture;
  let relay: Relay;
  let gw: TestClient;
  let seq = 0;
  const clients: Recorded[] = [];

  const wtConfig = (webTransportPort = 0): RelayConfigInput => ({
    webTransportPort,
    webTransportCert: tls.cert,
    webTransportKey: tls.key,
  });

  beforeEach(async () => {
    fx = await createFixture();
    relay = await fx.start(wtConfig());
    gw = (await fx.gateway(relay, 'gw-1')).client;
    seq = 0;
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.client.close();
    await fx.close();
  });

  function client(
    opts: Partial<ClientOptions> & { wtPort?: number; sha256?: string; WebTransport?: WebTransportConstructor } = {},
  ): Recorded {
    const { wtPort, sha256, WebTransport, ...rest } = opts;
    const r = recordedClient({
      url: `http://127.0.0.1:${relay.port}`,
      WebSocket: WS,
      getToken: () => fx.session({ sites: ['site-a'] }),
      reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
      storage: null,
      ...rest,
      webTransport: {
        url: `https://127.0.0.1:${wtPort ?? relay.webTransportPort}`,
        serverCertificateHashes: [{ algorithm: 'sha-256', value: sha256 ?? tls.sha256 }],
        options: { forceReliable: true },
        openTimeoutMs: 5_000,
        ...(WebTransport ? { WebTransport } : {}),
      },
    });
    clients.push(r);
    return r;
  }

  /** Start a node again on fixed ports; the old listeners can take a moment to let go of them. */
  async function startOn(config: RelayConfigInput): Promise<Relay> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fx.start(config);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 40) throw err;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  async function gatewayEvent(kind: string, subject: string, data: Record<string, unknown> = {}): Promise<number> {
    const s = ++seq;
    gw.send({ type: 'event', seq: s, kind, subject, at: Date.now(), data });
    await gw.next('event.ack', (m) => m.seq === s);
    return s;
  }

  it.each(['msgpack', 'json'] as const)(
    'subscribes, streams events and runs a command to completed over WebTransport (%s)',
    async (codec) => {
      const { WebTransport, opened } = await countingWebTransport();
      await gatewayEvent('worklist.added', 'ACC1');
      const r = client({ codec, WebTransport });
      r.client.connect();
      const sub = r.client.subscribe('site-a');
      const snapshot = await sub.once('snapshot');
      expect(snapshot.board.get('ACC1')?.kind).toBe('worklist.added');
      expect(r.client.transport).toBe('webtransport');
      expect(await r.nth('transport', 1)).toEqual({ transport: 'webtransport', fallback: undefined });
      expect(opened()).toBe(1);
      const live = sub.once('event');
      await gatewayEvent('procedure.started', 'ACC1');
      expect((await live).kind).toBe('procedure.started');

      const handle = r.client.send(
        await fx.command({ aud: 'gw-1', site: 'site-a', cmd: 'echo', args: { aet: 'MG1' } }),
      );
      const delivery = await gw.next('command');
      expect(delivery.command).toBe(handle.command);
      for (const state of ['verified', 'running', 'completed'] as const)
        gw.send({ type: 'command.status', command: delivery.command, state });
      const seen: string[] = [];
      for await (const status of handle) seen.push(status.state);
      expect(seen).toEqual(['accepted', 'delivered', 'verified', 'running', 'completed']);
      expect((await handle.done).state).toBe('completed');
      expect(r.count('disconnected')).toBe(0);
    },
  );

  it('renews the session in-band over WebTransport: one connection past two expiries', async () => {
    const { WebTransport } = await countingWebTransport();
    const r = client({
      getToken: () => fx.session({ sites: ['site-a'], ttlSeconds: 4 }),
      WebTransport,
    });
    r.client.connect();
    const sub = r.client.subscribe('site-a');
    await sub.once('snapshot');
    const first = r.client.session!.expiresAt;
    await r.nth('renewed', 2, 15_000);
    expect(Date.now()).toBeGreaterThan(first);
    expect(r.client.transport).toBe('webtransport');
    expect(r.count('connected')).toBe(1);
    expect(r.count('disconnected')).toBe(0);
    const live = sub.once('event');
    await gatewayEvent('procedure.started', 'ACC2');
    expect((await live).subject).toBe('ACC2');
  });

  it('falls back to WebSocket when nothing listens for WebTransport, and remembers it for the session', async () => {
    const { WebTransport, opened } = await countingWebTransport();
    const storage = memoryStorage();
    const wtPort = await deadPort();
    const r = client({ wtPort, storage, WebTransport });
    r.client.connect();
    const sub = r.client.subscribe('site-a');
    await sub.once('snapshot');
    const change = await r.nth('transport', 1);
    expect(change.transport).toBe('websocket');
    expect(change.fallback?.code).toBe('connect_failed');
    expect(r.client.transport).toBe('websocket');
    expect(opened()).toBe(1);
    // The fallback happened inside the first attempt: no disconnect, straight on to authenticating.
    expect(r.count('disconnected')).toBe(0);
    expect([...storage.map.values()]).toEqual(['websocket']);

    // A reconnect (relay node restart) goes straight to WebSocket: no second WebTransport attempt.
    const port = relay.port!;
    await relay.close();
    await r.nth('disconnected', 1);
    relay = await startOn({ ...wtConfig(), port });
    gw = (await fx.gateway(relay, 'gw-1')).client;
    await r.nth('connected', 2);
    expect(opened()).toBe(1);
    expect(r.count('transport')).toBe(1);

    // A new client in the same browser session (same storage) does not try WebTransport either.
    const again = client({ wtPort, storage, WebTransport });
    again.client.connect();
    await again.nth('connected', 1);
    expect(opened()).toBe(1);
    const remembered = await again.nth('transport', 1);
    expect(remembered.transport).toBe('websocket');
    expect(remembered.fallback?.message).toMatch(/earlier in this session/);
  });

  it('falls back to WebSocket when the WebTransport certificate does not match the pin', async () => {
    const { WebTransport, opened } = await countingWebTransport();
    const r = client({ sha256: '00'.repeat(32), WebTransport });
    r.client.connect();
    await r.nth('connected', 1);
    expect(r.client.transport).toBe('websocket');
    expect((await r.nth('transport', 1)).fallback?.code).toBe('connect_failed');
    expect(opened()).toBe(1);
  });

  it('without a WebTransport implementation uses WebSocket and says why', async () => {
    const r = client(); // Node has no globalThis.WebTransport
    r.client.connect();
    await r.nth('connected', 1);
    const change = await r.nth('transport', 1);
    expect(change.transport).toBe('websocket');
    expect(change.fallback?.message).toMatch(/no WebTransport implementation/);
  });

  it('resumes over WebTransport after the relay node restarts, without duplicates', async () => {
    const { WebTransport, opened } = await countingWebTransport();
    const r = client({ WebTransport });
    r.client.connect();
    const sub = r.client.subscribe('site-a');
    await sub.once('snapshot');
    expect(r.client.transport).toBe('webtransport');
    const seen: SiteEvent[] = [];
    sub.on('event', (e) => seen.push(e));
    await gatewayEvent('worklist.added', 'ACC4');
    await expect.poll(() => seen.length).toBe(1);
    const wtPort = relay.webTransportPort!;
    await relay.close();
    const gone = await r.nth('disconnected', 1);
    expect(gone.code).toBe(1001);
    // The new node keeps the WebTransport port but not the WebSocket one, so WebSocket cannot win a race while
    // it starts: the client must come back over WebTransport (same stores: MemoryHub).
    relay = await startOn(wtConfig(wtPort));
    const again = await fx.gateway(relay, 'gw-1');
    gw = again.client;
    expect(again.welcome.acked).toBe(seq);
    await gatewayEvent('procedure.started', 'ACC4');
    await gatewayEvent('images.received', 'ACC4', { count: 1 });
    await r.nth('connected', 2, 20_000);
    expect(r.client.transport).toBe('webtransport');
    expect(r.count('transport')).toBe(1);
    expect(opened()).toBeGreaterThanOrEqual(2);
    await expect.poll(() => seen.filter((e) => e.seq > 0).length, { timeout: 10_000 }).toBe(3);
    const keys = seen.map((e) => `${e.gateway}:${e.seq > 0 ? e.seq : e.position}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(seen.filter((e) => e.seq > 0).map((e) => e.kind)).toEqual([
      'worklist.added',
      'procedure.started',
      'images.received',
    ]);
  });
});
