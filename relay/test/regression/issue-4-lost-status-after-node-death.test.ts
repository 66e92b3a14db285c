/**
 * Regression (issue 4): a gateway ran a command, but its terminal `command.status` was lost with the link it
 * was written on (a relay node killed before recording it; here the link drops right after the gateway ran
 * it). The relay holds the command again and redelivers it on the gateway's next link, where the gateway's
 * replay guard refuses the jti (SECURITY case 8). The sender used to end with `rejected {replayed}` for a
 * command that had COMPLETED. Now the gateway's refusal says how the first run went (`detail.previous`) and
 * the relay reports that instead: the sender and the site see the real outcome, the command runs once.
 *
 * Only a redelivery's refusal is read that way: a token replayed to the gateway on its first delivery by this
 * relay stays `rejected` (SECURITY case 8).
 *
 * Two relay nodes sharing a MemoryHub (as nodes share Redis); the gateway is a protocol-speaking fake that
 * first connects to node A, then comes back on node B; the sender and a watcher are on node B.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Msg, TestClient } from '../helpers/client.js';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture } from '../helpers/relay-fixture.js';
import { decodeParts } from '../helpers/tokens.js';

let fx: Fixture;
afterEach(async () => {
  await fx.close();
});

const RESULT = { online: true, ms: 12 };

interface Lost {
  /** The browser that sent the command (node B). */
  client: TestClient;
  /** A watcher of the site (node B). */
  watcher: TestClient;
  /** The gateway's second link (node B), which just received the redelivery. */
  gateway: TestClient;
  jti: string;
  /** How many times the command reached the gateway. */
  deliveries: number;
}

/**
 * Send a command to gw-1 on node A; the gateway runs it, and its link drops before any status of it got out
 * (the statuses die with the link). Resolves once the redelivery reached the gateway's new link on node B.
 */
async function lostStatus(): Promise<Lost> {
  fx = await createFixture();
  const a = await fx.start();
  const b = await fx.start();
  const first = await fx.gateway(a, 'gw-1');
  const { client } = await fx.browser(b, { sub: 'user-1' });
  const { client: watcher } = await fx.browser(b, { sub: 'user-2' });
  watcher.send({ type: 'subscribe', site: 'site-a' });
  await watcher.next('subscribed');
  const token = await fx.command({ aud: 'gw-1', site: 'site-a', sub: 'user-1' });
  const jti = decodeParts(token).payload.jti as string;
  client.send({ type: 'command', ref: 'c1', token });
  const delivery = await first.client.next('command');
  expect(delivery.command).toBe(jti);
  // The gateway ran it (this fake has no DICOM side: running it is this line) and its link died at once.
  let deliveries = 1;
  first.client.close();
  await client.next('command.status', (m) => m.state === 'queued' && (m.detail as Msg)?.reason === 'redelivery');
  const second = await fx.gateway(b, 'gw-1');
  const again = await second.client.next('command');
  expect(again.command).toBe(jti);
  deliveries++;
  return { client, watcher, gateway: second.client, jti, deliveries };
}

/** The gateway's refusal of the redelivered jti, as gateway-agent's dispatcher sends it. */
function replayed(jti: string, previous?: Record<string, unknown>): Msg {
  return {
    type: 'command.status',
    command: jti,
    state: 'rejected',
    detail: {
      reason: 'replayed',
      message: 'this command token has already been used; a command runs at most once',
      ...(previous ? { previous } : {}),
    },
  };
}

/** States the watcher saw on the site channel for `jti`, after a round trip (nothing more is on its way). */
async function siteStates(watcher: TestClient, jti: string): Promise<Msg[]> {
  await watcher.roundTrip();
  return watcher.received
    .filter((m) => m.type === 'event' && m.kind === 'command.status' && (m.data as Msg).command === jti)
    .map((m) => m.data as Msg);
}

describe('a terminal status lost with its link', () => {
  it('ends completed with the original result after the redelivery — never rejected replayed', async () => {
    const { client, watcher, gateway, jti, deliveries } = await lostStatus();
    gateway.send(replayed(jti, { state: 'completed', detail: { result: RESULT } }));
    const done = await client.next('command.status', (m) => m.ref === 'c1' && m.state === 'completed');
    expect(done).toEqual({
      type: 'command.status',
      ref: 'c1',
      command: jti,
      state: 'completed',
      detail: { result: RESULT },
    });
    await client.roundTrip();
    expect(client.received.filter((m) => m.type === 'command.status' && m.state === 'rejected')).toEqual([]);
    const states = await siteStates(watcher, jti);
    expect(states.at(-1)).toEqual({ command: jti, state: 'completed', detail: { result: RESULT } });
    expect(states.map((s) => s.state)).not.toContain('rejected');
    expect(deliveries).toBe(2);
    // One audit line, with the real outcome.
    const audit = fx.logsWhere((l) => l.audit === 'command' && l.jti === jti);
    expect(audit.map((l) => l.state)).toEqual(['completed']);
  });

  it('a failure (or a run cut off by a gateway crash) is reported as that failure', async () => {
    const { client, watcher, gateway, jti } = await lostStatus();
    const detail = { reason: 'interrupted', message: 'the gateway stopped while this command ran' };
    gateway.send(replayed(jti, { state: 'failed', detail }));
    expect(await client.next('command.status', (m) => m.ref === 'c1' && m.state === 'failed')).toMatchObject({
      detail,
    });
    expect((await siteStates(watcher, jti)).at(-1)).toEqual({ command: jti, state: 'failed', detail });
  });

  it('still running on the gateway: reported running, then its real terminal status', async () => {
    const { client, watcher, gateway, jti } = await lostStatus();
    gateway.send(replayed(jti, { state: 'running' }));
    await client.next('command.status', (m) => m.ref === 'c1' && m.state === 'running');
    gateway.send({ type: 'command.status', command: jti, state: 'completed', detail: { result: RESULT } });
    await client.next('command.status', (m) => m.ref === 'c1' && m.state === 'completed');
    const states = (await siteStates(watcher, jti)).map((s) => s.state);
    expect(states.slice(-2)).toEqual(['running', 'completed']);
    expect(states).not.toContain('rejected');
  });

  it('a refusal with previous after the relay recorded the terminal state changes nothing', async () => {
    const { client, watcher, gateway, jti } = await lostStatus();
    gateway.send({ type: 'command.status', command: jti, state: 'completed', detail: { result: RESULT } });
    await client.next('command.status', (m) => m.ref === 'c1' && m.state === 'completed');
    await client.roundTrip();
    client.drain('command.status');
    gateway.send(replayed(jti, { state: 'failed', detail: { reason: 'interrupted', message: 'x' } }));
    await gateway.roundTrip();
    await client.roundTrip();
    expect(client.drain('command.status')).toEqual([]);
    const states = (await siteStates(watcher, jti)).map((s) => s.state);
    expect(states.at(-1)).toBe('completed');
    expect(states).not.toContain('failed');
  });

  it('an older gateway that sends no previous still ends the command (rejected replayed, as before)', async () => {
    const { client, gateway, jti } = await lostStatus();
    gateway.send(replayed(jti));
    expect(await client.next('command.status', (m) => m.ref === 'c1' && m.state === 'rejected')).toMatchObject({
      detail: { reason: 'replayed' },
    });
  });

  it('a command the gateway confirmed (verified, running) whose terminal status died with the link is asked again', async () => {
    fx = await createFixture();
    const a = await fx.start();
    const b = await fx.start();
    const first = await fx.gateway(a, 'gw-1');
    const { client } = await fx.browser(b, { sub: 'user-1' });
    const token = await fx.command({ aud: 'gw-1', site: 'site-a', sub: 'user-1' });
    const jti = decodeParts(token).payload.jti as string;
    client.send({ type: 'command', ref: 'v', token });
    await first.client.next('command');
    first.client.send({ type: 'command.status', command: jti, state: 'verified' });
    first.client.send({ type: 'command.status', command: jti, state: 'running' });
    await client.next('command.status', (m) => m.ref === 'v' && m.state === 'running');
    // Its `completed` went into this link as it died.
    first.client.close();
    const second = await fx.gateway(b, 'gw-1');
    expect((await second.client.next('command')).command).toBe(jti);
    second.client.send(replayed(jti, { state: 'completed', detail: { result: RESULT } }));
    expect(await client.next('command.status', (m) => m.ref === 'v' && m.state === 'completed')).toMatchObject({
      detail: { result: RESULT },
    });
    await client.roundTrip();
    // The sender never saw it go back to queued: it was running all along.
    expect(client.received.filter((m) => m.ref === 'v').map((m) => m.state)).toEqual([
      'accepted',
      'delivered',
      'verified',
      'running',
      'completed',
    ]);
  });

  it('a token the gateway had already run, delivered for the first time, stays a refusal (SECURITY case 8)', async () => {
    // E.g. a relay that forgot the jti passes a replayed token on: this relay never delivered it before, so
    // the gateway's refusal is the answer — not the first run's outcome, which this sender is not told.
    fx = await createFixture();
    const relay = await fx.start();
    const gw = await fx.gateway(relay, 'gw-1');
    const { client } = await fx.browser(relay, { sub: 'user-1' });
    const token = await fx.command({ aud: 'gw-1', site: 'site-a', sub: 'user-1' });
    const jti = decodeParts(token).payload.jti as string;
    client.send({ type: 'command', ref: 'r', token });
    await gw.client.next('command');
    gw.client.send(replayed(jti, { state: 'completed', detail: { result: RESULT } }));
    const refused = await client.next(
      'command.status',
      (m) => m.ref === 'r' && m.state !== 'accepted' && m.state !== 'delivered',
    );
    expect(refused).toEqual({
      type: 'command.status',
      ref: 'r',
      command: jti,
      state: 'rejected',
      detail: { reason: 'replayed', message: expect.any(String) },
    });
  });

  it('a malformed previous is treated as absent', async () => {
    const { client, gateway, jti } = await lostStatus();
    gateway.send(replayed(jti, { state: 'expired' }));
    expect(await client.next('command.status', (m) => m.ref === 'c1' && m.state === 'rejected')).toMatchObject({
      detail: { reason: 'replayed', previous: { state: 'expired' } },
    });
  });
});
