/**
 * Runs the DICOM service in its own process (so the storage test can measure its memory alone). Bundled by
 * the test with esbuild. argv: stateDir. Prints `{"port": n}` once listening, then one JSON line per event.
 */
import { createDicomService } from '../../src/dicom/index.js';

const stateDir = process.argv[2]!;
const svc = createDicomService({
  aet: 'SCANRELAY',
  port: 0,
  host: '127.0.0.1',
  stateDir,
  modalities: [],
  allowedCallingAets: ['STORESCU'],
  emit: async (event) => {
    process.stdout.write(`${JSON.stringify({ event })}\n`);
  },
});
await svc.start();
await svc.worklistAdd({
  accession: 'BIG1',
  patientId: 'P1',
  patientName: 'TEST^BIG',
  birthDate: '19700101',
  sex: 'F',
  stationAet: 'STORESCU',
  scheduledAt: new Date().toISOString(),
  studyInstanceUid: '1.2.826.0.1.3680043.10.999.1',
});
process.stdout.write(`${JSON.stringify({ port: svc.port() })}\n`);
process.on('SIGTERM', () => {
  void svc.stop().then(() => process.exit(0));
});
