import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type Fixture, GATEWAY_AET, startService } from './fixture.js';

const fixtures: Fixture[] = [];
afterEach(async () => {
  for (const f of fixtures.splice(0)) await f.cleanup();
});

describe('C-ECHO monitor and connection hygiene', () => {
  it('echoes the modalities periodically and reports modality.status when one goes offline', async () => {
    // The "modality" is a second gateway's SCP (a real C-ECHO SCP), which accepts this gateway as a caller.
    const peer = await startService({ aet: 'UNIT1', allowedCallingAets: [GATEWAY_AET] });
    fixtures.push(peer);
    const fx = await startService({
      echoIntervalMs: 200,
      scuTimeoutMs: 2000,
      modalities: [{ aet: 'UNIT1', host: '127.0.0.1', port: peer.port }],
    });
    fixtures.push(fx);
    await fx.recorder.waitFor('modality.status', (e) => e.data.online === true);
    await peer.stop();
    await fx.recorder.waitFor('modality.status', (e) => e.data.online === false);
    expect(fx.recorder.of('modality.status').map((e) => e.data)).toEqual([
      { aet: 'UNIT1', online: true },
      { aet: 'UNIT1', online: false },
    ]);
  });

  it('drops a connection that never requests an association', async () => {
    const fx = await startService({ scuTimeoutMs: 300 });
    fixtures.push(fx);
    const socket = connect(fx.port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    expect(socket.destroyed).toBe(true);
  });
});
