/**
 * Regression (issue 2): a gateway whose presence lease lapsed and was reaped by ANOTHER node (this node
 * stalled past the TTL) was closed with `replaced` (4505), a close code that tells the gateway to stop for
 * good. It must be closed with a reconnectable code (4000 `internal`) — only a real newer socket is
 * `replaced`.
 */
import { closeAction } from '@scanrelay/protocol';
import { afterEach, expect, it } from 'vitest';
import { ManualClock } from '../contract/manual-clock.js';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture } from '../helpers/relay-fixture.js';

let fx: Fixture;
afterEach(async () => {
  await fx.close();
});

it('closes a gateway whose lease another node reaped with a reconnectable code', async () => {
  const clock = new ManualClock();
  fx = await createFixture({
    clock,
    config: {
      timings: {
        pingIntervalMs: 30_000,
        livenessTimeoutMs: 36_000_000,
        presenceTtlMs: 45_000,
        maintenanceIntervalMs: 36_000_000,
      },
    },
  });
  const a = await fx.start();
  const b = await fx.start();
  const gw = await fx.gateway(a, 'gw-1');
  clock.advance(46_000);
  await b.runMaintenance(); // node B reaps A's lapsed lease before A sees any traffic
  gw.client.send({ type: 'ping' });
  const closed = await gw.client.closed;
  expect(closed).toEqual({ code: 4000, reason: 'internal' });
  expect(closeAction(closed.code)).toBe('reconnect');
  // And it can come straight back.
  const again = await fx.gateway(a, 'gw-1');
  expect(again.welcome.gateway).toBe('gw-1');
});
