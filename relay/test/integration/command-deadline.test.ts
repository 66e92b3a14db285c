/**
 * The command deadline (issue 12 item 4): a command with no final outcome by its token's `exp` plus the
 * relay's `commandOutcomeGraceMs` ends `timed_out` — to its sender and on the site's channel, exactly once —
 * and a late outcome from the gateway cannot add a second terminal state. Time is a manual clock; sockets,
 * tokens and the relay are real; the gateway is a protocol-speaking fake that runs the command and never
 * finishes it (as a gateway stuck on a C-ECHO to a peer that never answers).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../contract/manual-clock.js';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture } from '../helpers/relay-fixture.js';

let fx: Fixture;
afterEach(async () => {
  await fx.close();
});

describe('command deadline', () => {
  it('a command still running past exp + grace ends timed_out once; a late completed is dropped', async () => {
    const clock = new ManualClock();
    fx = await createFixture({
      clock,
      config: {
        timings: {
          pingIntervalMs: 3_600_000,
          livenessTimeoutMs: 7_200_000,
          presenceTtlMs: 7_200_000,
          commandAckTimeoutMs: 3_600_000,
          commandOutcomeGraceMs: 30_000,
        },
      },
    });
    const relay = await fx.start();
    const gw = await fx.gateway(relay, 'gw-1');
    const { client } = await fx.browser(relay, { ttlSeconds: 3_000 });
    const watcher = (await fx.browser(relay, { ttlSeconds: 3_000 })).client;
    watcher.send({ type: 'subscribe', site: 'site-a' });
    await watcher.next('subscribed');
    client.send({ type: 'command', ref: 'slow', token: await fx.command({ aud: 'gw-1' }, { ttlSeconds: 60 }) });
    const delivered = await gw.client.next('command');
    gw.client.send({ type: 'command.status', command: delivered.command, state: 'verified' });
    gw.client.send({ type: 'command.status', command: delivered.command, state: 'running' });
    await client.next('command.status', (m) => m.ref === 'slow' && m.state === 'running');

    // Past exp but inside the grace: still running (a long C-MOVE may outlive its token).
    clock.advance(80_000);
    await relay.runMaintenance();
    await client.roundTrip();
    expect(client.received.filter((m) => m.state === 'timed_out')).toEqual([]);

    clock.advance(11_000);
    await relay.runMaintenance();
    expect(await client.next('command.status', (m) => m.ref === 'slow' && m.state === 'timed_out')).toMatchObject({
      command: delivered.command,
      detail: { reason: 'no_outcome' },
    });
    await watcher.next(
      'event',
      (m) => m.kind === 'command.status' && (m.data as { state?: string }).state === 'timed_out',
    );

    gw.client.send({ type: 'command.status', command: delivered.command, state: 'completed' });
    await gw.client.roundTrip();
    await relay.runMaintenance();
    await client.roundTrip();
    const finals = client.received.filter((m) => m.type === 'command.status' && m.ref === 'slow');
    expect(finals.map((m) => m.state)).toEqual(['accepted', 'delivered', 'verified', 'running', 'timed_out']);
    expect(fx.logsWhere((l) => l.audit === 'command').map((l) => l.state)).toEqual(['timed_out']);
  });
});
