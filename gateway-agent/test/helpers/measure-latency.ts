/**
 * Measures, through the REAL relay (in-process, embedded mode) and the REAL gateway agent and DICOM side, all on
 * loopback:
 *
 *  1. command sent by a browser → `worklist.add` completed at the browser (the item is then in the worklist
 *     store the Modality Worklist SCP answers from, i.e. worklist-visible; checked with a C-FIND each round);
 *  2. MPPS N-CREATE (IN PROGRESS) sent by a modality → `procedure.started` received by the browser (the relay
 *     appends and acks before it publishes, so this bounds "event acked").
 *
 * One operation at a time with a 100 ms pause between rounds (a screening room does a few per minute), so the
 * figures are per-operation latency, not throughput under the link's 40 frames/s pacing.
 *
 * Not a test (timings belong in bench/). Run:
 *   node gateway-agent/test/helpers/run-bundled.mjs gateway-agent/test/helpers/measure-latency.ts [rounds]
 */
import { performance } from 'node:perf_hooks';
import dimse from 'dcmjs-dimse';
import { pino } from 'pino';
import { createFixture } from '../../../relay/test/helpers/relay-fixture.js';
import { startAgent } from '../../src/agent.js';
import { datasetOf, withDataset } from '../../src/dicom/dimse-util.js';
import { runAssociation } from '../../src/dicom/scu.js';
import { uuidUid } from '../../src/dicom/uid.js';
import { agentConfig, commandToken, enrol, subscribe, worklistArgs } from '../e2e/stack.js';

const rounds = Number(process.argv[2] ?? '30');
const { CFindRequest, NCreateRequest } = dimse.requests;
const { SopClass, Status } = dimse.constants;

const fx = await createFixture();
const relay = await fx.start();
const gw = await enrol(fx, relay);
const agent = await startAgent({ config: agentConfig(fx, relay, gw.stateDir), logger: pino({ level: 'silent' }) });
const { client: browser } = await fx.browser(relay, { sites: ['site-a'] });
await subscribe(browser);
await browser.next('presence', (m) => m.gateway === gw.gateway && m.online === true, 10_000).catch(() => undefined);
const peer = { aet: 'SCANRELAY', host: '127.0.0.1', port: agent.dicomPort() };

const toWorklist: number[] = [];
const toEvent: number[] = [];
const assoc: number[] = [];
const rsp: number[] = [];
for (let i = 0; i < rounds; i++) {
  const accession = `LAT${String(i).padStart(4, '0')}`;
  const token = await commandToken(fx, gw.gateway, 'worklist.add', worklistArgs(accession));
  const t0 = performance.now();
  browser.send({ type: 'command', ref: `m-${i}`, token });
  await browser.next('command.status', (m) => m.ref === `m-${i}` && m.state === 'completed', 10_000);
  toWorklist.push(performance.now() - t0);

  // Visible to a modality's worklist query.
  let found = 0;
  const find = withDataset(new CFindRequest(), { AccessionNumber: accession, PatientID: '' });
  (find as unknown as { setAffectedSopClassUid(u: string): void }).setAffectedSopClassUid(
    SopClass.ModalityWorklistInformationModelFind,
  );
  await runAssociation([find], {
    callingAet: 'HOLOGIC1',
    peer,
    timeoutMs: 5000,
    onResponse: (_r, rsp) => {
      if (rsp.getStatus() === Status.Pending && datasetOf(rsp).AccessionNumber === accession) found++;
    },
  });
  if (found !== 1) throw new Error(`worklist item ${accession} not visible to C-FIND`);

  const eventAt = browser
    .next('event', (m) => m.kind === 'procedure.started' && m.subject === accession, 10_000)
    .then(() => performance.now());
  const t2 = performance.now();
  await runAssociation(
    [
      withDataset(new NCreateRequest(SopClass.ModalityPerformedProcedureStep, uuidUid()), {
        PatientID: '9434765919',
        ScheduledStepAttributesSequence: [
          { AccessionNumber: accession, StudyInstanceUID: '', ScheduledProcedureStepID: accession },
        ],
        PerformedProcedureStepID: accession,
        PerformedProcedureStepStatus: 'IN PROGRESS',
        PerformedStationAETitle: 'HOLOGIC1',
        Modality: 'MG',
      }),
    ],
    {
      callingAet: 'HOLOGIC1',
      peer,
      timeoutMs: 5000,
      onResponse: () => {
        rsp.push(performance.now() - t2);
      },
    },
  );
  assoc.push(performance.now() - t2);
  toEvent.push((await eventAt) - t2);
  await new Promise((r) => setTimeout(r, 100));
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(1);
  return `p50 ${q(0.5)} ms, p95 ${q(0.95)} ms, max ${s.at(-1)!.toFixed(1)} ms (n=${s.length})`;
};
process.stdout.write(
  `node ${process.version}\n` +
    `command sent → worklist.add completed (worklist-visible): ${stats(toWorklist)}\n` +
    `MPPS N-CREATE sent → procedure.started at the browser:    ${stats(toEvent)}\n` +
    `  (N-CREATE response received by the modality:            ${stats(rsp)})\n` +
    `  (the modality's whole association: open, N-CREATE, release): ${stats(assoc)}\n`,
);
await agent.stop();
await fx.close();
await gw.cleanup();
