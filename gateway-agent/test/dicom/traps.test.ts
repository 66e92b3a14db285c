/**
 * One test per dcmjs-dimse trap of shared/DICOM.md (the stale-field trap is guarded in pacs.test.ts against
 * Orthanc, whose final C-MOVE response triggers it).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { onceCallback } from '../../src/dicom/scp.js';
import { MG_FOR_PRESENTATION, mgDataset } from '../../src/simulator/index.js';
import { runTool, tempDir } from '../helpers/dicom-peers.js';
import { startFakePeer } from './fake-peer.js';
import { type Fixture, GATEWAY_AET, startService } from './fixture.js';

const fixtures: Fixture[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of fixtures.splice(0)) await f.cleanup();
  for (const c of cleanups.splice(0)) await c();
});

describe('dcmjs-dimse traps', () => {
  it('an SCP callback runs once: a second answer is dropped and reported', () => {
    const sent: number[] = [];
    let extra = 0;
    const reply = onceCallback<number>(
      (r) => sent.push(r),
      () => extra++,
    );
    reply(1);
    reply(2);
    expect(sent).toEqual([1]);
    expect(extra).toBe(1);
  });

  it('a failing async handler answers with a failure status and the SCP keeps serving', async () => {
    const fx = await startService();
    fixtures.push(fx);
    // Break the objects directory: moving the received file there fails inside the async C-STORE handler.
    await rm(join(fx.stateDir, 'objects'), { recursive: true });
    const dir = await tempDir();
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'a.dcm');
    mgDataset({
      sopClassUid: MG_FOR_PRESENTATION,
      sopInstanceUid: '1.2.3.99.1',
      studyInstanceUid: '1.2.3.99',
      seriesInstanceUid: '1.2.3.99.2',
      accession: 'X',
      patientId: 'P',
      patientName: 'A^B',
      birthDate: '19700101',
      sex: 'F',
      stationAet: 'STORESCU',
      rows: 8,
      columns: 8,
      index: 0,
      date: '20260101',
      time: '100000',
    }).toFile(file);
    const r = await runTool('storescu', [
      '-v',
      '-aet',
      'STORESCU',
      '-aec',
      GATEWAY_AET,
      '127.0.0.1',
      String(fx.port),
      file,
    ]);
    expect(r.stderr + r.stdout, r.stderr + r.stdout).toMatch(/0x0?110|Processing Failure|Failed/i);
    const echo = await runTool('echoscu', ['-aet', 'ECHOSCU', '-aec', GATEWAY_AET, '127.0.0.1', String(fx.port)]);
    expect(echo.code, echo.stderr).toBe(0);
  });

  it('a request on a rejected presentation context fails (dicom_context_rejected), it does not hang', async () => {
    // The "PACS" here is a second gateway: a real SCP that does not offer Study Root C-FIND.
    const fx2 = await startService({ aet: 'OTHERGW2', allowedCallingAets: ['SCANRELAY'] });
    fixtures.push(fx2);
    const gw = await startService({ pacs: { aet: 'OTHERGW2', host: '127.0.0.1', port: fx2.port } });
    fixtures.push(gw);
    await expect(gw.svc.pacsFind({ accession: 'A1' })).rejects.toMatchObject({ code: 'dicom_context_rejected' });
  });

  it('an association closed without a final response is a failure (C-FIND and C-MOVE)', async () => {
    const peer = await startFakePeer('close');
    cleanups.push(() => peer.stop());
    const fx = await startService({ pacs: { aet: 'FAKEPACS', host: '127.0.0.1', port: peer.port } });
    fixtures.push(fx);
    await expect(fx.svc.pacsFind({ accession: 'A1' })).rejects.toMatchObject({ code: 'dicom_no_final_response' });
    await expect(
      fx.svc.pacsRetrieve({ studyInstanceUid: '1.2.3', destinationAet: 'SCANRELAY' }, () => undefined),
    ).rejects.toMatchObject({ code: 'dicom_no_final_response' });
  });

  it('a peer that never answers times out (dicom_timeout)', async () => {
    const peer = await startFakePeer('stall');
    cleanups.push(() => peer.stop());
    const fx = await startService({ scuTimeoutMs: 500, pacs: { aet: 'FAKEPACS', host: '127.0.0.1', port: peer.port } });
    fixtures.push(fx);
    await expect(fx.svc.pacsFind({ accession: 'A1' })).rejects.toMatchObject({ code: 'dicom_timeout' });
  });

  it('a peer that rejects the association is dicom_association_rejected', async () => {
    const strict = await startService({ aet: 'STRICTPACS', allowedCallingAets: ['SOMEONEELSE'] });
    fixtures.push(strict);
    const fx = await startService({ pacs: { aet: 'STRICTPACS', host: '127.0.0.1', port: strict.port } });
    fixtures.push(fx);
    await expect(fx.svc.pacsFind({ accession: 'A1' })).rejects.toMatchObject({ code: 'dicom_association_rejected' });
  });

  it('an unreachable peer is a network failure', async () => {
    const fx = await startService({ pacs: { aet: 'NOPACS', host: '127.0.0.1', port: 1 } });
    fixtures.push(fx);
    await expect(fx.svc.pacsFind({ accession: 'A1' })).rejects.toMatchObject({ code: 'dicom_network' });
  });
});
