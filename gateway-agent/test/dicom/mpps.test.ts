import { afterEach, describe, expect, it } from 'vitest';
import { uuidUid } from '../../src/dicom/uid.js';
import { runPython } from '../helpers/dicom-peers.js';
import { addArgs, type Fixture, GATEWAY_AET, startService } from './fixture.js';

let fx: Fixture | undefined;
afterEach(async () => {
  await fx?.cleanup();
  fx = undefined;
});

type PyResult = { status: number | null; uid: string };
const mpps = (port: number, action: 'create' | 'set', args: Record<string, unknown>) =>
  runPython('mpps_scu.py', [
    '127.0.0.1',
    String(port),
    GATEWAY_AET,
    'PYNETDICOM',
    action,
    JSON.stringify(args),
  ]) as Promise<PyResult>;

describe('MPPS SCP with pynetdicom as the modality', () => {
  it('N-CREATE IN PROGRESS → procedure.started; N-SET COMPLETED → procedure.completed {images}', async () => {
    fx = await startService();
    await fx.svc.worklistAdd(addArgs('ACC100'));
    const uid = uuidUid();
    expect((await mpps(fx.port, 'create', { uid, accession: 'ACC100', studyUid: '1.2.3.4' })).status).toBe(0);
    const started = await fx.recorder.waitFor('procedure.started');
    expect(started).toMatchObject({ subject: 'ACC100', data: { mpps: uid, stationAet: 'PYNETDICOM' } });
    expect((await mpps(fx.port, 'set', { uid, status: 'COMPLETED', images: 4 })).status).toBe(0);
    const completed = await fx.recorder.waitFor('procedure.completed');
    expect(completed).toMatchObject({ subject: 'ACC100', data: { mpps: uid, images: 4 } });
    // A final step may no longer be updated (0x0110), and nothing more is reported.
    expect((await mpps(fx.port, 'set', { uid, status: 'COMPLETED', images: 4 })).status).toBe(0x0110);
    expect(fx.recorder.of('procedure.completed')).toHaveLength(1);
    expect(JSON.stringify(fx.recorder.events)).not.toMatch(/SMITH|9434765919|19700101/);
  });

  it('N-SET DISCONTINUED → procedure.discontinued {reason}; several MPPS for one accession', async () => {
    fx = await startService();
    const first = uuidUid();
    const second = uuidUid();
    await mpps(fx.port, 'create', { uid: first, accession: 'ACC200', studyUid: '1.2.3.5' });
    await mpps(fx.port, 'create', { uid: second, accession: 'ACC200', studyUid: '1.2.3.5' });
    expect(
      (await mpps(fx.port, 'set', { uid: first, status: 'DISCONTINUED', images: 1, reason: 'Equipment failure' }))
        .status,
    ).toBe(0);
    expect((await mpps(fx.port, 'set', { uid: second, status: 'COMPLETED', images: 2 })).status).toBe(0);
    expect(fx.recorder.of('procedure.started')).toHaveLength(2);
    expect(fx.recorder.of('procedure.discontinued')).toEqual([
      expect.objectContaining({ subject: 'ACC200', data: { mpps: first, images: 1, reason: 'Equipment failure' } }),
    ]);
    expect(fx.recorder.of('procedure.completed')).toEqual([
      expect.objectContaining({ subject: 'ACC200', data: { mpps: second, images: 2 } }),
    ]);
  });

  it('keeps the MPPS → accession mapping across a restart (N-SET carries no accession)', async () => {
    fx = await startService();
    const uid = uuidUid();
    await mpps(fx.port, 'create', { uid, accession: 'ACC300', studyUid: '1.2.3.6' });
    const dir = fx.stateDir;
    await fx.stop();
    fx = await startService({}, dir);
    expect((await mpps(fx.port, 'set', { uid, status: 'COMPLETED', images: 3 })).status).toBe(0);
    expect(await fx.recorder.waitFor('procedure.completed')).toMatchObject({ subject: 'ACC300', data: { images: 3 } });
  });

  it('answers unknown instances and duplicates with DICOM errors, and a failed outbox write with a failure', async () => {
    fx = await startService();
    expect((await mpps(fx.port, 'set', { uid: uuidUid(), status: 'COMPLETED' })).status).toBe(0x0112);
    const uid = uuidUid();
    fx.recorder.failNext = true;
    // The event could not be recorded: the modality is told, and the step is not half-created.
    expect((await mpps(fx.port, 'create', { uid, accession: 'ACC400', studyUid: '1.2.3.7' })).status).toBe(0x0110);
    expect((await mpps(fx.port, 'create', { uid, accession: 'ACC400', studyUid: '1.2.3.7' })).status).toBe(0);
    expect((await mpps(fx.port, 'create', { uid, accession: 'ACC400', studyUid: '1.2.3.7' })).status).toBe(0x0111);
    expect(fx.recorder.of('procedure.started')).toHaveLength(1);
  });
});
