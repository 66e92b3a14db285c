/**
 * End to end through the REAL relay with the REAL DICOM side: activation over the relay's HTTP API, commands
 * from a browser-protocol client through the relay to the agent, the modality simulator driving the flow, a
 * relay outage with everything arriving afterwards in order, a replayed token refused by the gateway itself.
 */

import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Relay } from '../../../relay/src/relay.js';
import { createRelay } from '../../../relay/src/relay.js';
import { TestClient } from '../../../relay/test/helpers/client.js';
import { createFixture, type Fixture, ORIGIN, until } from '../../../relay/test/helpers/relay-fixture.js';
import { TEST_ISSUER } from '../../../relay/test/helpers/tokens.js';
import { type Agent, startAgent } from '../../src/agent.js';
import { loadIdentity } from '../../src/keys/identity.js';
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

let fx: Fixture;
let relay: Relay;
let gw: Enrolled;
let agent: Agent | undefined;
let cleanupRelay: (() => Promise<void>) | undefined;
let cleanupClient: (() => void) | undefined;

beforeEach(async () => {
  fx = await createFixture();
  relay = await fx.start();
  gw = await enrol(fx, relay);
});
afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  cleanupClient?.();
  await cleanupRelay?.();
  cleanupClient = undefined;
  cleanupRelay = undefined;
  await fx.close();
  await gw.cleanup();
});

async function browser(): Promise<TestClient> {
  const { client } = await fx.browser(relay, { sites: ['site-a'] });
  return client;
}

async function waitOnline(b: TestClient, gateway: string): Promise<void> {
  const sub = b.received.find((m) => m.type === 'subscribed');
  const presence = (sub?.presence as { gateway: string; online: boolean }[] | undefined) ?? [];
  if (presence.some((p) => p.gateway === gateway && p.online)) return;
  await b.next('presence', (m) => m.gateway === gateway && m.online === true, 10_000);
}

describe('gateway agent through the real relay', () => {
  it('activates over HTTP: the key stays local (0600), the identity names the relay’s gateway and site', async () => {
    const identity = await loadIdentity(gw.stateDir);
    expect(identity.gateway).toBe(gw.gateway);
    expect(identity.site).toBe('site-a');
    const { stat } = await import('node:fs/promises');
    expect((await stat(`${gw.stateDir}/gateway-key.jwk`)).mode & 0o777).toBe(0o600);
    expect((await stat(gw.stateDir)).mode & 0o777).toBe(0o700);
    const record = await relay.ports.registry.getGateway(gw.gateway);
    expect(record).toMatchObject({ status: 'active', thumbprint: identity.thumbprint });
  });

  it('runs the screening flow: worklist.add from a browser, the modality performs it, every event reaches the board in order', async () => {
    const b = await browser();
    await subscribe(b);
    agent = await startAgent({ config: agentConfig(fx, relay, gw.stateDir), logger: silentLogger() });
    await waitOnline(b, gw.gateway);

    const token = await commandToken(fx, gw.gateway, 'worklist.add', worklistArgs('ACC100'));
    const statuses = await runCommand(b, 'add-1', token);
    expect(statuses.map((s) => s.state)).toEqual(['accepted', 'delivered', 'verified', 'completed']);
    expect(statuses.at(-1)!.detail).toEqual({ result: { existing: false } });

    // The same details again with a new token: idempotent, one worklist item.
    const again = await runCommand(
      b,
      'add-2',
      await commandToken(fx, gw.gateway, 'worklist.add', worklistArgs('ACC100')),
    );
    expect(again.at(-1)).toMatchObject({ state: 'completed', detail: { result: { existing: true } } });
    // Different details for the same accession: a conflict, refused.
    const conflict = await runCommand(
      b,
      'add-3',
      await commandToken(fx, gw.gateway, 'worklist.add', worklistArgs('ACC100', '1111111111')),
    );
    expect(conflict.at(-1)).toMatchObject({ state: 'rejected', detail: { reason: 'conflict' } });

    const sim = runSimulator({
      gateway: { aet: 'SCANRELAY', host: '127.0.0.1', port: agent.dicomPort() },
      aet: 'HOLOGIC1',
      images: 2,
      forProcessing: false,
      rows: 16,
      columns: 16,
      once: true,
      storageCommitment: false,
    });
    await sim.done;
    expect(sim.procedures).toHaveLength(1);
    expect(sim.procedures[0]!.error).toBeUndefined();
    await b.next('event', (m) => m.kind === 'procedure.completed' && m.subject === 'ACC100', 10_000);
    const events = gatewayEvents(b, gw.gateway);
    const kinds = events.map((e) => e.kind);
    expect(kinds[0]).toBe('worklist.added');
    expect(kinds).toContain('procedure.started');
    expect(kinds).toContain('images.received');
    expect(kinds.indexOf('procedure.started')).toBeLessThan(kinds.indexOf('procedure.completed'));
    const seqs = events.map((e) => e.seq as number);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    for (const e of events) expect(e.subject).toBe('ACC100');
    expect(agent.status().outbox.events).toBe(0);
  });

  it('refuses bad-args commands with a reason the browser sees (JSON subprotocol)', async () => {
    const b = await browser();
    await subscribe(b);
    agent = await startAgent({
      config: agentConfig(fx, relay, gw.stateDir, { SCANRELAY_GATEWAY_CODEC: 'json' }),
      logger: silentLogger(),
    });
    await waitOnline(b, gw.gateway);
    const bad = await runCommand(b, 'bad-1', await commandToken(fx, gw.gateway, 'echo', { aet: 'A\\B' }));
    expect(bad.at(-1)).toMatchObject({ state: 'rejected', detail: { reason: 'bad_args' } });
  });

  it('keeps working through a relay outage: events made meanwhile arrive afterwards, in order, once', async () => {
    const dataDir = relay.config.dataDir;
    const port = relay.port!;
    agent = await startAgent({
      config: agentConfig(fx, relay, gw.stateDir),
      logger: silentLogger(),
      link: { backoff: { baseMs: 50, maxMs: 500 } },
    });
    const b1 = await browser();
    await subscribe(b1);
    await waitOnline(b1, gw.gateway);
    const add = await runCommand(b1, 'o-1', await commandToken(fx, gw.gateway, 'worklist.add', worklistArgs('ACC200')));
    expect(add.at(-1)!.state).toBe('completed');
    const first = await b1.next('event', (m) => m.kind === 'worklist.added');
    const position = first.position as string;

    await relay.close();
    // The modality keeps working while the relay is down.
    const sim = runSimulator({
      gateway: { aet: 'SCANRELAY', host: '127.0.0.1', port: agent.dicomPort() },
      aet: 'HOLOGIC1',
      images: 3,
      forProcessing: false,
      rows: 16,
      columns: 16,
      once: true,
      storageCommitment: false,
    });
    await sim.done;
    expect(sim.procedures[0]?.error).toBeUndefined();
    expect(agent.status().outbox.events).toBeGreaterThan(0);
    expect(agent.status().link).not.toBe('online');

    relay = await fx.start({ port, dataDir });
    const b2 = await browser();
    await subscribe(b2, 'site-a', position);
    await b2.next('event', (m) => m.kind === 'procedure.completed' && m.subject === 'ACC200', 20_000);
    const events = gatewayEvents(b2, gw.gateway);
    const seqs = events.map((e) => e.seq as number);
    expect(seqs[0]).toBe((first.seq as number) + 1);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
    expect(events.map((e) => e.kind)).toContain('procedure.started');
  });

  it('when its relay node dies, the agent moves to the next relay URL; events continue in order, none lost', async () => {
    const second = await fx.start();
    agent = await startAgent({
      config: agentConfig(fx, relay, gw.stateDir, {
        SCANRELAY_GATEWAY_RELAY_URLS: `http://127.0.0.1:${relay.port},http://127.0.0.1:${second.port}`,
      }),
      logger: silentLogger(),
      link: { backoff: { baseMs: 50, maxMs: 500 } },
    });
    const { client: b } = await fx.browser(second, { sites: ['site-a'] });
    await subscribe(b);
    await waitOnline(b, gw.gateway);
    expect(
      (await runCommand(b, 'n-1', await commandToken(fx, gw.gateway, 'worklist.add', worklistArgs('ACC600')))).at(-1)!
        .state,
    ).toBe('completed');
    expect(agent.status().relayUrl).toContain(String(relay.port));
    await relay.close();
    const moved = agent;
    await until(
      () => moved.status().link === 'online' && moved.status().relayUrl.includes(String(second.port)),
      'the agent online on the second node',
      15_000,
    );
    const sim = runSimulator({
      gateway: { aet: 'SCANRELAY', host: '127.0.0.1', port: agent.dicomPort() },
      aet: 'HOLOGIC1',
      images: 2,
      forProcessing: false,
      rows: 16,
      columns: 16,
      once: true,
      storageCommitment: false,
    });
    await sim.done;
    await b.next('event', (m) => m.kind === 'procedure.completed' && m.subject === 'ACC600', 15_000);
    const seqs = gatewayEvents(b, gw.gateway).map((e) => e.seq as number);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
  });

  it('a replayed command token is refused by the gateway itself, even when the relay has forgotten it', async () => {
    const dataDir = relay.config.dataDir;
    const port = relay.port!;
    agent = await startAgent({
      config: agentConfig(fx, relay, gw.stateDir),
      logger: silentLogger(),
      link: { backoff: { baseMs: 50, maxMs: 500 } },
    });
    const b1 = await browser();
    await subscribe(b1);
    await waitOnline(b1, gw.gateway);
    const token = await commandToken(fx, gw.gateway, 'worklist.add', worklistArgs('ACC300'));
    expect((await runCommand(b1, 'r-1', token)).at(-1)!.state).toBe('completed');
    // The relay itself refuses a jti it has seen…
    b1.send({ type: 'command', ref: 'r-1b', token });
    expect(await b1.next('error', (m) => m.ref === 'r-1b')).toMatchObject({ code: 'bad_message' });

    // …but a relay that lost that memory (a fresh deployment: new command queue, same registry) would pass it
    // on: the gateway is the authority and refuses it as replayed.
    await relay.close();
    const fresh = await createRelay(
      {
        host: '127.0.0.1',
        port,
        manageJwks: fx.jwks.path,
        manageIssuer: TEST_ISSUER,
        allowedOrigins: [ORIGIN],
        dataDir,
        nodeId: 'fresh-node',
      },
      { defaultMetrics: false, logger: pino({ level: 'silent' }) },
    );
    cleanupRelay = () => fresh.close();
    await fresh.listen();
    const b2 = await TestClient.connect(`ws://127.0.0.1:${port}/v1/browser`, { origin: ORIGIN });
    cleanupClient = () => b2.close();
    b2.send({ type: 'hello', token: await fx.session({ sites: ['site-a'] }) });
    await b2.next('welcome');
    await subscribe(b2);
    await waitOnline(b2, gw.gateway);
    const replay = await runCommand(b2, 'r-2', token);
    expect(replay.at(-1)).toMatchObject({ state: 'rejected', detail: { reason: 'replayed' } });
  });
});
