/**
 * The agent as its own process (`scanrelay-gateway run`, bundled from source) against the REAL relay:
 * frozen with SIGSTOP (shown offline, commands queue, run after SIGCONT, nothing lost) and killed with
 * SIGKILL mid-procedure (restart: no event lost, none duplicated, numbering continues).
 */
import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Relay } from '../../../relay/src/relay.js';
import type { TestClient } from '../../../relay/test/helpers/client.js';
import { createFixture, type Fixture } from '../../../relay/test/helpers/relay-fixture.js';
import { runSimulator } from '../../src/simulator/index.js';
import { bundle, type Child, cleanupBundles, startChild } from '../helpers/child.js';
import { agentSettings, commandToken, type Enrolled, enrol, gatewayEvents, subscribe, worklistArgs } from './stack.js';

let cli: string;
let fx: Fixture;
let relay: Relay;
let gw: Enrolled;
const children: Child[] = [];

beforeAll(async () => {
  cli = await bundle('gateway-agent/src/cli.ts');
});
afterAll(async () => {
  await cleanupBundles();
});
beforeEach(async () => {
  fx = await createFixture();
  // Short liveness timings so that a frozen gateway is shown offline quickly (production: 15 s / 30 s / 45 s).
  relay = await fx.start({
    timings: { pingIntervalMs: 500, livenessTimeoutMs: 2000, presenceTtlMs: 3000, maintenanceIntervalMs: 200 },
  });
  gw = await enrol(fx, relay);
});
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    await c.exited;
  }
  await fx.close();
  await gw.cleanup();
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function startAgentProcess(dicomPort: number): Child {
  const env = agentSettings(fx, relay, gw.stateDir, { SCANRELAY_GATEWAY_DICOM_PORT: String(dicomPort) });
  const child = startChild(cli, ['run'], env as NodeJS.ProcessEnv);
  children.push(child);
  return child;
}

async function presence(b: TestClient, online: boolean, after = 0): Promise<void> {
  await b.next(
    'presence',
    (m) => m.gateway === gw.gateway && m.online === online && b.received.indexOf(m) >= after,
    15_000,
  );
}

async function browser(): Promise<TestClient> {
  const { client } = await fx.browser(relay, { sites: ['site-a'] });
  await subscribe(client);
  return client;
}

describe('agent process and the real relay', () => {
  it('frozen (SIGSTOP): shown offline, commands queue; after SIGCONT they run and nothing is lost', async () => {
    const b = await browser();
    const child = startAgentProcess(await freePort());
    await presence(b, true);

    const mark = b.received.length;
    child.kill('SIGSTOP');
    await presence(b, false, mark);
    const token = await commandToken(fx, gw.gateway, 'worklist.add', worklistArgs('ACC400'));
    b.send({ type: 'command', ref: 'q-1', token });
    await b.next('command.status', (m) => m.ref === 'q-1' && m.state === 'queued', 10_000);

    child.kill('SIGCONT');
    await b.next('command.status', (m) => m.ref === 'q-1' && m.state === 'completed', 20_000);
    const states = b.received.filter((m) => m.type === 'command.status' && m.ref === 'q-1').map((m) => m.state);
    expect(states).toEqual(['accepted', 'queued', 'delivered', 'verified', 'completed']);
    await b.next('event', (m) => m.gateway === gw.gateway && m.kind === 'worklist.added' && m.subject === 'ACC400');
    expect(b.received.some((m) => m.type === 'presence' && m.gateway === gw.gateway && m.online === true)).toBe(true);
    // SIGTERM stops it cleanly (exit 0) and the relay shows it offline.
    const beforeTerm = b.received.length;
    child.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    await presence(b, false, beforeTerm);
  });

  it('killed with SIGKILL mid-procedure, then restarted: no event lost or duplicated, numbering continues', async () => {
    const b = await browser();
    const dicomPort = await freePort();
    let child = startAgentProcess(dicomPort);
    await presence(b, true);
    const add = await commandToken(fx, gw.gateway, 'worklist.add', worklistArgs('ACC500'));
    b.send({ type: 'command', ref: 'k-1', token: add });
    await b.next('command.status', (m) => m.ref === 'k-1' && m.state === 'completed', 10_000);

    const sim = runSimulator({
      gateway: { aet: 'SCANRELAY', host: '127.0.0.1', port: dicomPort },
      aet: 'HOLOGIC1',
      images: 6,
      forProcessing: false,
      rows: 16,
      columns: 16,
      once: true,
      storageCommitment: false,
      imageIntervalMs: 150,
      timeoutMs: 3000,
    });
    await b.next('event', (m) => m.gateway === gw.gateway && m.kind === 'images.received', 15_000);
    child.kill('SIGKILL');
    expect(await child.exited).toBe('SIGKILL');
    await sim.done;
    const before = gatewayEvents(b, gw.gateway).length;

    const mark = b.received.length;
    child = startAgentProcess(dicomPort);
    await presence(b, true, mark);
    // After the restart the unit completes the exam again (a new MPPS), producing more events.
    const sim2 = runSimulator({
      gateway: { aet: 'SCANRELAY', host: '127.0.0.1', port: dicomPort },
      aet: 'HOLOGIC1',
      images: 2,
      forProcessing: false,
      rows: 16,
      columns: 16,
      once: true,
      storageCommitment: false,
    });
    await sim2.done;
    await b.next('event', (m) => m.gateway === gw.gateway && m.kind === 'procedure.completed', 15_000);

    const events = gatewayEvents(b, gw.gateway);
    expect(events.length).toBeGreaterThan(before);
    const seqs = events.map((e) => e.seq as number);
    // Contiguous from 1: nothing lost; each seq once: nothing duplicated.
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    // And the relay stored exactly those.
    expect(await relay.ports.eventLog.lastSeq(gw.gateway)).toBe(seqs.length);
  });
});
