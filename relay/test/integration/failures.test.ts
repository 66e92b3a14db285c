/**
 * Backend failures reach clients as `internal` (4000: reconnect) — never a crash, never a silent loss. A
 * failed append is not acknowledged and ends the gateway link: carrying on would let a later `seq` be stored
 * first and the failed one then be refused as a duplicate on resend, i.e. lost. The gateway reconnects and
 * resends from `welcome.acked`.
 */
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
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

// A failed append closes the gateway link (4000, reconnect): `event.ack {seq}` means "everything up to seq is
// stored", so later events on the same socket must not be stored ahead of the failed one.
it('answers a failed append with internal, does not ack it, and closes the link so the gateway resends', async () => {
  fx = await createFixture();
  const injected = await createPorts({
    dataDir: `${fx.dataDir}/injected`,
    nodeId: 'node-x',
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    eventLog: { maxEvents: 100, maxAgeMs: 60_000, maxSubjects: 100 },
  });
  ports = injected;
  let failNext = true;
  const append = ports.eventLog.append.bind(ports.eventLog);
  ports.eventLog.append = async (event, publish) => {
    if (failNext && event.seq === 1) {
      failNext = false;
      throw new PortError('unavailable', 'backend down (test)');
    }
    return append(event, publish);
  };
  const relay = await fx.start({}, { ports: injected });
  const gw = await fx.gateway(relay, 'gw-1');
  gw.client.send({ type: 'event', seq: 1, kind: 'worklist.added', at: 1, data: {} });
  gw.client.send({ type: 'event', seq: 2, kind: 'worklist.added', at: 2, data: {} });
  expect((await gw.client.closed).code).toBe(4000);
  expect(gw.client.received.filter((m) => m.type === 'event.ack')).toEqual([]);
  const again = await fx.gateway(relay, 'gw-1');
  expect(again.welcome.acked).toBe(0);
  again.client.send({ type: 'event', seq: 1, kind: 'worklist.added', at: 1, data: {} });
  again.client.send({ type: 'event', seq: 2, kind: 'worklist.added', at: 2, data: {} });
  expect(await again.client.next('event.ack')).toEqual({ type: 'event.ack', seq: 1 });
  expect(await again.client.next('event.ack')).toEqual({ type: 'event.ack', seq: 2 });
  const failure = fx.logsWhere((l) => l.msg === 'storing an event failed; gateway link closed');
  expect(failure).toHaveLength(1);
  expect(JSON.stringify(failure)).not.toContain('eyJ');
});

it('answers a browser request that hit a backend failure with internal carrying its ref', async () => {
  fx = await createFixture();
  const injected = await createPorts({
    dataDir: `${fx.dataDir}/injected`,
    nodeId: 'node-y',
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    eventLog: { maxEvents: 100, maxAgeMs: 60_000, maxSubjects: 100 },
  });
  ports = injected;
  injected.commands.claim = async () => {
    throw new PortError('unavailable', 'backend down (test)');
  };
  const relay = await fx.start({}, { ports: injected });
  await fx.gateway(relay, 'gw-1');
  const { client } = await fx.browser(relay);
  client.send({ type: 'command', ref: 'c-9', token: await fx.command({ aud: 'gw-1' }) });
  expect(await client.next('error')).toMatchObject({ code: 'internal', ref: 'c-9' });
  await client.roundTrip();
});
