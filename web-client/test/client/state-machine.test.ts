/**
 * The client's state machine against a fake relay: close-code ranges decide reconnect or stop, the backoff is
 * full jitter, a silent link is replaced, a malformed frame is refused without dropping the connection.
 */
import { SUBPROTOCOLS, type WebTransportConstructor, type WebTransportLike } from '@scanrelay/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { DEFAULT_BACKOFF, fullJitterDelay, type WebSocketConstructor } from '../../src/index.js';
import { FakeRelay, greet } from '../helpers/fake-relay.js';
import { type Recorded, recordedClient } from '../helpers/node-client.js';

const WS = WebSocket as unknown as WebSocketConstructor;

describe('client state machine (fake relay)', () => {
  let relay: FakeRelay | undefined;
  const clients: Recorded[] = [];

  afterEach(async () => {
    for (const c of clients.splice(0)) c.client.close();
    await relay?.close();
    relay = undefined;
  });

  function client(extra: Partial<Parameters<typeof recordedClient>[0]> = {}): Recorded {
    const r = recordedClient({
      url: relay!.url,
      codec: 'json',
      WebSocket: WS,
      getToken: async () => 'header.payload.signature',
      reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
      ...extra,
    });
    clients.push(r);
    return r;
  }

  it('goes disconnected → connecting → authenticating → connected, offering the codec’s subprotocol', async () => {
    relay = await FakeRelay.start((c) => void greet(c));
    const r = client();
    r.client.connect();
    const info = await r.nth('connected', 1);
    expect(info.session).toBe('s-1');
    expect(r.events.filter((e) => e.type === 'state').map((e) => (e.payload as { to: string }).to)).toEqual([
      'connecting',
      'authenticating',
      'connected',
    ]);
    expect(relay.connections[0]!.ws.protocol).toBe(SUBPROTOCOLS.json);
    expect(relay.connections[0]!.received[0]).toEqual({ type: 'hello', token: 'header.payload.signature' });
  });

  it('reconnects after a transient close (4000–4499) and re-sends hello', async () => {
    relay = await FakeRelay.start((c) => {
      void greet(c).then(() => {
        if (relay!.connections.length === 1) c.ws.close(4001, 'rate_limited');
      });
    });
    const r = client();
    r.client.connect();
    const gone = await r.nth('disconnected', 1);
    expect(gone.code).toBe(4001);
    expect(gone.error?.code).toBe('rate_limited');
    expect(gone.reconnectInMs).toBeGreaterThanOrEqual(0);
    await r.nth('connected', 2);
    expect(relay.connections).toHaveLength(2);
  });

  it.each([
    [4503, 'forbidden'],
    [4506, 'revoked'],
    [4505, 'replaced'],
    [4500, 'bad_message'],
  ])('stops for good on close %i (%s): closed, no second connection, pending commands fail', async (code, name) => {
    relay = await FakeRelay.start((c) => void greet(c));
    const r = client();
    r.client.connect();
    await r.nth('connected', 1);
    const handle = r.client.send('a.b.c');
    await relay.connections[0]!.next('command');
    relay.connections[0]!.ws.close(code, name);
    const { error } = await r.nth('closed', 1);
    expect(error?.code).toBe(name);
    expect(r.client.state).toBe('closed');
    expect((await handle.done).state).toBe('error');
    expect(relay.connections).toHaveLength(1);
  });

  it('a relay error before close (bad hello) is what the closed event reports', async () => {
    relay = await FakeRelay.start((c) => {
      void c.next('hello').then(() => {
        c.send({ type: 'error', code: 'forbidden', message: 'no' });
        c.ws.close(4503, 'forbidden');
      });
    });
    const r = client();
    r.client.connect();
    const { error } = await r.nth('closed', 1);
    expect(error?.code).toBe('forbidden');
    expect(error?.message).toBe('no');
  });

  it('ignores a frame that fails the protocol schema, reports protocol_violation, stays connected', async () => {
    relay = await FakeRelay.start((c) => {
      void greet(c).then(() => {
        c.send({ type: 'event', site: 'site-a', surprise: true });
        c.send({ type: 'pong' });
      });
    });
    const r = client();
    r.client.connect();
    const error = await r.nth('error', 1);
    expect(error.code).toBe('protocol_violation');
    expect(r.client.state).toBe('connected');
  });

  it('a link that answers nothing is declared dead after a ping interval and replaced', async () => {
    relay = await FakeRelay.start(
      (c) =>
        void greet(c, {
          limits: { maxMessageBytes: 65536, maxSubscriptions: 64, messagesPerSecond: 50, pingIntervalMs: 1000 },
        }),
    );
    const r = client();
    r.client.connect();
    await r.nth('connected', 1);
    const gone = await r.nth('disconnected', 1, 10_000);
    expect(gone.code).toBe(4000);
    expect(relay.connections[0]!.received.some((m) => m.type === 'ping')).toBe(true);
    await r.nth('connected', 2, 10_000);
  });

  it('a command sent while disconnected goes out once connected', async () => {
    relay = await FakeRelay.start((c) => void greet(c));
    const r = client();
    const handle = r.client.send('x.eyJqdGkiOiJjbWQtNDIifQ.z');
    expect(handle.command).toBe('cmd-42');
    r.client.connect();
    const msg = await new Promise<Record<string, unknown>>((resolve) => {
      const wait = () =>
        relay!.connections[0] ? relay!.connections[0].next('command').then(resolve) : setTimeout(wait, 5);
      wait();
    });
    expect(msg).toMatchObject({ type: 'command', ref: handle.ref, token: 'x.eyJqdGkiOiJjbWQtNDIifQ.z' });
    relay.connections[0]!.send({
      type: 'command.status',
      ref: handle.ref,
      command: 'cmd-42',
      state: 'rejected',
      detail: { reason: 'expired' },
    });
    expect(await handle.done).toMatchObject({ state: 'rejected', command: 'cmd-42', detail: { reason: 'expired' } });
  });

  it('a getToken() that never answers is cut at tokenTimeoutMs: token_unavailable, then retried with backoff', async () => {
    relay = await FakeRelay.start((c) => void greet(c));
    let calls = 0;
    const r = client({
      tokenTimeoutMs: 100,
      getToken: () => {
        calls++;
        // The manage app hangs on the first call only; the retry gets a token.
        return calls === 1 ? new Promise<string>(() => undefined) : Promise.resolve('header.payload.signature');
      },
    });
    r.client.connect();
    const error = await r.nth('error', 1);
    expect(error.code).toBe('token_unavailable');
    expect(error.message).toMatch(/did not answer within 100 ms/);
    const gone = await r.nth('disconnected', 1);
    expect(gone.error?.code).toBe('token_unavailable');
    expect(gone.reconnectInMs).toBeDefined();
    expect(relay.connections).toHaveLength(0); // no socket was opened without a token
    await r.nth('connected', 1);
    expect(calls).toBe(2);
  });

  describe('WebTransport attempt (a stand-in implementation on the client side of the wire)', () => {
    /** A WebTransport whose session never opens, or closes with `close` right after it is ready. */
    function fakeWebTransport(behaviour: { close?: { closeCode: number; reason: string } }): {
      Impl: WebTransportConstructor;
      made: () => number;
    } {
      let made = 0;
      class Fake implements WebTransportLike {
        readonly ready: Promise<unknown>;
        readonly closed: Promise<{ closeCode?: number; reason?: string }>;
        constructor() {
          made++;
          const close = behaviour.close;
          this.ready = close ? Promise.resolve() : new Promise(() => undefined);
          this.closed = close
            ? new Promise((resolve) => setTimeout(() => resolve(close), 10))
            : new Promise(() => undefined);
        }
        async createBidirectionalStream() {
          return {
            readable: { getReader: () => ({ read: () => new Promise<never>(() => undefined) }) },
            writable: { getWriter: () => ({ write: async () => undefined, close: async () => undefined }) },
          };
        }
        close() {}
      }
      return { Impl: Fake, made: () => made };
    }

    it('a session that does not open within openTimeoutMs falls back to WebSocket in the same attempt', async () => {
      relay = await FakeRelay.start((c) => void greet(c));
      const wt = fakeWebTransport({});
      const r = client({
        storage: null,
        webTransport: { url: 'https://127.0.0.1:1', WebTransport: wt.Impl, openTimeoutMs: 50 },
      });
      r.client.connect();
      await r.nth('connected', 1);
      expect(r.client.transport).toBe('websocket');
      expect((await r.nth('transport', 1)).fallback?.code).toBe('connect_failed');
      expect(r.count('disconnected')).toBe(0);
      expect(wt.made()).toBe(1);
    });

    it('a relay close code (4503) before the session opened is the relay’s answer, not a reason to fall back', async () => {
      relay = await FakeRelay.start((c) => void greet(c));
      const wt = fakeWebTransport({ close: { closeCode: 4503, reason: 'forbidden' } });
      const r = client({ storage: null, webTransport: { url: 'https://127.0.0.1:1', WebTransport: wt.Impl } });
      r.client.connect();
      const { error } = await r.nth('closed', 1);
      expect(error?.code).toBe('forbidden');
      expect(relay.connections).toHaveLength(0);
      expect(r.count('transport')).toBe(0);
    });

    it('a storage that throws (sandboxed frame) still falls back and remembers in memory', async () => {
      relay = await FakeRelay.start((c) => void greet(c));
      const wt = fakeWebTransport({});
      const throwing = {
        getItem: (): string | null => {
          throw new Error('SecurityError');
        },
        setItem: () => {
          throw new Error('SecurityError');
        },
      };
      const r = client({
        storage: throwing,
        webTransport: { url: 'https://127.0.0.1:1', WebTransport: wt.Impl, openTimeoutMs: 50 },
      });
      r.client.connect();
      await r.nth('connected', 1);
      relay.connections[0]!.ws.close(4001, 'rate_limited');
      await r.nth('connected', 2);
      expect(r.client.transport).toBe('websocket');
      expect(wt.made()).toBe(1);
    });
  });

  it('full-jitter backoff stays within [0, min(max, initial·2ⁿ)]', () => {
    expect(fullJitterDelay(0, 0.999, DEFAULT_BACKOFF)).toBeLessThan(500);
    expect(fullJitterDelay(3, 0.5, DEFAULT_BACKOFF)).toBe(2000);
    expect(fullJitterDelay(20, 0.999, DEFAULT_BACKOFF)).toBeLessThan(30_000);
    expect(fullJitterDelay(1000, 0, DEFAULT_BACKOFF)).toBe(0);
  });
});
