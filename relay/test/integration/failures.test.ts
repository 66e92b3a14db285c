/**
 * Backend failures reach clients as `internal` (4000: reconnect) — never a crash, never a silent loss: a
 * failed append is not acknowledged (the gateway resends it), and the socket stays usable.
 */
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { systemClock } from '../../src/core/clock.js';
import { createPorts } from '../../src/ports/create.js';
import { PortError } from '../../src/ports/errors.js';
import type { Ports } from '../../src/ports/index.js';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture } from '../helpers/relay-fixture.js';

let fx: Fixture;
let ports: Ports | undefined;
afterEach(async () => {
  await fx.close();
  await ports?.close();
});

it('answers a failed append with internal, does not ack it, and keeps the socket', async () => {
  fx = await createFixture();
  ports = await createPorts({
    dataDir: `${fx.dataDir}/injected`,
    nodeId: 'node-x',
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    eventLog: { maxEvents: 100, maxAgeMs: 60_000, maxSubjects: 100 },
  });
  let failNext = true;
  const append = ports.eventLog.append.bind(ports.eventLog);
  ports.eventLog.append = async (event) => {
    if (failNext && event.seq === 1) {
      failNext = false;
      throw new PortError('unavailable', 'backend down (test)');
    }
    return append(event);
  };
  const relay = await fx.start({}, { ports });
  const gw = await fx.gateway(relay, 'gw-1');
  gw.client.send({ type: 'event', seq: 1, kind: 'worklist.added', at: 1, data: {} });
  expect(await gw.client.next('error')).toMatchObject({ code: 'internal' });
  gw.client.send({ type: 'event', seq: 1, kind: 'worklist.added', at: 1, data: {} });
  expect(await gw.client.next('event.ack')).toEqual({ type: 'event.ack', seq: 1 });
  expect(gw.client.received.filter((m) => m.type === 'event.ack')).toHaveLength(1);
  const failure = fx.logsWhere((l) => l.msg === 'message handler failed');
  expect(failure).toHaveLength(1);
  expect(JSON.stringify(failure)).not.toContain('eyJ');
});
