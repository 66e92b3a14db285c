import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { runTool } from '../helpers/dicom-peers.js';
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

  it('drops a connection whose PDU is larger than allowed, before buffering it, and keeps serving', async () => {
    // Timeouts far beyond the test's own: only the PDU size check can close this connection in time.
    const fx = await startService({ scuTimeoutMs: 120_000 });
    fixtures.push(fx);
    const socket = connect(fx.port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // An A-ASSOCIATE-RQ header declaring 1 GiB, then the start of its body.
    const header = Buffer.from([0x01, 0x00, 0x40, 0x00, 0x00, 0x00]);
    socket.write(Buffer.concat([header, Buffer.alloc(128 * 1024)]));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const r = await runTool('echoscu', ['-aet', 'ECHOSCU', '-aec', GATEWAY_AET, '127.0.0.1', String(fx.port)]);
    expect(r.code, r.stderr).toBe(0);
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
