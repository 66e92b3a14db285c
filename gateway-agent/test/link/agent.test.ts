/**
 * The agent wired together (link + verifier + replay guard + outbox) against the fake relay; the DICOM side is
 * the fake of its contract. Resume from welcome.acked, ordering, no loss or duplicates across relay outages,
 * statuses queued while offline, revocation ending the agent.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeParts,
  generateManageKey,
  type JwksFile,
  mintCommand,
  TEST_ISSUER,
  type TestKey,
  writeJwksFile,
} from '../../../relay/test/helpers/tokens.js';
import { type Agent, startAgent } from '../../src/agent.js';
import { ReplayGuard } from '../../src/commands/replay-guard.js';
import { validateConfig } from '../../src/config.js';
import { silentLogger } from '../../src/log.js';
import { createFakeDicom, type FakeDicom, WORKLIST_ARGS } from '../helpers/fake-dicom.js';
import { FakeRelay } from '../helpers/fake-relay.js';
import { makeGatewayState } from '../helpers/gateway-state.js';

const logger = silentLogger();
let manage: TestKey;
let jwks: JwksFile;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  manage = await generateManageKey({ kid: 'agent-test' });
  jwks = await writeJwksFile([manage]);
  return () => jwks.cleanup();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function start(
  relayUrl: string,
  stateDir?: string,
): Promise<{ agent: Agent; dicom: () => FakeDicom; dir: string }> {
  const dir = stateDir ?? (await makeGatewayState()).dir;
  if (!stateDir) cleanups.push(() => rm(dir, { recursive: true, force: true }));
  let dicom: FakeDicom | undefined;
  const config = validateConfig({
    SCANRELAY_GATEWAY_RELAY_URLS: relayUrl,
    SCANRELAY_GATEWAY_STATE_DIR: dir,
    SCANRELAY_GATEWAY_MANAGE_JWKS: jwks.path,
    SCANRELAY_GATEWAY_MANAGE_ISSUER: TEST_ISSUER,
    SCANRELAY_GATEWAY_DICOM_PORT: '0',
  });
  const agent = await startAgent({
    config,
    logger,
    createDicom: (opts) => {
      dicom = createFakeDicom(opts);
      return dicom;
    },
    link: { backoff: { baseMs: 20, maxMs: 200 }, pingIntervalMs: 200, deadAfterMs: 2000, helloTimeoutMs: 500 },
  });
  cleanups.push(() => agent.stop());
  return { agent, dicom: () => dicom!, dir };
}

const deliver = (token: string) => ({
  type: 'command' as const,
  command: decodeParts(token).payload.jti as string,
  token,
  from: { sub: 'user-1', session: 's1' },
});

describe('agent with a fake relay', () => {
  it('runs a command from the relay and streams its statuses and events', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.stop());
    const { dicom } = await start(relay.url);
    await relay.until(() => relay.connections.length === 1);
    // Welcome goes out as the hello arrives; a command sent after it reaches an online agent.
    await relay.last.token;
    const token = await mintCommand(manage, { claims: { cmd: 'worklist.add', args: WORKLIST_ARGS } });
    relay.last.send(deliver(token));
    await relay.until(() => relay.statuses.some((s) => s.state === 'completed'), 10_000, 'completed');
    expect(relay.statuses.map((s) => s.state)).toEqual(['verified', 'completed']);
    await relay.until(() => relay.events.length === 1);
    expect(relay.events[0]).toMatchObject({ seq: 1, kind: 'worklist.added', subject: 'ACC0001' });
    expect(dicom().worklist.size).toBe(1);
    // The same token again: replayed, nothing runs twice.
    relay.last.send(deliver(token));
    await relay.until(() => relay.statuses.length === 3);
    expect(relay.statuses[2]).toMatchObject({ state: 'rejected', detail: { reason: 'replayed' } });
  });

  it('resends exactly the events after welcome.acked, in order, after a relay outage; nothing lost or duplicated', async () => {
    let relay = await FakeRelay.start();
    const port = relay.port;
    const { agent, dicom } = await start(relay.url);
    await relay.until(() => relay.connections.length === 1);
    for (let i = 0; i < 5; i++) await dicom().raise('images.received', 'ACC1', { count: i + 1 });
    await relay.until(() => relay.events.length === 5, 10_000, 'five events');
    const stored = relay.events.slice();
    const acked = relay.acked;
    await relay.stop();
    // While the relay is down the modality keeps working.
    for (let i = 5; i < 25; i++) await dicom().raise('images.received', 'ACC1', { count: i + 1 });
    expect(agent.status().outbox.events).toBe(20);
    relay = await FakeRelay.start({ acked }, port);
    cleanups.push(() => relay.stop());
    await relay.until(() => relay.events.length === 20, 15_000, 'the backlog');
    const all = [...stored, ...relay.events];
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(all.map((e) => e.data.count)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(relay.duplicates).toBe(0);
    expect(relay.gaps).toBe(0);
    await relay.until(() => agent.status().outbox.events === 0, 5000, 'outbox drained');
  });

  it('resends unacknowledged events after a reconnect when the relay had not acked them', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.stop());
    const { agent, dicom } = await start(relay.url);
    await relay.until(() => relay.connections.length === 1);
    relay.autoAck = false;
    for (let i = 0; i < 3; i++) await dicom().raise('images.received', 'ACC1', { count: i + 1 });
    await relay.until(() => relay.events.length === 3);
    // The relay "lost" them (not durable): it forgets and reconnects.
    relay.events.length = 0;
    relay.acked = 0;
    relay.autoAck = true;
    relay.last.close(4000, 'internal');
    await relay.until(() => relay.events.length === 3 && relay.connections.length === 2, 10_000, 'resend');
    expect(relay.events.map((e) => e.seq)).toEqual([1, 2, 3]);
    await relay.until(() => agent.status().outbox.events === 0);
  });

  it('queues command statuses while offline and delivers them on reconnect', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.stop());
    const { agent, dicom } = await start(relay.url);
    await relay.until(() => relay.connections.length === 1);
    await relay.last.token;
    const release = dicom().block();
    const token = await mintCommand(manage, {
      claims: { cmd: 'pacs.retrieve', args: { studyInstanceUid: '1.2.3', destinationAet: 'MG1' } },
    });
    relay.last.send(deliver(token));
    await relay.until(() => relay.statuses.some((s) => s.state === 'running'), 10_000, 'running');
    // The link drops while the retrieve runs; the relay does not let the agent back in for a while.
    relay.answerHello = false;
    relay.last.ws.terminate();
    await relay.until(() => relay.connections.length >= 2, 10_000, 'reconnect attempt');
    release();
    await relay.until(() => agent.status().statusesQueued > 0, 10_000, 'statuses queued');
    expect(relay.statuses.some((s) => s.state === 'completed')).toBe(false);
    relay.answerHello = true;
    await relay.until(() => relay.statuses.some((s) => s.state === 'completed'), 10_000, 'completed after reconnect');
    const states = relay.statuses.map((s) => s.state);
    expect(states[0]).toBe('verified');
    expect(states.at(-1)).toBe('completed');
  });

  it('reports a command that was running when the agent died as failed (interrupted) after the restart', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.stop());
    const state = await makeGatewayState();
    cleanups.push(() => rm(state.dir, { recursive: true, force: true }));
    const guard = await ReplayGuard.open({ dir: join(state.dir, 'replay'), logger });
    await guard.claim('cmd-cut-short', Date.now() + 60_000);
    await guard.close();
    await start(relay.url, state.dir);
    await relay.until(() => relay.statuses.length === 1, 10_000, 'interrupted status');
    expect(relay.statuses[0]).toMatchObject({
      command: 'cmd-cut-short',
      state: 'failed',
      detail: { reason: 'interrupted' },
    });
  });

  it('on stop, lets a running command finish and report before the link closes; refuses new ones meanwhile', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.stop());
    const { agent, dicom } = await start(relay.url);
    await relay.until(() => relay.connections.length === 1);
    await relay.last.token;
    const release = dicom().block();
    const running = await mintCommand(manage, {
      claims: { cmd: 'pacs.retrieve', args: { studyInstanceUid: '1.2.3', destinationAet: 'MG1' } },
    });
    relay.last.send(deliver(running));
    await relay.until(() => relay.statuses.some((s) => s.state === 'running'), 10_000, 'running');
    const stopped = agent.stop();
    const late = await mintCommand(manage);
    relay.last.send(deliver(late));
    await relay.until(() => relay.statuses.some((s) => s.state === 'rejected'), 10_000, 'late command refused');
    release();
    await stopped;
    expect(
      relay.statuses.find((s) => s.command === decodeParts(running).payload.jti && s.state === 'completed'),
    ).toBeTruthy();
    expect(relay.statuses.find((s) => s.command === decodeParts(late).payload.jti)).toMatchObject({
      state: 'rejected',
      detail: { reason: 'busy' },
    });
  });

  it('ends with a fatal exit when the relay revokes the gateway', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.stop());
    relay.refuseNext = { code: 'revoked', closeCode: 4506 };
    const { agent } = await start(relay.url);
    const exit = await agent.done;
    expect(exit).toMatchObject({ reason: 'revoked', fatal: true });
    expect(agent.status().link).toBe('stopped');
  });
});
