/**
 * The relay serving WebTransport beside WebSocket (SCANRELAY_WEBTRANSPORT_PORT/CERT/KEY): a gateway on
 * WebTransport and a browser on WebSocket meet in the same core — hello, events, commands. The transport
 * adapter itself is tested in relay/test/transport-webtransport.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeFrame, encodeMessage, validateMessage, webTransportSocketClass } from '@scanrelay/protocol';
import { afterAll, afterEach, expect, it } from 'vitest';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture } from '../helpers/relay-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'relay-wt-'));
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ],
  { stdio: 'ignore' },
);
const hash = createHash('sha256')
  .update(new X509Certificate(readFileSync(join(dir, 'cert.pem'))).raw)
  .digest();

let fx: Fixture;
afterEach(async () => {
  await fx.close();
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

type Sock = {
  protocol: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (e: { data?: unknown; code?: number }) => void): void;
};

it('serves a gateway over WebTransport and a browser over WebSocket in one core', async () => {
  fx = await createFixture();
  const relay = await fx.start({
    webTransportPort: 0,
    webTransportCert: join(dir, 'cert.pem'),
    webTransportKey: join(dir, 'key.pem'),
  });
  expect(relay.webTransportPort).toBeGreaterThan(0);
  await fx.addGateway('gw-wt', 'site-a');
  const { WebTransport } = (await import('@fails-components/webtransport')) as unknown as { WebTransport: never };
  const Socket = webTransportSocketClass(WebTransport, {
    serverCertificateHashes: [{ algorithm: 'sha-256', value: hash }],
    forceReliable: true,
  }) as unknown as new (
    url: string,
    protocols: string[],
  ) => Sock;
  const gw = new Socket(`https://127.0.0.1:${relay.webTransportPort}/v1/gateway`, ['scanrelay.v1.msgpack']);
  const inbox: Record<string, unknown>[] = [];
  let wake: (() => void) | undefined;
  gw.addEventListener('message', (e) => {
    const data = e.data instanceof ArrayBuffer ? new Uint8Array(e.data) : (e.data as Uint8Array);
    inbox.push(validateMessage('relay→gateway', decodeFrame('msgpack', data, true, 1 << 20)) as never);
    wake?.();
  });
  const next = async (type: string) => {
    for (;;) {
      const i = inbox.findIndex((m) => m.type === type);
      if (i >= 0) return inbox.splice(i, 1)[0]!;
      await new Promise<void>((r) => {
        wake = r;
      });
    }
  };
  await new Promise<void>((r) => gw.addEventListener('open', () => r()));
  expect(gw.protocol).toBe('scanrelay.v1.msgpack');
  gw.send(encodeMessage('msgpack', { type: 'hello', token: await fx.assertion('gw-wt') }) as Uint8Array);
  expect(await next('welcome')).toMatchObject({ gateway: 'gw-wt', site: 'site-a', node: 'node-1' });

  const { client } = await fx.browser(relay);
  client.send({ type: 'subscribe', site: 'site-a' });
  await client.next('subscribed');
  gw.send(encodeMessage('msgpack', { type: 'event', seq: 1, kind: 'worklist.added', at: 1, data: {} }) as Uint8Array);
  expect(await next('event.ack')).toEqual({ type: 'event.ack', seq: 1 });
  await client.next('event', (m) => m.kind === 'worklist.added' && m.gateway === 'gw-wt');
  client.send({ type: 'command', ref: 'w', token: await fx.command({ aud: 'gw-wt' }) });
  const delivery = await next('command');
  gw.send(
    encodeMessage('msgpack', { type: 'command.status', command: delivery.command, state: 'completed' }) as Uint8Array,
  );
  await client.next('command.status', (m) => m.ref === 'w' && m.state === 'completed');
  gw.close(1000, 'done');
});
