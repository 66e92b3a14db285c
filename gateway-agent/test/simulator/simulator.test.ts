import { afterEach, describe, expect, it } from 'vitest';
import { type ProcedureResult, runSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { addArgs, type Fixture, GATEWAY_AET, MODALITY_AET, startService } from '../dicom/fixture.js';

let fx: Fixture | undefined;
let sim: SimulatorHandle | undefined;
afterEach(async () => {
  await sim?.stop();
  sim = undefined;
  await fx?.cleanup();
  fx = undefined;
});

describe('modality simulator against the gateway', () => {
  it('runs the screening flow: MWL → MPPS IN PROGRESS → C-STORE → MPPS COMPLETED → storage commitment', async () => {
    fx = await startService();
    await fx.svc.worklistAdd(addArgs('SIM1'));
    await fx.svc.worklistAdd(addArgs('OTHER1', { stationAet: 'OTHERUNIT' }));
    sim = runSimulator({
      gateway: { aet: GATEWAY_AET, host: '127.0.0.1', port: fx.port },
      aet: MODALITY_AET,
      images: 2,
      rows: 64,
      columns: 64,
      commitmentWaitMs: 500,
      once: true,
    });
    await sim.done;
    expect(sim.procedures).toHaveLength(1); // only its own station's item
    const p = sim.procedures[0]!;
    expect(p.error).toBeUndefined();
    expect(p).toMatchObject({ accession: 'SIM1', images: 4, commitment: { committed: 4, failed: 0 } });
    const kinds = fx.recorder.events.filter((e) => e.subject === 'SIM1').map((e) => e.kind);
    expect(kinds).toEqual([
      'worklist.added',
      'procedure.started',
      'images.received',
      'images.received',
      'images.received',
      'images.received',
      'procedure.completed',
      'storage.committed',
    ]);
    expect(fx.recorder.of('procedure.completed')[0]!.data).toMatchObject({ mpps: p.mppsUid, images: 4 });
    expect(fx.recorder.of('images.received').at(-1)!.data).toEqual({ count: 4 });
    expect(fx.recorder.of('storage.committed')[0]!.data).toMatchObject({ committed: 4, failed: 0, by: 'gateway' });
  });

  it('keeps polling and performs items added later, each once; stop() ends it', async () => {
    fx = await startService();
    const done: ProcedureResult[] = [];
    let notify: (() => void) | undefined;
    sim = runSimulator({
      gateway: { aet: GATEWAY_AET, host: '127.0.0.1', port: fx.port },
      aet: MODALITY_AET,
      images: 1,
      forProcessing: false,
      rows: 16,
      columns: 16,
      pollIntervalMs: 100,
      storageCommitment: false,
      onProcedure: (r) => {
        done.push(r);
        notify?.();
      },
    });
    const waitFor = (n: number) =>
      new Promise<void>((resolve) => {
        notify = () => done.length >= n && resolve();
        notify();
      });
    await fx.svc.worklistAdd(addArgs('LATE1'));
    await waitFor(1);
    await fx.svc.worklistAdd(addArgs('LATE2'));
    await waitFor(2);
    await sim.stop();
    expect(done.map((d) => [d.accession, d.images, d.error])).toEqual([
      ['LATE1', 1, undefined],
      ['LATE2', 1, undefined],
    ]);
    expect(fx.recorder.of('procedure.completed')).toHaveLength(2);
  });
});
