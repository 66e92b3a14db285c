/**
 * Measures, through the REAL relay (in-process, embedded mode) and the REAL gateway agent and DICOM side, all on
 * loopback:
 *
 *  1. command sent by a browser → `worklist.add` completed at the browser (the item is then in the worklist
 *     store the Modality Worklist SCP answers from, i.e. worklist-visible; checked with a C-FIND each round);
 *  2. MPPS N-CREATE (IN PROGRESS) sent by a modality → `procedure.started` received by the browser (the relay
 *     appends and acks before it publishes, so this bounds "event acked").
 *
 * Several arms run in the same process and their rounds are interleaved, so a busy machine slows them alike and
 * the ratios between arms hold even when the absolute figures drift:
 *
 *  - DICOM `tcpNoDelay`: `nagle` (neither the gateway's SCP nor the modality sets TCP_NODELAY: the code before
 *    the fix), `gateway` (only the gateway's sockets: a modality whose stack leaves Nagle on), `both` (default);
 *  - `--transport ws|webtransport|both` (default ws): the gateway's link to the relay. With `both`, a second
 *    gateway links over WebTransport (HTTP/2, self-signed certificate made with openssl, pinned by hash).
 *
 * One operation at a time with a 100 ms pause between rounds (a screening room does a few per minute), so the
 * figures are per-operation latency, not throughput under the link's 40 frames/s pacing.
 *
 * Not a test (timings belong in bench/). Run:
 *   node gateway-agent/test/helpers/run-bundled.mjs gateway-agent/test/helpers/measure-latency.ts [rounds] [--transport ws|webtransport|both]
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import dimse from 'dcmjs-dimse';
import { pino } from 'pino';
import { createFixture } from '../../../relay/test/helpers/relay-fixture.js';
import { type Agent, startAgent } from '../../src/agent.js';
import { datasetOf, withDataset } from '../../src/dicom/dimse-util.js';
import { createDicomService } from '../../src/dicom/index.js';
import { runAssociation } from '../../src/dicom/scu.js';
import { uuidUid } from '../../src/dicom/uid.js';
import { agentConfig, commandToken, type Enrolled, enrol, subscribe, worklistArgs } from '../e2e/stack.js';

const args = process.argv.slice(2);
const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? '30');
const ti = args.indexOf('--transport');
const transport = ti >= 0 ? args[ti + 1] : 'ws';
if (transport !== 'ws' && transport !== 'webtransport' && transport !== 'both')
  throw new Error('--transport must be ws, webtransport or both');
const { CFindRequest, NCreateRequest } = dimse.requests;
const { SopClass, Status } = dimse.constants;

const certDir = mkdtempSync(join(tmpdir(), 'gw-lat-'));
const wantWt = transport !== 'ws';
let pin = '';
if (wantWt) {
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
      ...['-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem'), '-days', '2'],
      ...['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    ],
    { stdio: 'ignore' },
  );
  pin = createHash('sha256')
    .update(new X509Certificate(readFileSync(join(certDir, 'cert.pem'))).raw)
    .digest('hex');
}

const fx = await createFixture();
const relay = await fx.start(
  wantWt
    ? { webTransportPort: 0, webTransportCert: join(certDir, 'cert.pem'), webTransportKey: join(certDir, 'key.pem') }
    : {},
);
const { client: browser } = await fx.browser(relay, { sites: ['site-a'] });
await subscribe(browser);

interface Arm {
  name: string;
  /** The gateway's DICOM sockets set TCP_NODELAY. */
  gatewayNoDelay: boolean;
  /** The simulated modality's socket sets TCP_NODELAY. */
  modalityNoDelay: boolean;
  link: 'websocket' | 'webtransport';
}
const arms: Arm[] = [];
if (transport !== 'webtransport') {
  arms.push({ name: 'ws, nagle (before)', gatewayNoDelay: false, modalityNoDelay: false, link: 'websocket' });
  arms.push({ name: 'ws, nodelay gateway only', gatewayNoDelay: true, modalityNoDelay: false, link: 'websocket' });
  arms.push({ name: 'ws, nodelay both', gatewayNoDelay: true, modalityNoDelay: true, link: 'websocket' });
}
if (wantWt)
  arms.push({ name: 'webtransport, nodelay both', gatewayNoDelay: true, modalityNoDelay: true, link: 'webtransport' });

const running: { arm: Arm; gw: Enrolled; agent: Agent; toWorklist: number[]; toEvent: number[]; rsp: number[] }[] = [];
for (const arm of arms) {
  const gw = await enrol(fx, relay);
  const agent = await startAgent({
    config: agentConfig(
      fx,
      relay,
      gw.stateDir,
      arm.link === 'webtransport'
        ? {
            SCANRELAY_GATEWAY_TRANSPORT: 'webtransport',
            SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: `https://127.0.0.1:${relay.webTransportPort}`,
            SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256: pin,
          }
        : {},
    ),
    logger: pino({ level: 'silent' }),
    createDicom: (o) => createDicomService({ ...o, tcpNoDelay: arm.gatewayNoDelay }),
  });
  await browser.next('presence', (m) => m.gateway === gw.gateway && m.online === true, 10_000).catch(() => undefined);
  running.push({ arm, gw, agent, toWorklist: [], toEvent: [], rsp: [] });
}

for (let i = 0; i < rounds; i++) {
  for (const [k, r] of running.entries()) {
    const peer = { aet: 'SCANRELAY', host: '127.0.0.1', port: r.agent.dicomPort() };
    const noDelay = r.arm.modalityNoDelay;
    const accession = `LAT${k}${String(i).padStart(4, '0')}`;
    const token = await commandToken(fx, r.gw.gateway, 'worklist.add', worklistArgs(accession));
    const t0 = performance.now();
    browser.send({ type: 'command', ref: `m-${k}-${i}`, token });
    await browser.next('command.status', (m) => m.ref === `m-${k}-${i}` && m.state === 'completed', 10_000);
    r.toWorklist.push(performance.now() - t0);

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
      noDelay,
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
        noDelay,
        onResponse: () => {
          r.rsp.push(performance.now() - t2);
        },
      },
    );
    r.toEvent.push((await eventAt) - t2);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const quantile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};
const stats = (xs: number[]) =>
  `p50 ${quantile(xs, 0.5).toFixed(1)} ms, p95 ${quantile(xs, 0.95).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms (n=${xs.length})`;
let out = `node ${process.version}, ${rounds} rounds per arm, interleaved\n`;
for (const r of running)
  out +=
    `[${r.arm.name}]\n` +
    `  command sent → worklist.add completed (worklist-visible): ${stats(r.toWorklist)}\n` +
    `  MPPS N-CREATE sent → procedure.started at the browser:    ${stats(r.toEvent)}\n` +
    `    (N-CREATE response received by the modality:           ${stats(r.rsp)})\n`;
const base = running[0]!;
for (const r of running.slice(1))
  out +=
    `ratio of p50s, [${r.arm.name}] / [${base.arm.name}]: command ${(quantile(r.toWorklist, 0.5) / quantile(base.toWorklist, 0.5)).toFixed(2)}, ` +
    `N-CREATE → event ${(quantile(r.toEvent, 0.5) / quantile(base.toEvent, 0.5)).toFixed(2)}\n`;
const wsBoth = running.find((r) => r.arm.link === 'websocket' && r.arm.modalityNoDelay);
const wt = running.find((r) => r.arm.link === 'webtransport');
if (wsBoth && wt)
  out +=
    `ratio of p50s, WebTransport / WebSocket (both TCP_NODELAY): command ${(quantile(wt.toWorklist, 0.5) / quantile(wsBoth.toWorklist, 0.5)).toFixed(2)}, ` +
    `N-CREATE → event ${(quantile(wt.toEvent, 0.5) / quantile(wsBoth.toEvent, 0.5)).toFixed(2)}\n`;
process.stdout.write(out);
for (const r of running) {
  await r.agent.stop();
  await r.gw.cleanup();
}
browser.close();
await fx.close();
rmSync(certDir, { recursive: true, force: true });
