/**
 * Resource limits and liveness (SECURITY.md 38, 39; DESIGN.md "Presence is proven by traffic"): floods are
 * rate-limited then closed, a reader that stops reading is cut without hurting others, and a gateway process
 * that stops answering pings (SIGSTOP) is shown offline and its commands are held, not written into it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture, until } from '../helpers/relay-fixture.js';
import { describeOverWebSocket } from '../transport-webtransport/wire.js';

let fx: Fixture;
let child: ChildProcess | undefined;
afterEach(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
  child = undefined;
  await fx.close();
});

describe('floods', () => {
  it('answers a message flood with rate_limited, then closes 4001 (39)', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const { client } = await fx.browser(relay);
    for (let i = 0; i < 1_000; i++) client.send({ type: 'ping', ref: String(i) });
    expect(await client.next('error')).toMatchObject({ code: 'rate_limited' });
    expect(await client.closed).toEqual({ code: 4001, reason: 'rate_limited' });
    // At most the burst was answered.
    expect(client.received.filter((m) => m.type === 'pong').length).toBeLessThanOrEqual(100);
    const other = await fx.browser(relay);
    await other.client.roundTrip();
  });

  it('a browser under the rate keeps going after its refusals', async () => {
    fx = await createFixture();
    const relay = await fx.start({ limits: { messageBurst: 5, messagesPerSecond: 1_000, rateLimitStrikes: 50 } });
    const { client } = await fx.browser(relay);
    for (let i = 0; i < 8; i++) client.send({ type: 'ping' });
    expect((await client.next('error')).code).toBe('rate_limited');
    await new Promise((r) => setTimeout(r, 20));
    await client.roundTrip();
  });
});

describe('gateway floods', () => {
  it('closes a gateway over its rate (4001) instead of skipping events: acked seqs stay contiguous', async () => {
    fx = await createFixture();
    const relay = await fx.start({ limits: { gatewayMessageBurst: 300, gatewayMessagesPerSecond: 10 } });
    const gw = await fx.gateway(relay, 'gw-1');
    for (let seq = 1; seq <= 1_000; seq++)
      gw.client.send({ type: 'event', seq, kind: 'images.received', at: 1, data: {} });
    expect(await gw.client.closed).toEqual({ code: 4001, reason: 'rate_limited' });
    const acked = gw.client.received.filter((m) => m.type === 'event.ack').map((m) => m.seq as number);
    expect(acked).toEqual(Array.from({ length: acked.length }, (_, i) => i + 1));
    expect(await relay.ports.eventLog.lastSeq('gw-1')).toBe(acked.length);
    const again = await fx.gateway(relay, 'gw-1');
    expect(again.welcome.acked).toBe(acked.length);
  });
});

// WebTransport: the Node WebTransport client cannot stop reading (relay/README.md); not registered there.
describeOverWebSocket('slow consumers', () => {
  it('cuts a browser that stops reading while events stream, and others keep receiving (38)', async () => {
    fx = await createFixture();
    const relay = await fx.start({
      limits: {
        sendBufferBytes: 256 * 1024,
        gatewayMessagesPerSecond: 100_000,
        gatewayMessageBurst: 100_000,
        gatewayMaxPendingMessages: 100_000,
      },
    });
    const slow = await fx.browser(relay);
    const fast = await fx.browser(relay, { sub: 'user-2' });
    for (const b of [slow, fast]) {
      b.client.send({ type: 'subscribe', site: 'site-a' });
      await b.client.next('subscribed');
    }
    slow.client.ws.pause();
    const gw = await fx.gateway(relay, 'gw-1');
    const blob = 'x'.repeat(4_000);
    let seq = 0;
    // Stream until the relay gives up on the paused reader (loopback buffers absorb a few MB first).
    for (;;) {
      const closes = await relay.metrics.closes.get();
      if (closes.values.some((v) => v.labels.role === 'browser')) break;
      for (let i = 0; i < 200; i++)
        gw.client.send({ type: 'event', seq: ++seq, kind: 'images.received', at: 1, data: { blob } });
      await gw.client.next('event.ack', (m) => m.seq === seq, 10_000);
      if (seq > 20_000) throw new Error('the paused reader was never cut');
    }
    slow.client.ws.resume();
    expect((await slow.client.closed).code).toBeOneOf([4002, 1006]);
    await fast.client.next('event', (m) => m.seq === seq, 10_000);
    gw.client.send({ type: 'event', seq: ++seq, kind: 'images.received', at: 1, data: {} });
    await fast.client.next('event', (m) => m.seq === seq);
    await until(() => relay.connectionCount === 2, 'only the fast browser and the gateway left');
  });
});

// WebTransport: no ping frames; protocol-ping liveness is in transport-webtransport/on-webtransport.
describeOverWebSocket('liveness', () => {
  it('terminates a gateway that stops answering pings (SIGSTOP), shows it offline, and holds its commands', async () => {
    fx = await createFixture({
      config: { timings: { pingIntervalMs: 100, livenessTimeoutMs: 400, presenceTtlMs: 1_000 } },
    });
    const relay = await fx.start();
    await fx.addGateway('gw-1', 'site-a');
    const { client } = await fx.browser(relay);
    client.send({ type: 'subscribe', site: 'site-a' });
    await client.next('subscribed');
    const script = fileURLToPath(new URL('../helpers/fake-gateway-child.mjs', import.meta.url));
    child = spawn(process.execPath, [script], {
      env: { ...process.env, URL: fx.url(relay, 'gateway'), TOKEN: await fx.assertion('gw-1') },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await until(() => out.includes('welcome'), 'the child gateway to be welcomed');
    expect(await client.next('presence')).toMatchObject({ gateway: 'gw-1', online: true });
    child.kill('SIGSTOP');
    expect(await client.next('presence', (m) => m.online === false, 10_000)).toMatchObject({ gateway: 'gw-1' });
    client.send({ type: 'command', ref: 'z', token: await fx.command({ aud: 'gw-1' }) });
    expect((await client.next('command.status', (m) => m.ref === 'z' && m.state !== 'accepted')).state).toBe('queued');
    child.kill('SIGCONT');
    await until(() => out.includes('closed'), 'the child to notice its socket is gone');
    expect(out).not.toContain('command ');
    expect(await relay.ports.commands.depth('gw-1')).toBe(1);
  });

  it('pings browsers too: a silent socket that still answers ping frames stays open', async () => {
    fx = await createFixture({ config: { timings: { pingIntervalMs: 50, livenessTimeoutMs: 150 } } });
    const relay = await fx.start();
    const { client } = await fx.browser(relay);
    let pings = 0;
    client.ws.on('ping', () => pings++);
    // Six pings span twice the liveness timeout; the client's automatic pongs are its only traffic.
    await until(() => pings >= 6, 'ping frames from the relay');
    await client.roundTrip();
    expect(relay.connectionCount).toBe(1);
  });
});
