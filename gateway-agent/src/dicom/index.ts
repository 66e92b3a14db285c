/**
 * The gateway's DICOM side: `createDicomService(opts)` wires the worklist store, the SCP listener
 * (Modality Worklist, MPPS, Storage, C-ECHO, storage commitment), the PACS client, the C-ECHO monitor and
 * retention. The command dispatcher calls the `DicomService` methods; every event goes through `opts.emit`.
 *
 * State directory layout (dir 0700, files 0600):
 * ```
 * <stateDir>/worklist.json     scheduled steps (patient details for the day)
 * <stateDir>/mpps.json         MPPS instance UID → accession
 * <stateDir>/received.json     received objects index
 * <stateDir>/commitments.json  storage commitment requests awaiting the PACS
 * <stateDir>/incoming/         objects being received (*.part)
 * <stateDir>/objects/          received objects (<SOPInstanceUID>.dcm)
 * ```
 */
import { join } from 'node:path';
import { AE_PATTERN } from '@scanrelay/protocol';
import dimse from 'dcmjs-dimse';
import { PreviewPool } from '../preview/pool.js';
import { CallerAllowlist, type CallerRejection } from './caller-allowlist.js';
import { endOfClinicDay } from './dicom-time.js';
import { type Naturalized, quietDimseLog } from './dimse-util.js';
import { EchoMonitor } from './echo.js';
import { DicomError } from './errors.js';
import { ForwardQueue } from './forward.js';
import { MppsTracker } from './mpps.js';
import { PacsClient } from './pacs.js';
import { ScpServer } from './scp.js';
import { ensurePrivateDir } from './state-file.js';
import { StorageTracker } from './storage.js';
import type { DicomEvent, DicomLogger, DicomOptions, DicomPeer, DicomService } from './types.js';
import { matchWorklist, textOf } from './worklist-match.js';
import { WorklistStore } from './worklist-store.js';

export { DicomError, type DicomErrorCode } from './errors.js';
export * from './types.js';

const { Status } = dimse.constants;

/** The service plus what tests, the simulator demo and future commands use beyond the v1 contract. */
export interface GatewayDicomService extends DicomService {
  /**
   * Counters for the metrics endpoint: associations refused at A-ASSOCIATE by reason (`called_ae`,
   * `unknown_calling_ae`, `wrong_source_address`), since start.
   */
  counters(): { associationsRejected: Record<CallerRejection, number> };
  /**
   * Ask the PACS to commit instances (storage commitment, N-ACTION). Resolves once the PACS accepted the
   * request; the outcome arrives as a `storage.committed` event {transactionUid, committed, failed, by: 'pacs'}.
   */
  requestStorageCommitment(
    instances: { sopClassUid: string; sopInstanceUid: string }[],
    accession?: string,
  ): Promise<{ transactionUid: string }>;
  /** Purge worklist items, MPPS records and objects past retention now (also runs on a timer). */
  runRetention(): Promise<void>;
}

const silentLogger: DicomLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** Parse `AET@host:port` (the format of SCANRELAY_GATEWAY_PACS and SCANRELAY_GATEWAY_MODALITIES entries). */
export function parsePeer(text: string, setting = 'peer'): DicomPeer {
  const m = /^(.{1,16})@([^@:\s]+|\[[0-9a-fA-F:.]+\]):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : 0;
  if (!m || !AE_PATTERN.test(m[1]!) || port < 1 || port > 65535)
    throw new DicomError('dicom_config', `${setting}: "${text}" is not AET@host:port (e.g. HOLOGIC1@10.0.0.21:104)`);
  return { aet: m[1]!, host: m[2]!.replace(/^\[|\]$/g, ''), port };
}

function validate(opts: DicomOptions): void {
  const bad = (setting: string, fix: string): never => {
    throw new DicomError('dicom_config', `${setting} ${fix}`);
  };
  if (!AE_PATTERN.test(opts.aet)) bad('aet (SCANRELAY_GATEWAY_AET)', 'must be an AE title of 1–16 characters');
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535)
    bad('port (SCANRELAY_GATEWAY_DICOM_PORT)', 'must be an integer 0–65535 (104 is the conventional DICOM port)');
  if (!opts.stateDir) bad('stateDir (SCANRELAY_GATEWAY_STATE_DIR)', 'must be set');
  for (const p of [...opts.modalities, ...(opts.pacs ? [opts.pacs] : [])])
    if (!AE_PATTERN.test(p.aet) || !p.host || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535)
      bad('modalities/pacs', `entry ${p.aet}@${p.host}:${p.port} must be AET@host:port with a port 1–65535`);
  for (const [name, v] of [
    ['retentionMs', opts.retentionMs],
    ['echoIntervalMs', opts.echoIntervalMs],
    ['scuTimeoutMs', opts.scuTimeoutMs],
    ['commitmentTimeoutMs', opts.commitmentTimeoutMs],
  ] as const)
    if (v !== undefined && (!Number.isFinite(v) || v < 0)) bad(name, 'must be a number of milliseconds ≥ 0');
  if (
    opts.clinicDayEndHour !== undefined &&
    !(Number.isInteger(opts.clinicDayEndHour) && opts.clinicDayEndHour >= 0 && opts.clinicDayEndHour <= 23)
  )
    bad('clinicDayEndHour', 'must be an hour 0–23');
}

/** Build the DICOM side. Nothing listens until `start()`. Throws `DicomError('dicom_config')` on bad options. */
export function createDicomService(opts: DicomOptions): GatewayDicomService {
  validate(opts);
  quietDimseLog();
  const now = opts.now ?? Date.now;
  const logger = opts.logger ?? silentLogger;
  const timeoutMs = opts.scuTimeoutMs ?? 30_000;
  const noDelay = opts.tcpNoDelay !== false;
  const emit = (event: DicomEvent) => opts.emit(event);
  const retention = {
    ...(opts.retentionMs === undefined ? {} : { retentionMs: opts.retentionMs }),
    ...(opts.clinicDayEndHour === undefined ? {} : { clinicDayEndHour: opts.clinicDayEndHour }),
  };
  const incomingDir = join(opts.stateDir, 'incoming');
  const objectsDir = join(opts.stateDir, 'objects');
  // Built in start() (host names are resolved); until then nobody is let in.
  let callers: CallerAllowlist | undefined;
  const rejected: Record<CallerRejection, number> = {
    called_ae: 0,
    unknown_calling_ae: 0,
    wrong_source_address: 0,
  };

  const worklist = new WorklistStore({ stateDir: opts.stateDir, now, ...retention });
  const mpps = new MppsTracker({ stateDir: opts.stateDir, now, worklist, emit, ...retention });
  const pacs = new PacsClient({
    aet: opts.aet,
    pacs: opts.pacs,
    timeoutMs,
    logger,
    emit,
    now,
    stateDir: opts.stateDir,
    commitmentTimeoutMs: opts.commitmentTimeoutMs ?? 600_000,
    noDelay,
    accessionOfStudy: (uid) => worklist.byStudyInstanceUid(uid)?.accession,
  });
  const forward =
    opts.forwardToPacs && opts.pacs
      ? new ForwardQueue({ aet: opts.aet, pacs: opts.pacs, timeoutMs, logger, noDelay })
      : undefined;
  const previews =
    opts.previews === false
      ? undefined
      : new PreviewPool({
          previewsDir: join(opts.stateDir, 'previews'),
          logger,
          ...(opts.onPreview ? { onPreview: opts.onPreview } : {}),
        });
  const storage = new StorageTracker({
    stateDir: opts.stateDir,
    objectsDir,
    incomingDir,
    now,
    worklist,
    emit,
    logger,
    ...retention,
    // The seam between the storage path and everything that happens after an object is safely stored.
    onStored: (object, path) => {
      forward?.push(path);
      previews?.submit(path, object.sopInstanceUid, object.accession);
    },
    onPurged: (object) => void previews?.remove(object.sopInstanceUid),
  });
  const echo = new EchoMonitor({
    aet: opts.aet,
    peers: () => [...opts.modalities, ...(opts.pacs ? [opts.pacs] : [])],
    timeoutMs,
    logger,
    emit,
    now,
    noDelay,
  });

  /** Work started by a request but finished after its answer; `stop()` waits for it. */
  const background = new Set<Promise<unknown>>();

  /** A modality's storage commitment to the gateway: committed = the instances stored here. */
  async function commitLocally(dataset: Naturalized) {
    const refs = Array.isArray(dataset.ReferencedSOPSequence) ? (dataset.ReferencedSOPSequence as Naturalized[]) : [];
    const committed: Naturalized[] = [];
    const failed: Naturalized[] = [];
    let accession: string | undefined;
    for (const ref of refs) {
      const item = {
        ReferencedSOPClassUID: textOf(ref.ReferencedSOPClassUID),
        ReferencedSOPInstanceUID: textOf(ref.ReferencedSOPInstanceUID),
      };
      const stored = storage.get(item.ReferencedSOPInstanceUID);
      if (stored) {
        committed.push(item);
        accession ??= stored.accession;
      } else failed.push({ ...item, FailureReason: Status.NoSuchObjectInstance });
    }
    const transactionUid = textOf(dataset.TransactionUID);
    await emit({
      kind: 'storage.committed',
      ...(accession ? { subject: accession } : {}),
      at: now(),
      data: { transactionUid, committed: committed.length, failed: failed.length, by: 'gateway' },
    });
    const report: Naturalized = { TransactionUID: transactionUid, ReferencedSOPSequence: committed };
    if (failed.length > 0) report.FailedSOPSequence = failed;
    // With forwarding on, the objects' real home is the PACS: once they have been forwarded, ask it to commit
    // them too; its answer becomes a second storage.committed {by: 'pacs'} (COMPLETED ≠ safely stored).
    if (forward && committed.length > 0) {
      const instances = committed.map((c) => ({
        sopClassUid: textOf(c.ReferencedSOPClassUID),
        sopInstanceUid: textOf(c.ReferencedSOPInstanceUID),
      }));
      const job = forward
        .drain()
        .then(() => pacs.requestCommitment(instances, accession))
        .catch((err: unknown) =>
          logger.warn(
            { code: (err as { code?: string }).code, err: (err as Error).message },
            'could not ask the PACS to commit forwarded objects; they stay on the gateway until retention',
          ),
        )
        .finally(() => background.delete(job));
      background.add(job);
    }
    return { status: Status.Success, report: { eventTypeId: failed.length > 0 ? 2 : 1, dataset: report } };
  }

  const scp = new ScpServer({
    aet: opts.aet,
    checkCaller: (aet, address) => callers?.check(aet, address) ?? { ok: false, reason: 'unknown_calling_ae' },
    onRejected: (reason) => {
      rejected[reason] += 1;
    },
    incomingDir,
    logger,
    timeoutMs,
    noDelay,
    handlers: {
      worklistFind: async (query) => matchWorklist(query, worklist.all()),
      mppsCreate: (uid, ds, calling) => mpps.create(uid, ds, calling),
      mppsSet: (uid, ds) => mpps.set(uid, ds),
      store: (file) => storage.store(file),
      commitmentReport: (eventTypeId, ds) => pacs.onReport(eventTypeId, ds),
      commitmentRequest: (ds) => commitLocally(ds),
    },
  });

  let retentionTimer: NodeJS.Timeout | undefined;
  let retentionRun: Promise<void> | undefined;
  const runRetention = async () => {
    const dropped = await worklist.purgeExpired();
    await mpps.purgeExpired();
    const objects = await storage.purgeExpired();
    await previews?.purgeOrphans((uid) => storage.get(uid) !== undefined);
    await pacs.expireCommitments();
    if (dropped.length > 0 || objects > 0)
      logger.info({ worklistItems: dropped.length, objects }, 'retention: purged expired worklist items and objects');
  };
  const scheduleRetention = () => {
    // Check often enough to honour short retention settings, at most every 10 minutes.
    const every = Math.max(1000, Math.min(opts.retentionMs ?? 600_000, 600_000));
    retentionTimer = setInterval(() => {
      if (retentionRun) return;
      retentionRun = runRetention()
        .catch((err: unknown) => logger.error({ err: (err as Error).message }, 'retention run failed; will retry'))
        .finally(() => {
          retentionRun = undefined;
        });
    }, every);
    retentionTimer.unref();
  };

  let started = false;
  return {
    async start() {
      if (started) return;
      await ensurePrivateDir(opts.stateDir);
      await ensurePrivateDir(incomingDir);
      await ensurePrivateDir(objectsDir);
      await worklist.load();
      await mpps.load();
      await storage.load();
      await pacs.load();
      await runRetention();
      callers = await CallerAllowlist.build(
        [...opts.modalities, ...(opts.pacs ? [opts.pacs] : [])],
        opts.allowedCallingAets,
      );
      await scp.listen(opts.host ?? '0.0.0.0', opts.port);
      scheduleRetention();
      echo.start(opts.echoIntervalMs ?? 0, () => opts.modalities);
      started = true;
      logger.info(
        {
          aet: opts.aet,
          port: scp.port(),
          host: opts.host ?? '0.0.0.0',
          endOfDay: new Date(endOfClinicDay(now(), opts.clinicDayEndHour)).toISOString(),
        },
        'DICOM worklist, MPPS and storage SCP listening',
      );
    },
    async stop() {
      started = false;
      if (retentionTimer) clearInterval(retentionTimer);
      await echo.stop();
      await scp.close();
      await retentionRun;
      await forward?.drain();
      await previews?.close();
      await Promise.all([...background]);
    },
    port: () => scp.port(),
    async worklistAdd(args) {
      const { existing, item } = await worklist.add(args);
      if (!existing)
        await emit({
          kind: 'worklist.added',
          subject: item.accession,
          at: now(),
          data: { stationAet: item.stationAet, scheduledAt: item.scheduledAt },
        });
      return { existing };
    },
    async worklistCancel(args) {
      const item = await worklist.cancel(args.accession);
      if (item)
        await emit({
          kind: 'worklist.cancelled',
          subject: item.accession,
          at: now(),
          data: { stationAet: item.stationAet },
        });
      return { existed: item !== undefined };
    },
    echo: (args) => echo.echo(args.aet),
    peerStatus: () => echo.status(),
    pacsFind: (args) => pacs.find(args),
    pacsRetrieve: (args, onProgress) => pacs.retrieve(args, onProgress),
    requestStorageCommitment: (instances, accession) => pacs.requestCommitment(instances, accession),
    runRetention,
    counters: () => ({ associationsRejected: { ...rejected } }),
  };
}
