/**
 * The WebTransport counterparts of the WebSocket wire-level cases that the protocol suites register over
 * WebSocket only (`itOverWebSocket` in integration/transport.test.ts and limits.test.ts): Origin refused at the
 * CONNECT (403), unknown path (404), the subprotocol offered in the stream preamble (4500 when none fits), the
 * per-IP cap (4001 after the preamble, where the peer address is known), bad UTF-8 on JSON (1007), liveness
 * by protocol pings (the adapter has no ping frame).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { upgradeStatus } from '../../helpers/client.js';
import type { Fixture } from '../../helpers/relay-fixture.js';
import { createFixture, ORIGIN, until } from '../../helpers/relay-fixture.js';
import { registerOnWebTransport } from '../protocol-suite.js';
import { WtTestSocket } from '../test-transport.js';

/** How a WebTransport session offering `protocols` ends up: `open <subprotocol>`, or `close <code>` before it opened. */
async function preamble(url: string, protocols: string[]): Promise<string> {
  const socket = await WtTestSocket.open(url, protocols, undefined);
  return new Promise((resolve) => {
    socket.once('open', () => {
      resolve(`open ${socket.protocol}`);
      socket.terminate();
    });
    socket.once('close', (code: number) => resolve(`close ${code}`));
  });
}

let fx: Fixture;
afterEach(async () => {
  await fx.close();
});

await registerOnWebTransport(async () => {
  describe('WebTransport CONNECT and preamble policy', () => {
    it('refuses browsers without an allowed Origin with 403 at the CONNECT (28)', async () => {
      fx = await createFixture();
      const relay = await fx.start();
      const url = fx.url(relay, 'browser');
      expect(url).toMatch(/^https:/);
      expect(await upgradeStatus(url, {})).toBe(403);
      expect(await upgradeStatus(url, { origin: 'https://evil.test' })).toBe(403);
      expect(await upgradeStatus(url, { origin: 'https://manage.scanrelay.test.evil.test' })).toBe(403);
      expect(await upgradeStatus(url, { origin: 'http://manage.scanrelay.test' })).toBe(403);
      expect(await upgradeStatus(url, { origin: 'null' })).toBe(403);
      expect(await upgradeStatus(url, { origin: ORIGIN })).toBe(101);
      // Gateways need no Origin.
      expect(await upgradeStatus(fx.url(relay, 'gateway'), {})).toBe(101);
    });

    it('answers 404 for other paths and never reads a query string', async () => {
      fx = await createFixture();
      const relay = await fx.start();
      expect(await upgradeStatus(fx.url(relay, '/v1/other'), {})).toBe(404);
      expect(await upgradeStatus(fx.url(relay, '/v1/gateway?token=abc'), {})).toBe(101);
    });

    it('closes 4500 when the preamble offers neither subprotocol, and answers only a fixed name', async () => {
      fx = await createFixture();
      const relay = await fx.start();
      const url = fx.url(relay, 'gateway');
      expect(await preamble(url, [])).toBe('close 4500');
      expect(await preamble(url, ['chat', 'scanrelay.v2.json'])).toBe('close 4500');
      expect(await preamble(url, ['chat', 'scanrelay.v1.json', 'scanrelay.v1.msgpack'])).toBe(
        'open scanrelay.v1.msgpack',
      );
      expect(await preamble(url, ['scanrelay.v1.json'])).toBe('open scanrelay.v1.json');
    });

    it('caps connections per IP before authentication: 4001 once the peer address is known (40)', async () => {
      fx = await createFixture();
      const relay = await fx.start({ limits: { maxConnectionsPerIp: 3 } });
      const url = fx.url(relay, 'gateway');
      const open = [await fx.connectGateway(relay), await fx.connectGateway(relay), await fx.connectGateway(relay)];
      expect(await preamble(url, ['scanrelay.v1.json'])).toBe('close 4001');
      open[0]!.close();
      await until(() => relay.connectionCount === 2, 'a slot to free up');
      expect(await preamble(url, ['scanrelay.v1.json'])).toBe('open scanrelay.v1.json');
    });

    it('closes invalid UTF-8 on the JSON subprotocol with 1007 (31)', async () => {
      fx = await createFixture();
      const relay = await fx.start();
      const gw = await fx.gateway(relay, 'gw-1');
      gw.client.sendRaw(Buffer.from([0x22, 0xff, 0xfe, 0x22]));
      expect((await gw.client.closed).code).toBe(1007);
    });
  });

  describe('liveness without ping frames', () => {
    const timings = { pingIntervalMs: 50, livenessTimeoutMs: 150, presenceTtlMs: 1_000 };

    it('keeps a browser whose only traffic is protocol pings open across several liveness timeouts', async () => {
      fx = await createFixture({ config: { timings } });
      const relay = await fx.start();
      const { client } = await fx.browser(relay);
      for (let i = 0; i < 8; i++) {
        await client.roundTrip();
        await new Promise((r) => setTimeout(r, timings.pingIntervalMs));
      }
      expect(relay.connectionCount).toBe(1);
    });

    it('cuts a gateway that goes silent, shows it offline, and holds its commands', async () => {
      fx = await createFixture({ config: { timings } });
      const relay = await fx.start();
      await fx.addGateway('gw-1', 'site-a');
      const { client } = await fx.browser(relay);
      // The browser sends protocol pings, as the web client does, so it stays while the gateway is cut.
      const pinger = setInterval(() => client.send({ type: 'ping' }), timings.pingIntervalMs);
      try {
        client.send({ type: 'subscribe', site: 'site-a' });
        await client.next('subscribed');
        // Says hello, then never sends another frame: a frozen gateway process, as seen over WebTransport.
        const gw = await fx.gateway(relay, 'gw-1');
        expect(await client.next('presence')).toMatchObject({ gateway: 'gw-1', online: true });
        await gw.client.closed;
        expect(await client.next('presence', (m) => m.online === false, 10_000)).toMatchObject({ gateway: 'gw-1' });
        client.send({ type: 'command', ref: 'z', token: await fx.command({ aud: 'gw-1' }) });
        const status = await client.next('command.status', (m) => m.ref === 'z' && m.state !== 'accepted');
        expect(status.state).toBe('queued');
        expect(gw.client.received.some((m) => m.type === 'command')).toBe(false);
        expect(await relay.ports.commands.depth('gw-1')).toBe(1);
      } finally {
        clearInterval(pinger);
      }
    });
  });
  // Slow consumer (38): not here. The Node WebTransport library (HTTP/2) keeps taking data while its reader
  // is paused, so no client in this process can stop reading; see relay/README.md (transport paragraph).
});
