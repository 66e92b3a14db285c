/**
 * Issue 11: preamble sanitising (PS3.10 §7.5). A modality's file may carry anything in its 128-byte preamble
 * (a polyglot DICOM + executable/script file). The gateway keeps and forwards objects with a zeroed preamble:
 * C-STORE carries only the dataset, and the gateway writes the Part 10 header itself (storage-sink.ts), so no
 * byte of the sender's preamble can reach the stored file.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import dimse from 'dcmjs-dimse';
import { afterEach, describe, expect, it } from 'vitest';
import { MG_FOR_PRESENTATION, mgDataset } from '../../src/simulator/index.js';
import { runTool, tempDir } from '../helpers/dicom-peers.js';
import { type Fixture, GATEWAY_AET, startService } from './fixture.js';

const UID = '1.2.826.0.1.3680043.10.999.11.1';
let fx: Fixture | undefined;
let dir: string | undefined;
afterEach(async () => {
  await fx?.cleanup();
  fx = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('issue 11: preamble sanitising', () => {
  it('an object sent from a polyglot file (script in the preamble) is stored with 128 zero bytes', async () => {
    fx = await startService();
    dir = await tempDir();
    const file = join(dir, 'polyglot.dcm');
    mgDataset({
      sopClassUid: MG_FOR_PRESENTATION,
      sopInstanceUid: UID,
      studyInstanceUid: '1.2.826.0.1.3680043.10.999.11',
      seriesInstanceUid: '1.2.826.0.1.3680043.10.999.11.2',
      accession: 'ACC-PRE',
      patientId: 'P1',
      patientName: 'TEST^PREAMBLE',
      birthDate: '19700101',
      sex: 'F',
      stationAet: 'STORESCU',
      rows: 16,
      columns: 16,
      index: 1,
      date: '20260101',
      time: '100000',
    }).toFile(file);
    const original = await readFile(file);
    const payload = Buffer.alloc(128, 0x20);
    payload.write('#!/bin/sh\necho polyglot; exit 0\n', 'ascii');
    payload.copy(original, 0);
    await writeFile(file, original);
    expect(original.subarray(0, 9).toString('ascii')).toBe('#!/bin/sh');

    const r = await runTool('storescu', ['-aet', 'STORESCU', '-aec', GATEWAY_AET, '127.0.0.1', String(fx.port), file]);
    expect(r.code, r.stderr).toBe(0);
    const stored = await readFile(join(fx.stateDir, 'objects', `${UID}.dcm`));
    expect(stored.subarray(0, 128).equals(Buffer.alloc(128))).toBe(true);
    expect(stored.subarray(128, 132).toString('ascii')).toBe('DICM');
    // The dataset itself is untouched.
    const back = dimse.Dataset.fromFile(join(fx.stateDir, 'objects', `${UID}.dcm`))!.getElements();
    expect(back.SOPInstanceUID).toBe(UID);
    expect(back.PatientName).toBeDefined();
  });
});
