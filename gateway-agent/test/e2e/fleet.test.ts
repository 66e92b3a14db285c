/**
 * The fleet API proven by traffic (issue 12): two relay nodes on a real redis-server, the real agent as its
 * own process (connected to node B) with dcmtk's storescp as a modality it C-ECHOes, and a gateway that was
 * never activated. Both nodes list the same fleet; SIGSTOP of the agent turns it offline within the presence
 * lease, SIGCONT brings it back.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Relay } from '../../../relay/src/relay.js';
import type { RedisServer } from '../../../relay/test/helpers/redis.js';
import { startRedis } from '../../../relay/test/helpers/redis.js';
import { createFixture, type Fixture } from '../../../relay/test/helpers/relay-fixture.js';
import { mintAdmin } from '../../../relay/test/helpers/tokens.js';
import { bundle, type Child, cleanupBundles, startChild } from '../helpers/child.js';
import { freePorts } from '../helpers/dicom-peers.js';
import { agentSettings, type Enrolled, enrol } from './stack.js';

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
// Short liveness timings so a frozen gateway is shown offline quickly (production: 15 s / 30 s / 45 s).
const TIMINGS = { pingIntervalMs: 500, livenessTimeoutMs: 2000, presenceTtlMs: 3000, maintenanceIntervalMs: 200 };

let cli: string;
let redis: RedisServer;
let fx: Fixture;
let a: Relay;
let b: Relay;
let gw: Enrolled;
let agent: Child | undefined;
let storescp: ChildProcess | undefined;

beforeAll(async () => {
  cli = await bundle('gateway-agent/src/cli.ts');
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
  await cleanupBundles();
});
beforeEach(async () => {
  fx = await createFixture({ config: { redisUrl: redis.url } });
  a = await fx.start({ timings: TIMINGS });
  b = await fx.start({ timings: TIMINGS });
  gw = await enrol(fx, a);
});
afterEach(async () => {
  if (agent) {
    agent.kill('SIGCONT');
    agent.kill('SIGKILL');
    await agent.exited;
    agent = undefined;
  }
  storescp?.kill('SIGKILL');
  await fx.close();
  await gw.cleanup();
  await redis.flushAll();
});

type FleetGateway = Record<string, unknown> & {
  id: string;
  presence: { online: boolean; since: number | null; node: string | null; lastTrafficAt: number | null };
};

async function fleet(relay: Relay, query = ''): Promise<FleetGateway[]> {
  const admin = await mintAdmin(fx.manage);
  const res = await fetch(fx.http(relay, `/v1/admin/gateways${query}`), {
    headers: { authorization: `Bearer ${admin}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { gateways: FleetGateway[] }).gateways;
}

async function one(relay: Relay, id: string): Promise<FleetGateway> {
  const admin = await mintAdmin(fx.manage);
  const res = await fetch(fx.http(relay, `/v1/admin/gateways/${id}`), {
    headers: { authorization: `Bearer ${admin}` },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as FleetGateway;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('fleet API over two nodes on Redis with the real agent', () => {
  it('both nodes show it online with traffic, version, outbox and peers; a never-activated one is offline; SIGSTOP flips it', async () => {
    const [dicomPort, mgPort, deadPort] = await freePorts(3);
    storescp = spawn('/usr/bin/storescp', ['--aetitle', 'MG1', String(mgPort)], { stdio: 'ignore' });
    // A second gateway that is created but never activated.
    const admin = await mintAdmin(fx.manage);
    const created = await fetch(fx.http(b, '/v1/admin/gateways'), {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ site: 'site-a', name: 'never activated' }),
    });
    const never = ((await created.json()) as { gateway: string }).gateway;

    const env = agentSettings(fx, b, gw.stateDir, {
      SCANRELAY_GATEWAY_DICOM_PORT: String(dicomPort),
      SCANRELAY_GATEWAY_MODALITIES: `MG1@127.0.0.1:${mgPort},DEAD1@127.0.0.1:${deadPort}`,
      SCANRELAY_GATEWAY_ECHO_INTERVAL_S: '1',
    });
    agent = startChild(cli, ['run'], env as NodeJS.ProcessEnv);
    const started = Date.now();

    // The report arrives once the link is up and the echo monitor has checked both peers (storescp may take
    // a moment to listen, so wait for MG1 to answer).
    const view = await until(
      'an online gateway with both peers checked and MG1 answering',
      async () => {
        const g = (await fleet(a)).find((x) => x.id === gw.gateway);
        const peers = g?.peers as { online: boolean; checkedAt: number | null }[] | null;
        const checked = peers?.every((p) => p.checkedAt !== null) && peers[0]?.online;
        return g?.presence.online && checked ? g : undefined;
      },
      30_000,
    );
    expect(view.presence.node).toBe(b.nodeId);
    expect(view.presence.lastTrafficAt).toBeGreaterThanOrEqual(started);
    expect(Date.now() - (view.presence.lastTrafficAt as number)).toBeLessThan(TIMINGS.presenceTtlMs);
    expect(view.agent).toEqual({ version: VERSION, transport: 'websocket', startedAt: expect.any(Number) });
    expect(view.outbox).toMatchObject({ pending: expect.any(Number) });
    expect(view.peers).toEqual([
      { aet: 'MG1', online: true, checkedAt: expect.any(Number) },
      { aet: 'DEAD1', online: false, checkedAt: expect.any(Number) },
    ]);
    expect(Math.abs(view.clockSkewMs as number)).toBeLessThan(5_000);
    // Node B (holding the socket) and node A (reading Redis) answer the same.
    const onB = await one(b, gw.gateway);
    expect(onB.presence).toMatchObject({ online: true, node: b.nodeId, since: view.presence.since });
    expect(onB.agent).toEqual(view.agent);
    for (const relay of [a, b]) {
      expect((await fleet(relay, '?online=false')).map((g) => g.id)).toEqual([never]);
      expect((await fleet(relay, '?online=true')).map((g) => g.id)).toEqual([gw.gateway]);
    }
    expect((await one(a, never)).presence).toEqual({ online: false, since: null, node: null, lastTrafficAt: null });

    // Frozen: no traffic, so offline within the lease (45 s in production; 3 s here) — on both nodes.
    agent.kill('SIGSTOP');
    const frozenAt = Date.now();
    await until(
      'offline on node A',
      async () => ((await one(a, gw.gateway)).presence.online ? undefined : true),
      15_000,
    );
    expect(Date.now() - frozenAt).toBeLessThan(45_000);
    expect((await one(b, gw.gateway)).presence).toMatchObject({ online: false, node: null });
    expect((await fleet(b, '?online=false')).map((g) => g.id).sort()).toEqual([gw.gateway, never].sort());

    agent.kill('SIGCONT');
    const back = await until(
      'online again',
      async () => {
        const g = await one(a, gw.gateway);
        return g.presence.online ? g : undefined;
      },
      20_000,
    );
    expect(back.presence.lastTrafficAt).toBeGreaterThan(frozenAt);
  });
});
