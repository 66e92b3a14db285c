/**
 * The compose topology, proven without Docker: the same config files run as real processes on loopback.
 *
 *   browser client ──wss (Origin)──┐                        ┌── relay1 (relay/dist/main.js, compose env) ─┐
 *                                  ├─ haproxy (haproxy.cfg, ├── relay2 (relay/dist/main.js, compose env) ─┼─ redis-server
 *   scanrelay-gateway run ──wss────┘   self-signed TLS)     └── demo (deploy/docker/demo-main.mjs)        │  (redis.conf,
 *                                                                                                          │   AOF)
 * 1. HAProxy's own /readyz health checks mark both relays UP; /metrics is not served through the proxy;
 *    a browser upgrade from a foreign Origin is refused (403) through it.
 * 2. The demo manage app is served through the proxy and signs with the key the relays trust: a session token
 *    it issues opens a browser socket.
 * 3. The gateway is enrolled through the proxy (admin API → one-time code → `scanrelay-gateway activate`,
 *    a real key pair and proof of possession) and runs with the compose gateway settings.
 * 4. Browser → command → gateway → statuses back, and events fanned out to the browser.
 * 5. SIGKILL the relay holding the gateway: HAProxy marks it DOWN, the gateway reconnects through the proxy
 *    to the other node; a command sent during the outage and one after it both complete.
 * 6. Restart it, then SIGTERM the node holding the browser: the browser is closed with 1001, reconnects
 *    through the proxy and resumes from its last position.
 * 7. Restart Redis: HAProxy marks both relays DOWN (not ready) and UP again; the gateway's enrolment, which
 *    lives only in Redis, comes back from the append-only file, and commands complete again.
 * 8. Nothing lost or doubled: the events the browser saw live equal the site's history since it subscribed,
 *    each gateway's events in strictly increasing `seq`; Redis wrote its append-only file.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PATHS, type SiteEvent, SUBPROTOCOLS } from '@scanrelay/protocol';
import { importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import WebSocket from 'ws';
import { mintAdmin, mintCommand, mintSession, type TestKey } from '../../relay/test/helpers/tokens.js';
import { BrowserClient } from './helpers/browser-client.js';
import { run, waitFor } from './helpers/exec.js';
import type { Managed } from './helpers/processes.js';
import { GATEWAY_BIN, RELAY_BIN, Topology } from './helpers/topology.js';

const ISSUER = 'https://manage.scanrelay.test';
const SITE = 'site-topology';
const USER = 'clinician-1';

/** The demo manage app's key that make-dev-secrets.sh wrote, as the token helpers take it. */
async function manageKeyFrom(file: string): Promise<TestKey> {
  const jwk = JSON.parse(readFileSync(file, 'utf8')) as JWK & { kid: string };
  const { d: _d, ...pub } = jwk;
  return {
    alg: 'ES256',
    kid: jwk.kid,
    privateKey: (await importJWK(jwk, 'ES256')) as TestKey['privateKey'],
    publicKey: (await importJWK(pub, 'ES256')) as TestKey['publicKey'],
    publicJwk: pub,
  };
}

function worklistArgs(accession: string) {
  return {
    accession,
    patientId: `P-${accession}`,
    patientName: 'TEST^TOPOLOGY',
    birthDate: '19700101',
    sex: 'F',
    stationAet: 'MAMMO1',
    scheduledAt: new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

describe('compose topology as processes: redis + 2 relays + haproxy (TLS) + gateway agent + browser', {
  timeout: 120_000,
}, () => {
  let topo: Topology | undefined;
  let gateway: Managed | undefined;
  let browser: BrowserClient | undefined;
  let manage: TestKey;
  let gatewayId = '';

  beforeAll(async () => {
    for (const bin of [RELAY_BIN, GATEWAY_BIN])
      if (!existsSync(bin)) throw new Error(`${bin} is missing: build first (npm run build, or npx tsc -b)`);
    topo = await Topology.create({ issuer: ISSUER });
    manage = await manageKeyFrom(topo.secretFile('manage-key'));
  });

  afterAll(async () => {
    await browser?.stop();
    await gateway?.stop('SIGTERM', 5_000);
    await topo?.stop();
  });

  function t(): Topology {
    if (!topo) throw new Error('topology not created');
    return topo;
  }

  function dumpOnFailure(): void {
    onTestFailed(() => {
      console.error(`process logs:\n${t().procs.report(40)}`);
      if (browser)
        console.error(`browser closes: ${JSON.stringify(browser.closes)} errors: ${JSON.stringify(browser.errors)}`);
    });
  }

  /** The relay service the gateway is connected to now, from each node's own metrics. */
  async function gatewayService(): Promise<string | undefined> {
    for (const service of t().relays.keys()) {
      if (!t().relays.get(service)?.proc?.running()) continue;
      if (((await t().relayMetric(service, 'scanrelay_gateways_online')) ?? 0) >= 1) return service;
    }
    return undefined;
  }

  /** Send a worklist.add through the browser and wait for the command's terminal state on the site channel. */
  async function addToWorklist(accession: string): Promise<string> {
    const b = browser as BrowserClient;
    const token = await mintCommand(manage, {
      claims: { aud: gatewayId, site: SITE, sub: USER, cmd: 'worklist.add', args: worklistArgs(accession) },
    });
    const ref = `ref-${accession}`;
    b.command(ref, token);
    const jti = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()).jti as string;
    // Terminal state as every watcher of the site sees it (the sender's own socket may be replaced meanwhile).
    const terminal = await b.waitFor(
      `command ${accession} to finish`,
      () =>
        b.events.find(
          (e) =>
            e.kind === 'command.status' &&
            e.data.command === jti &&
            ['completed', 'failed', 'rejected', 'expired'].includes(String(e.data.state)),
        ),
      60_000,
    );
    return String(terminal.data.state);
  }

  it('starts from the compose files; HAProxy health-checks /readyz and guards the edge', async () => {
    dumpOnFailure();
    await t().startRedis();
    for (const service of t().relays.keys()) await t().startRelay(service);
    await t().startDemo();
    await t().startHaproxy();
    for (const service of t().relays.keys()) await t().waitForServer(service, 'UP');
    await t().waitForServer('demo', 'UP', 20_000, 'be_demo');

    expect((await t().https('GET', '/readyz')).status).toBe(200);
    expect((await t().https('GET', '/metrics')).status).toBe(404);
    const version = await t().https('GET', '/version');
    expect(version.status).toBe(200);

    // A page from another origin cannot open a browser socket through the proxy.
    const refused = await new Promise<number>((resolveStatus) => {
      const ws = new WebSocket(`wss://localhost:${t().proxyPort}${PATHS.browser}`, [SUBPROTOCOLS.json], {
        origin: 'https://evil.test',
        ca: t().ca,
      });
      ws.on('unexpected-response', (_req, res) => {
        resolveStatus(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('open', () => {
        resolveStatus(101);
        ws.close();
      });
      ws.on('error', () => undefined);
    });
    expect(refused).toBe(403);
  });

  it('serves the demo manage app through the proxy; its session tokens open browser sockets on the relays', async () => {
    dumpOnFailure();
    const page = await t().https('GET', '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['strict-transport-security']).toBeDefined();
    // The demo signs with the key whose public half the relays were given (same kid, same key).
    const jwks = JSON.parse((await t().https('GET', '/.well-known/jwks.json')).body) as { keys: JWK[] };
    const relayJwks = JSON.parse(readFileSync(t().secretFile('manage-jwks'), 'utf8')) as { keys: JWK[] };
    expect(jwks.keys.map((k) => [k.kid, k.x, k.y])).toEqual(relayJwks.keys.map((k) => [k.kid, k.x, k.y]));

    // Sign in as the page would (same origin through the proxy), ask for a session token, use it on a socket.
    const origin = { origin: t().origin, 'sec-fetch-site': 'same-origin' };
    const login = await t().https('POST', '/login', {
      headers: { ...origin, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'user=clinician-a',
    });
    expect(login.status, login.body).toBe(303);
    const cookie = String(login.headers['set-cookie']?.[0] ?? '').split(';')[0] as string;
    const minted = await t().https('POST', '/api/token', { headers: { ...origin, cookie }, body: {} });
    expect(minted.status, minted.body).toBe(200);
    const { token } = JSON.parse(minted.body) as { token: string };
    const demoBrowser = new BrowserClient({
      url: `wss://localhost:${t().proxyPort}${PATHS.browser}`,
      origin: t().origin,
      ca: t().ca,
      site: 'site-a',
      token: async () => token,
    });
    try {
      await demoBrowser.start();
      expect(demoBrowser.nodes).toHaveLength(1);
    } finally {
      await demoBrowser.stop();
    }
  });

  it('enrols a gateway through the proxy and runs it with the compose gateway settings', async () => {
    dumpOnFailure();
    const admin = await mintAdmin(manage, { claims: { iss: ISSUER } });
    const created = await t().https('POST', '/v1/admin/gateways', {
      headers: { authorization: `Bearer ${admin}` },
      body: { site: SITE, name: 'Topology test gateway' },
    });
    expect(created.status, created.body).toBe(201);
    const { gateway: id, activationCode } = JSON.parse(created.body) as { gateway: string; activationCode: string };
    gatewayId = id;

    // Inside the topology's temp dir, so it goes when the topology stops.
    const stateDir = join(t().dir, 'gateway-state');
    const env = await t().gatewayEnv(stateDir);
    const activated = await run(
      process.execPath,
      [GATEWAY_BIN, 'activate', '--relay', t().publicUrl, '--code', activationCode],
      {
        env,
      },
    );
    expect(activated.stderr).toBe('');
    expect(activated.code).toBe(0);
    expect(activated.stdout).toContain(`gateway ${gatewayId}`);

    gateway = t().procs.start('gateway', process.execPath, [GATEWAY_BIN, 'run'], { env });
    await waitFor(
      'the gateway to be online on a relay',
      async () => {
        if (!gateway?.running()) throw new Error(`gateway exited:\n${gateway?.tail()}`);
        return gatewayService();
      },
      30_000,
    );
  });

  it('drives a command end to end through the TLS proxy and fans out its events', async () => {
    dumpOnFailure();
    browser = new BrowserClient({
      url: `wss://localhost:${t().proxyPort}${PATHS.browser}`,
      origin: t().origin,
      ca: t().ca,
      site: SITE,
      token: () => mintSession(manage, { claims: { iss: ISSUER, sub: USER, sites: [SITE] } }),
    });
    await browser.start();
    expect(browser.nodes).toHaveLength(1);

    expect(await addToWorklist('TOPO-1')).toBe('completed');
    const states = browser.statuses.filter((s) => s.ref === 'ref-TOPO-1').map((s) => s.state);
    expect(states[0]).toBe('accepted');
    expect(states).toEqual(expect.arrayContaining(['delivered', 'verified', 'completed']));
    await browser.waitFor('worklist.added for TOPO-1', () =>
      browser?.events.find((e) => e.kind === 'worklist.added' && e.subject === 'TOPO-1'),
    );
  });

  it('SIGKILL of the relay holding the gateway: it moves to the other node through the proxy and carries on', async () => {
    dumpOnFailure();
    const victim = (await gatewayService()) as string;
    expect(victim).toBeDefined();
    const survivor = [...t().relays.keys()].find((s) => s !== victim) as string;

    await t().relayProcess(victim).stop('SIGKILL');
    // A command sent while the gateway has no live socket is held for it (or delivered once it is back), not
    // lost: it must still complete.
    const b = browser as BrowserClient;
    await b.waitFor('the browser to be connected', () => b.node);
    const duringOutage = addToWorklist('TOPO-2A');
    await t().waitForServer(victim, 'DOWN');
    await waitFor(
      'the gateway to reconnect to the surviving node',
      async () => ((await gatewayService()) === survivor ? true : undefined),
      60_000,
    );
    expect(await duringOutage).toBe('completed');
    expect(await addToWorklist('TOPO-2')).toBe('completed');
    await (browser as BrowserClient).waitFor('worklist.added for TOPO-2', () =>
      browser?.events.find((e) => e.kind === 'worklist.added' && e.subject === 'TOPO-2'),
    );

    // The node comes back with the same configuration and HAProxy takes it in again.
    await t().startRelay(victim);
    await t().waitForServer(victim, 'UP');
  });

  it('SIGTERM of the node holding the browser: closed with 1001, it resumes through the proxy on the other', async () => {
    dumpOnFailure();
    const b = browser as BrowserClient;
    const node = b.node as string;
    const victim = t().serviceForNode(node);
    const closesBefore = b.closes.length;

    const exit = await t().relayProcess(victim).stop('SIGTERM', 20_000);
    expect(exit.signal, 'the relay exits by itself on SIGTERM, not by SIGKILL').not.toBe('SIGKILL');
    expect(b.closes.slice(closesBefore).map((c) => c.code)).toContain(1001);
    await b.waitFor('the browser to resume on another node', () => (b.node && b.node !== node ? b.node : undefined));
    await waitFor('the gateway to be online', async () => gatewayService(), 60_000);

    expect(await addToWorklist('TOPO-3')).toBe('completed');
    await b.waitFor('worklist.added for TOPO-3', () =>
      b.events.find((e) => e.kind === 'worklist.added' && e.subject === 'TOPO-3'),
    );
    await t().startRelay(victim);
  });

  it('Redis restart: relays go unready and back, the enrolment and history come back from the AOF', async () => {
    dumpOnFailure();
    const b = browser as BrowserClient;
    await t().stopRedis();
    for (const service of t().relays.keys()) await t().waitForServer(service, 'DOWN');
    expect((await t().https('GET', '/readyz')).status).toBe(503);
    await t().startRedis();
    // Its output since this start says where the data came from (the log is written asynchronously: await it).
    await waitFor('redis to report loading its append-only file', () =>
      /DB loaded from (append only|incr) file/.test(t().redisLog().split('=== start').at(-1) ?? ''),
    );
    for (const service of t().relays.keys()) await t().waitForServer(service, 'UP');
    // The gateway's registration lived only in Redis: it is online again only if the AOF brought it back.
    await waitFor('the gateway to be online after the Redis restart', async () => gatewayService(), 60_000);
    await b.waitFor('the browser to be connected', () => b.node);
    expect(await addToWorklist('TOPO-4')).toBe('completed');
    await b.waitFor('worklist.added for TOPO-4', () =>
      b.events.find((e) => e.kind === 'worklist.added' && e.subject === 'TOPO-4'),
    );
  });

  it('lost nothing and doubled nothing; Redis kept an append-only file', async () => {
    dumpOnFailure();
    const b = browser as BrowserClient;
    // Each event once, and each gateway's events in strictly increasing seq.
    const seen = new Set<string>();
    const doubled = b.events.filter((e) => seen.has(e.position) || !seen.add(e.position));
    const timeline = b.events.map((e) => `${e.position} ${e.kind} ${e.subject ?? ''}`).join('\n');
    expect(doubled, `events delivered twice; timeline:\n${timeline}\ncloses: ${JSON.stringify(b.closes)}`).toEqual([]);
    const lastSeq = new Map<string, number>();
    for (const e of b.events) {
      if (e.kind === 'command.status' || e.kind.startsWith('gateway.')) continue;
      expect(e.seq, `${e.gateway} seq after ${lastSeq.get(e.gateway)}`).toBeGreaterThan(lastSeq.get(e.gateway) ?? 0);
      lastSeq.set(e.gateway, e.seq);
    }
    for (const accession of ['TOPO-1', 'TOPO-2A', 'TOPO-2', 'TOPO-3', 'TOPO-4'])
      expect(b.events.filter((e) => e.kind === 'worklist.added' && e.subject === accession)).toHaveLength(1);

    // What the browser saw live across two failovers equals the site's durable history since it subscribed.
    const replay = new BrowserClient({
      url: `wss://localhost:${t().proxyPort}${PATHS.browser}`,
      origin: t().origin,
      ca: t().ca,
      site: SITE,
      token: () => mintSession(manage, { claims: { iss: ISSUER, sub: USER, sites: [SITE] } }),
    });
    replay.lastPosition = b.firstPosition;
    try {
      await replay.start();
      const live = (e: SiteEvent) => `${e.position} ${e.kind} ${e.subject ?? ''}`;
      const expected = b.events.map(live);
      await replay.waitFor('the replay to catch up', () => replay.events.length >= expected.length || undefined);
      expect(replay.events.map(live)).toEqual(expected);
    } finally {
      await replay.stop();
    }

    const aof = join(t().redisDataDir, 'appendonlydir');
    expect(existsSync(aof)).toBe(true);
    expect(readdirSync(aof).some((f) => f.endsWith('.aof'))).toBe(true);
  });
});
