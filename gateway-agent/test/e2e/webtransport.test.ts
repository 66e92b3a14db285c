/**
 * The gateway link over WebTransport (issue 8 item 3), through the REAL relay serving WebTransport beside
 * WebSocket (HTTP/2 transport; the certificate is made by openssl here and pinned by its SHA-256):
 * - SCANRELAY_GATEWAY_TRANSPORT=webtransport end to end: command → completed, events acknowledged;
 * - auto with WebTransport absent (nothing listening) or failing (certificate does not match the pin) → the
 *   agent falls back to WebSocket and works;
 * - auto, online over WebTransport, then the WebTransport listener disappears mid-session (a TCP proxy in front
 *   of it is closed): the agent moves to WebSocket and resumes from `welcome.acked` — every event arrives once,
 *   seqs contiguous;
 * - a half-open WebTransport path (the proxy drops everything, closes nothing) is noticed by missing pongs.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Relay } from '../../../relay/src/relay.js';
import type { TestClient } from '../../../relay/test/helpers/client.js';
import { createFixture, type Fixture, until } from '../../../relay/test/helpers/relay-fixture.js';
import { type Agent, startAgent } from '../../src/agent.js';
import type { RawSettings } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { runSimulator } from '../../src/simulator/index.js';
import {
  agentConfig,
  commandToken,
  type Enrolled,
  enrol,
  gatewayEvents,
  runCommand,
  subscribe,
  worklistArgs,
} from './stack.js';

const certDir = mkdtempSync(join(tmpdir(), 'gw-wt-'));
execFileSync(
  'openssl',
  [
    ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
    ...['-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem'), '-days', '2'],
    ...['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
  ],
  { stdio: 'ignore' },
);
const pin = createHash('sha256')
  .update(new X509Certificate(readFileSync(join(certDir, 'cert.pem'))).raw)
  .digest('hex');

let fx: Fixture;
let relay: Relay;
let gw: Enrolled;
let agent: Agent | undefined;
let proxy: { server: Server; sockets: Set<Socket>; blackhole(): void } | undefined;
const browsers: TestClient[] = [];

beforeEach(async () => {
  fx = await createFixture();
  relay = await fx.start({
    webTransportPort: 0,
    webTransportCert: join(certDir, 'cert.pem'),
    webTransportKey: join(certDir, 'key.pem'),
  });
  gw = await enrol(fx, relay);
});
afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  await closeProxy();
  for (const b of browsers.splice(0)) b.close();
  await fx.close();
  await gw.cleanup();
});
afterAll(() => {
  rmSync(certDir, { recursive: true, force: true });
});

async function browser(): Promise<TestClient> {
  const { client } = await fx.browser(relay, { sites: ['site-a'] });
  browsers.push(client);
  await subscribe(client);
  return client;
}

function start(extra: RawSettings): Promise<Agent> {
  return startAgent({
    config: agentConfig(fx, relay, gw.stateDir, extra),
    logger: silentLogger(),
    link: { backoff: { baseMs: 50, maxMs: 300 }, helloTimeoutMs: 5000 },
  });
}

const wtUrl = (port: number) => `https://127.0.0.1:${port}`;

/**
 * A plain TCP forwarder to the relay's WebTransport port: closing it is the listener vanishing for the gateway;
 * `blackhole()` keeps every connection open but silently drops what flows either way (a half-open path), and
 * refuses nothing new — new connections hang the same way.
 */
async function startProxy(target: number): Promise<number> {
  const sockets = new Set<Socket>();
  let dropping = false;
  const server = createServer((client) => {
    const upstream = netConnect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d) => dropping || upstream.write(d));
    upstream.on('data', (d) => dropping || client.write(d));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy = {
    server,
    sockets,
    blackhole: () => {
      dropping = true;
    },
  };
  return (server.address() as { port: number }).port;
}

async function closeProxy(): Promise<void> {
  const p = proxy;
  proxy = undefined;
  if (!p) return;
  const closed = new Promise<void>((r) => p.server.close(() => r()));
  for (const s of p.sockets) s.destroy();
  await closed;
}

/** A port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function addAndComplete(b: TestClient, ref: string, accession: string): Promise<void> {
  const statuses = await runCommand(
    b,
    ref,
    await commandToken(fx, gw.gateway, 'worklist.add', worklistArgs(accession)),
  );
  expect(statuses.map((s) => s.state)).toContain('verified');
  expect(statuses.at(-1)!.state).toBe('completed');
}

function expectContiguousOnce(b: TestClient): number[] {
  const seqs = gatewayEvents(b, gw.gateway).map((e) => e.seq as number);
  expect(seqs.length).toBeGreaterThan(0);
  expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
  return seqs;
}

describe('gateway link over WebTransport', () => {
  it('SCANRELAY_GATEWAY_TRANSPORT=webtransport: commands complete and events are acknowledged end to end', async () => {
    const b = await browser();
    agent = await start({
      SCANRELAY_GATEWAY_TRANSPORT: 'webtransport',
      SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: wtUrl(relay.webTransportPort!),
      SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256: pin,
    });
    const a = agent;
    await until(() => a.status().link === 'online', 'the agent online', 10_000);
    expect(a.status().transport).toBe('webtransport');
    expect(a.status().relayUrl).toBe(`${wtUrl(relay.webTransportPort!)}/v1/gateway`);
    await addAndComplete(b, 'wt-1', 'ACCWT1');
    await b.next('event', (m) => m.kind === 'worklist.added' && m.subject === 'ACCWT1');
    await until(() => a.status().outbox.acked >= 1 && a.status().outbox.events === 0, 'the event acknowledged');
    expectContiguousOnce(b);
  });

  it('auto: WebTransport absent (nothing listening) → falls back to WebSocket and works', async () => {
    const b = await browser();
    agent = await start({
      SCANRELAY_GATEWAY_TRANSPORT: 'auto',
      SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: wtUrl(await deadPort()),
      SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256: pin,
    });
    const a = agent;
    await until(() => a.status().link === 'online', 'the agent online', 10_000);
    expect(a.status().transport).toBe('websocket');
    await addAndComplete(b, 'fb-1', 'ACCFB1');
    await until(() => a.status().outbox.events === 0, 'the event acknowledged');
    expectContiguousOnce(b);
  });

  it('auto: WebTransport failing (certificate does not match the pin) → falls back to WebSocket', async () => {
    const b = await browser();
    agent = await start({
      SCANRELAY_GATEWAY_TRANSPORT: 'auto',
      SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: wtUrl(relay.webTransportPort!),
      SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256: 'ab'.repeat(32),
    });
    const a = agent;
    await until(() => a.status().link === 'online', 'the agent online', 10_000);
    expect(a.status().transport).toBe('websocket');
    await addAndComplete(b, 'fb-2', 'ACCFB2');
  });

  it('auto: the WebTransport listener vanishes mid-session → WebSocket, resumed with no event lost or doubled', async () => {
    const b = await browser();
    const port = await startProxy(relay.webTransportPort!);
    agent = await start({
      SCANRELAY_GATEWAY_TRANSPORT: 'auto',
      SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: wtUrl(port),
      SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256: pin,
    });
    const a = agent;
    await until(() => a.status().link === 'online', 'the agent online', 10_000);
    expect(a.status().transport).toBe('webtransport');
    await addAndComplete(b, 'sw-1', 'ACCSW1');

    // The modality works while the listener goes away: its events are made across the switch.
    const sim = runSimulator({
      gateway: { aet: 'SCANRELAY', host: '127.0.0.1', port: a.dicomPort() },
      aet: 'HOLOGIC1',
      images: 3,
      forProcessing: false,
      rows: 16,
      columns: 16,
      once: true,
      storageCommitment: false,
    });
    await b.next('event', (m) => m.kind === 'procedure.started' && m.subject === 'ACCSW1', 10_000);
    await closeProxy();
    await sim.done;
    expect(sim.procedures[0]?.error).toBeUndefined();
    await until(
      () => a.status().link === 'online' && a.status().transport === 'websocket',
      'the agent online over WebSocket',
      15_000,
    );
    await b.next('event', (m) => m.kind === 'procedure.completed' && m.subject === 'ACCSW1', 15_000);
    await addAndComplete(b, 'sw-2', 'ACCSW2');
    await b.next('event', (m) => m.kind === 'worklist.added' && m.subject === 'ACCSW2');
    await until(() => a.status().outbox.events === 0, 'every event acknowledged');
    const seqs = expectContiguousOnce(b);
    expect(seqs.at(-1)).toBe(a.status().outbox.acked);
    const kinds = gatewayEvents(b, gw.gateway).map((e) => e.kind);
    expect(kinds.filter((k) => k === 'images.received')).toHaveLength(3);
  });

  it('a half-open WebTransport path is noticed by traffic (no pongs) and replaced; auto then moves to WebSocket', async () => {
    const b = await browser();
    const port = await startProxy(relay.webTransportPort!);
    agent = await startAgent({
      config: agentConfig(fx, relay, gw.stateDir, {
        SCANRELAY_GATEWAY_TRANSPORT: 'auto',
        SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: wtUrl(port),
        SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256: pin,
      }),
      logger: silentLogger(),
      link: { backoff: { baseMs: 50, maxMs: 300 }, pingIntervalMs: 100, deadAfterMs: 600, helloTimeoutMs: 1500 },
    });
    const a = agent;
    await until(() => a.status().link === 'online', 'the agent online', 10_000);
    expect(a.status().transport).toBe('webtransport');
    await addAndComplete(b, 'ho-1', 'ACCHO1');
    proxy!.blackhole();
    // Nothing closes: only the missing answers to its pings tell the agent; then the WebTransport retry hangs
    // too (no welcome in time) and auto falls back.
    await until(() => a.status().link !== 'online', 'the dead path noticed', 10_000);
    await until(
      () => a.status().link === 'online' && a.status().transport === 'websocket',
      'online over WebSocket',
      15_000,
    );
    await addAndComplete(b, 'ho-2', 'ACCHO2');
    await until(() => a.status().outbox.events === 0, 'every event acknowledged');
    expectContiguousOnce(b);
  });
});
