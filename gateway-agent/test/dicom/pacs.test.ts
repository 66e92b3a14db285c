/** Orthanc as the PACS: study C-FIND, C-MOVE with progress (stale-field guard), storage commitment, C-ECHO. */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MG_FOR_PRESENTATION, mgDataset, runSimulator } from '../../src/simulator/index.js';
import { freePort, type OrthancPeer, runTool, startOrthanc, tempDir } from '../helpers/dicom-peers.js';
import { addArgs, type Fixture, GATEWAY_AET, MODALITY_AET, startService } from './fixture.js';

const STUDY = '1.2.826.0.1.3680043.10.999.20';
const INSTANCES = [1, 2, 3].map((i) => `${STUDY}.${i}`);

let orthanc: OrthancPeer;
let fx: Fixture;
let work: string;
let fwPort: number;

beforeAll(async () => {
  const gwPort = await freePort();
  fwPort = await freePort();
  orthanc = await startOrthanc({
    modalities: { gateway: { aet: GATEWAY_AET, port: gwPort }, forwarder: { aet: 'SCANRELAYFW', port: fwPort } },
  });
  fx = await startService({
    port: gwPort,
    pacs: { aet: orthanc.aet, host: '127.0.0.1', port: orthanc.dicomPort },
    modalities: [
      { aet: MODALITY_AET, host: '127.0.0.1', port: await freePort() }, // nobody listens: offline
    ],
  });
  await fx.svc.worklistAdd(addArgs('ACC-PACS', { studyInstanceUid: STUDY }));
  work = await tempDir();
  const files: string[] = [];
  for (const [i, uid] of INSTANCES.entries()) {
    const file = join(work, `i${i}.dcm`);
    mgDataset({
      sopClassUid: MG_FOR_PRESENTATION,
      sopInstanceUid: uid,
      studyInstanceUid: STUDY,
      seriesInstanceUid: `${STUDY}.100`,
      accession: 'ACC-PACS',
      patientId: 'PACS1',
      patientName: 'PACS^PATIENT',
      birthDate: '19700101',
      sex: 'F',
      stationAet: MODALITY_AET,
      rows: 32,
      columns: 32,
      index: i,
      date: '20260101',
      time: '100000',
    }).toFile(file);
    files.push(file);
  }
  const r = await runTool('storescu', [
    '-aet',
    'STORESCU',
    '-aec',
    orthanc.aet,
    '127.0.0.1',
    String(orthanc.dicomPort),
    ...files,
  ]);
  if (r.code !== 0) throw new Error(`seeding Orthanc failed: ${r.stderr}`);
}, 60_000);

afterAll(async () => {
  await fx?.cleanup();
  await orthanc?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('PACS operations against Orthanc', () => {
  it('pacsFind: study-level C-FIND by accession, patient ID or study UID, without patient names', async () => {
    for (const args of [{ accession: 'ACC-PACS' }, { patientId: 'PACS1' }, { studyInstanceUid: STUDY }]) {
      const { studies } = await fx.svc.pacsFind(args);
      expect(studies).toEqual([
        expect.objectContaining({ studyInstanceUid: STUDY, accession: 'ACC-PACS', modalities: 'MG', instances: '3' }),
      ]);
      expect(JSON.stringify(studies)).not.toMatch(/PACS\^PATIENT|19700101/);
    }
    expect((await fx.svc.pacsFind({ accession: 'NOPE' })).studies).toEqual([]);
  });

  it('pacsRetrieve: C-MOVE to the gateway with progress; final counts only (stale-field trap)', async () => {
    const progress: { done: number; total: number; failed: number }[] = [];
    const result = await fx.svc.pacsRetrieve({ studyInstanceUid: STUDY, destinationAet: GATEWAY_AET }, (p) =>
      progress.push(p),
    );
    expect(result).toEqual({ completed: 3, failed: 0, warning: 0 });
    expect(progress.length).toBeGreaterThanOrEqual(2);
    // The final report: Orthanc's last response has no "remaining"; a stale one would make total > done.
    expect(progress.at(-1)).toEqual({ done: 3, total: 3, failed: 0 });
    for (const p of progress) expect(p.done).toBeLessThanOrEqual(p.total);
    // The moved objects arrived at the gateway's storage SCP and were matched to the worklist item.
    await fx.recorder.waitFor('images.received', (e) => e.data.count === 3);
    const events = fx.recorder.of('retrieve.progress');
    expect(events.at(-1)).toMatchObject({
      subject: 'ACC-PACS',
      data: { studyInstanceUid: STUDY, done: 3, total: 3, failed: 0 },
    });
  });

  it('pacsRetrieve to a destination the PACS does not know fails with its status', async () => {
    await expect(
      fx.svc.pacsRetrieve({ studyInstanceUid: STUDY, destinationAet: 'NOWHERE' }, () => undefined),
    ).rejects.toMatchObject({ code: 'dicom_failed_status' });
  });

  it('storage commitment: N-ACTION, then Orthanc reports on a new association → storage.committed', async () => {
    const instances = INSTANCES.map((sopInstanceUid) => ({ sopClassUid: MG_FOR_PRESENTATION, sopInstanceUid }));
    const { transactionUid } = await fx.svc.requestStorageCommitment(instances, 'ACC-PACS');
    const ok = await fx.recorder.waitFor('storage.committed', (e) => e.data.transactionUid === transactionUid);
    expect(ok).toMatchObject({ subject: 'ACC-PACS', data: { committed: 3, failed: 0, by: 'pacs' } });
    const missing = await fx.svc.requestStorageCommitment(
      [...instances.slice(0, 1), { sopClassUid: MG_FOR_PRESENTATION, sopInstanceUid: '1.2.3.404' }],
      'ACC-PACS',
    );
    const partial = await fx.recorder.waitFor(
      'storage.committed',
      (e) => e.data.transactionUid === missing.transactionUid,
    );
    expect(partial.data).toMatchObject({ committed: 1, failed: 1 });
    // Nothing pending any more.
    expect(JSON.parse(await readFile(join(fx.stateDir, 'commitments.json'), 'utf8')).pending).toEqual([]);
  });

  it('echo: C-ECHO of a configured peer; modality.status on change; unknown AE refused', async () => {
    expect(await fx.svc.echo({ aet: orthanc.aet })).toMatchObject({ online: true });
    expect(await fx.svc.echo({ aet: MODALITY_AET })).toMatchObject({ online: false });
    expect(await fx.svc.echo({ aet: MODALITY_AET })).toMatchObject({ online: false });
    expect(fx.recorder.of('modality.status').map((e) => e.data)).toEqual([
      { aet: orthanc.aet, online: true },
      { aet: MODALITY_AET, online: false },
    ]);
    await expect(fx.svc.echo({ aet: 'STRANGER' })).rejects.toMatchObject({ code: 'dicom_unknown_peer' });
    // And the gateway answers C-ECHO itself (dcmtk echoscu).
    const r = await runTool('echoscu', ['-aet', 'ECHOSCU', '-aec', GATEWAY_AET, '127.0.0.1', String(fx.port)]);
    expect(r.code, r.stderr).toBe(0);
  });

  it('forwards received objects to the PACS and asks it to commit them after the modality asks the gateway', async () => {
    const fw = await startService({
      aet: 'SCANRELAYFW',
      port: fwPort,
      forwardToPacs: true,
      pacs: { aet: orthanc.aet, host: '127.0.0.1', port: orthanc.dicomPort },
    });
    try {
      await fw.svc.worklistAdd(addArgs('ACC-FW'));
      const sim = runSimulator({
        gateway: { aet: 'SCANRELAYFW', host: '127.0.0.1', port: fw.port },
        aet: MODALITY_AET,
        images: 1,
        rows: 16,
        columns: 16,
        commitmentWaitMs: 300,
        once: true,
      });
      await sim.done;
      const p = sim.procedures[0]!;
      expect(p).toMatchObject({ accession: 'ACC-FW', images: 2, commitment: { committed: 2, failed: 0 } });
      const byPacs = await fw.recorder.waitFor('storage.committed', (e) => e.data.by === 'pacs');
      expect(byPacs).toMatchObject({ subject: 'ACC-FW', data: { committed: 2, failed: 0 } });
      for (const i of p.instances) {
        const found = (await orthanc.rest('/tools/lookup', { body: i.sopInstanceUid })) as { Type: string }[];
        expect(found.map((f) => f.Type)).toContain('Instance');
      }
    } finally {
      await fw.cleanup();
    }
  });
});
