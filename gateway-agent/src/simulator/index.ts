/**
 * Modality simulator: an SCU that behaves like a mammography unit (Hologic-like AE) against the gateway.
 *
 * ```
 * every pollIntervalMs:  MWL C-FIND (ScheduledStationAETitle = aet, ScheduledProcedureStepStartDate = today, MG)
 * for each new item:     MPPS N-CREATE IN PROGRESS
 *                        C-STORE images × (For Presentation [+ For Processing])   (one association)
 *                        MPPS N-SET COMPLETED (PerformedSeriesSequence lists every image)
 *                        storage commitment N-ACTION → N-EVENT-REPORT on the same association
 * ```
 *
 * Used by the demo (`scanrelay-gateway simulate-modality`), the tests and the benchmarks. The CLI maps its
 * flags one to one onto `SimulatorOptions`.
 */
import dimse from 'dcmjs-dimse';
import { dicomDate, dicomTime } from '../dicom/dicom-time.js';
import { datasetOf, type Naturalized, quietDimseLog, withAffectedSopClass, withDataset } from '../dicom/dimse-util.js';
import { DicomError, hexStatus } from '../dicom/errors.js';
import { runAssociation } from '../dicom/scu.js';
import type { DicomLogger, DicomPeer } from '../dicom/types.js';
import { uuidUid } from '../dicom/uid.js';
import { textOf } from '../dicom/worklist-match.js';
import { MG_FOR_PRESENTATION, MG_FOR_PROCESSING, mgDataset } from './mg-image.js';

export { MG_FOR_PRESENTATION, MG_FOR_PROCESSING, mgDataset, mgHeader, writeLargeMgFile } from './mg-image.js';

const { CFindRequest, CStoreRequest, NActionRequest, NCreateRequest, NSetRequest } = dimse.requests;
const { SopClass, Status } = dimse.constants;
const STORAGE_COMMITMENT_INSTANCE = '1.2.840.10008.1.20.1.1';

/** Options of `runSimulator` (CLI flags in brackets). */
export interface SimulatorOptions {
  /** The gateway's worklist/MPPS/storage SCP [--gateway AET@host:port]. */
  gateway: DicomPeer;
  /** The simulated unit's AE title, also its ScheduledStationAETitle [--aet], default `HOLOGIC1`. */
  aet?: string;
  /** For Presentation images per procedure [--images], default 4 (R/L CC and MLO). */
  images?: number;
  /** Also send a For Processing image per view [--for-processing], default true. */
  forProcessing?: boolean;
  /** Pixel rows × columns [--rows, --columns], default 256 × 256 (a real unit: about 4096 × 3328). */
  rows?: number;
  columns?: number;
  /** Interval of worklist queries, ms [--poll-ms], default 5000. */
  pollIntervalMs?: number;
  /** Pause between MPPS IN PROGRESS and the first image, ms [--exam-ms], default 0. */
  examDelayMs?: number;
  /** Pause between two images, ms [--image-ms], default 0 (all images on one association). */
  imageIntervalMs?: number;
  /** Ask the gateway for storage commitment after COMPLETED [--no-commitment turns it off], default true. */
  storageCommitment?: boolean;
  /** How long to wait for the commitment result on the N-ACTION association, ms [--commitment-wait-ms], default 2000. */
  commitmentWaitMs?: number;
  /** Query once, perform every new item, then stop [--once], default false (keep polling). */
  once?: boolean;
  /** Timeout of each DICOM operation, ms, default 30000. */
  timeoutMs?: number;
  now?: () => number;
  logger?: DicomLogger;
  /** Called after each procedure (also on failure, with `error`). */
  onProcedure?: (result: ProcedureResult) => void;
}

export interface ProcedureResult {
  accession: string;
  studyInstanceUid: string;
  mppsUid: string;
  /** Objects sent and acknowledged with success. */
  images: number;
  instances: { sopClassUid: string; sopInstanceUid: string }[];
  /** Storage commitment outcome, when asked for and reported. */
  commitment?: { committed: number; failed: number };
  error?: string;
}

export interface SimulatorHandle {
  /** Stop polling; resolves when the procedure in progress (if any) has finished. */
  stop(): Promise<void>;
  /** Resolves when the simulator stops (after `stop()`, or after one pass with `once`). */
  readonly done: Promise<void>;
  /** Procedures performed so far. */
  readonly procedures: readonly ProcedureResult[];
}

interface WorklistEntry {
  accession: string;
  studyInstanceUid: string;
  patientName: string;
  patientId: string;
  birthDate: string;
  sex: string;
  procedure: string;
  stepId: string;
  requestedProcedureId: string;
}

const silent: DicomLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** Start the simulator. */
export function runSimulator(options: SimulatorOptions): SimulatorHandle {
  quietDimseLog();
  const o = {
    aet: options.aet ?? 'HOLOGIC1',
    images: options.images ?? 4,
    forProcessing: options.forProcessing ?? true,
    rows: options.rows ?? 256,
    columns: options.columns ?? 256,
    pollIntervalMs: options.pollIntervalMs ?? 5000,
    examDelayMs: options.examDelayMs ?? 0,
    imageIntervalMs: options.imageIntervalMs ?? 0,
    storageCommitment: options.storageCommitment ?? true,
    commitmentWaitMs: options.commitmentWaitMs ?? 2000,
    timeoutMs: options.timeoutMs ?? 30_000,
    now: options.now ?? Date.now,
    logger: options.logger ?? silent,
  };
  for (const [name, v] of Object.entries({ images: o.images, rows: o.rows, columns: o.columns }))
    if (!Number.isInteger(v) || v < 1)
      throw new DicomError('dicom_config', `simulator ${name} must be a positive integer`);
  const scu = { callingAet: o.aet, peer: options.gateway, timeoutMs: o.timeoutMs, logger: o.logger };
  const performed = new Set<string>();
  const procedures: ProcedureResult[] = [];
  let stopped = false;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      if (ms <= 0 || stopped) return resolve();
      wake = resolve;
      timer = setTimeout(resolve, ms);
    });

  async function queryWorklist(): Promise<WorklistEntry[]> {
    // Built by hand: createWorklistFindRequest() adds PregnancyStatus/PatientWeight as matching keys.
    const request = withDataset(
      withAffectedSopClass(new CFindRequest(), SopClass.ModalityWorklistInformationModelFind),
      {
        PatientName: '',
        PatientID: '',
        PatientBirthDate: '',
        PatientSex: '',
        AccessionNumber: '',
        StudyInstanceUID: '',
        RequestedProcedureID: '',
        RequestedProcedureDescription: '',
        ScheduledProcedureStepSequence: [
          {
            ScheduledStationAETitle: o.aet,
            ScheduledProcedureStepStartDate: dicomDate(o.now()),
            ScheduledProcedureStepStartTime: '',
            Modality: 'MG',
            ScheduledProcedureStepID: '',
            ScheduledProcedureStepDescription: '',
          },
        ],
      },
    );
    const entries: WorklistEntry[] = [];
    const finals = await runAssociation([request], {
      ...scu,
      onResponse: (_r, rsp) => {
        if (rsp.getStatus() !== Status.Pending) return;
        const ds = datasetOf(rsp);
        const step = (
          Array.isArray(ds.ScheduledProcedureStepSequence) ? ds.ScheduledProcedureStepSequence[0] : {}
        ) as Naturalized;
        entries.push({
          accession: textOf(ds.AccessionNumber),
          studyInstanceUid: textOf(ds.StudyInstanceUID),
          patientName: textOf(ds.PatientName),
          patientId: textOf(ds.PatientID),
          birthDate: textOf(ds.PatientBirthDate),
          sex: textOf(ds.PatientSex),
          procedure: textOf(ds.RequestedProcedureDescription),
          stepId: textOf(step.ScheduledProcedureStepID),
          requestedProcedureId: textOf(ds.RequestedProcedureID),
        });
      },
    });
    const status = finals.get(request)!.getStatus();
    if (status !== Status.Success)
      throw new DicomError('dicom_failed_status', `worklist query answered ${hexStatus(status)}`, { status });
    return entries.filter((e) => e.accession !== '' && e.studyInstanceUid !== '');
  }

  async function expectSuccess(
    request: dimse.requests.Request,
    what: string,
    extra?: Partial<Parameters<typeof runAssociation>[1]>,
  ) {
    const finals = await runAssociation([request], { ...scu, ...extra });
    const status = finals.get(request)!.getStatus();
    if (status !== Status.Success)
      throw new DicomError('dicom_failed_status', `${what} answered ${hexStatus(status)}`, { status });
  }

  async function perform(item: WorklistEntry): Promise<ProcedureResult> {
    const mppsUid = uuidUid();
    const result: ProcedureResult = {
      accession: item.accession,
      studyInstanceUid: item.studyInstanceUid,
      mppsUid,
      images: 0,
      instances: [],
    };
    const start = o.now();
    const patient = {
      PatientName: item.patientName,
      PatientID: item.patientId,
      PatientBirthDate: item.birthDate,
      PatientSex: item.sex,
    };
    await expectSuccess(
      withDataset(new NCreateRequest(SopClass.ModalityPerformedProcedureStep, mppsUid), {
        ...patient,
        ScheduledStepAttributesSequence: [
          {
            StudyInstanceUID: item.studyInstanceUid,
            AccessionNumber: item.accession,
            RequestedProcedureID: item.requestedProcedureId,
            RequestedProcedureDescription: item.procedure,
            ScheduledProcedureStepID: item.stepId,
            ScheduledProcedureStepDescription: item.procedure,
          },
        ],
        PerformedProcedureStepID: item.accession,
        PerformedStationAETitle: o.aet,
        PerformedProcedureStepStartDate: dicomDate(start),
        PerformedProcedureStepStartTime: dicomTime(start),
        PerformedProcedureStepEndDate: '',
        PerformedProcedureStepEndTime: '',
        PerformedProcedureStepStatus: 'IN PROGRESS',
        PerformedProcedureStepDescription: item.procedure,
        Modality: 'MG',
        StudyID: item.accession,
        PerformedSeriesSequence: [],
      }),
      'MPPS N-CREATE',
    );
    await pause(o.examDelayMs);
    const series = [
      { sopClassUid: MG_FOR_PRESENTATION, seriesUid: uuidUid(), name: 'For Presentation', refs: [] as Naturalized[] },
      ...(o.forProcessing
        ? [{ sopClassUid: MG_FOR_PROCESSING, seriesUid: uuidUid(), name: 'For Processing', refs: [] as Naturalized[] }]
        : []),
    ];
    const stores: dimse.requests.CStoreRequest[] = [];
    const now = o.now();
    for (let i = 0; i < o.images; i++)
      for (const s of series) {
        const sopInstanceUid = uuidUid();
        const ds = mgDataset({
          sopClassUid: s.sopClassUid,
          sopInstanceUid,
          studyInstanceUid: item.studyInstanceUid,
          seriesInstanceUid: s.seriesUid,
          accession: item.accession,
          patientId: item.patientId,
          patientName: item.patientName,
          birthDate: item.birthDate,
          sex: item.sex,
          stationAet: o.aet,
          rows: o.rows,
          columns: o.columns,
          index: i,
          date: dicomDate(now),
          time: dicomTime(now),
        });
        stores.push(new CStoreRequest(ds));
        s.refs.push({ ReferencedSOPClassUID: s.sopClassUid, ReferencedSOPInstanceUID: sopInstanceUid });
        result.instances.push({ sopClassUid: s.sopClassUid, sopInstanceUid });
      }
    // One association for all images (what a unit does), or one per image when paced.
    const batches = o.imageIntervalMs > 0 ? stores.map((s) => [s]) : [stores];
    for (const batch of batches) {
      const finals = await runAssociation(batch, scu);
      for (const r of batch) if (finals.get(r)?.getStatus() === Status.Success) result.images++;
      if (o.imageIntervalMs > 0) await pause(o.imageIntervalMs);
    }
    const end = o.now();
    await expectSuccess(
      withDataset(new NSetRequest(SopClass.ModalityPerformedProcedureStep, mppsUid), {
        PerformedProcedureStepStatus: 'COMPLETED',
        PerformedProcedureStepEndDate: dicomDate(end),
        PerformedProcedureStepEndTime: dicomTime(end),
        PerformedSeriesSequence: series.map((s) => ({
          SeriesInstanceUID: s.seriesUid,
          SeriesDescription: s.name,
          ProtocolName: 'Screening',
          PerformingPhysicianName: '',
          OperatorsName: '',
          RetrieveAETitle: '',
          ReferencedImageSequence: s.refs,
          ReferencedNonImageCompositeSOPInstanceSequence: [],
        })),
      }),
      'MPPS N-SET',
    );
    if (o.storageCommitment) {
      let report: { committed: number; failed: number } | undefined;
      const action = withDataset(
        new NActionRequest(SopClass.StorageCommitmentPushModel, STORAGE_COMMITMENT_INSTANCE, 1),
        {
          TransactionUID: uuidUid(),
          ReferencedSOPSequence: result.instances.map((i) => ({
            ReferencedSOPClassUID: i.sopClassUid,
            ReferencedSOPInstanceUID: i.sopInstanceUid,
          })),
        },
      );
      await expectSuccess(action, 'storage commitment N-ACTION', {
        lingerMs: o.commitmentWaitMs,
        onEventReport: async (req) => {
          const ds = datasetOf(req);
          report = {
            committed: Array.isArray(ds.ReferencedSOPSequence) ? ds.ReferencedSOPSequence.length : 0,
            failed: Array.isArray(ds.FailedSOPSequence) ? ds.FailedSOPSequence.length : 0,
          };
          return Status.Success;
        },
      });
      if (report) result.commitment = report;
    }
    return result;
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      try {
        for (const item of await queryWorklist()) {
          if (stopped) break;
          if (performed.has(item.accession)) continue;
          performed.add(item.accession);
          let result: ProcedureResult;
          try {
            result = await perform(item);
          } catch (err) {
            result = {
              accession: item.accession,
              studyInstanceUid: item.studyInstanceUid,
              mppsUid: '',
              images: 0,
              instances: [],
              error: (err as Error).message,
            };
            o.logger.warn({ accession: item.accession, err: (err as Error).message }, 'simulated procedure failed');
          }
          procedures.push(result);
          options.onProcedure?.(result);
        }
      } catch (err) {
        o.logger.warn({ err: (err as Error).message }, 'worklist query failed; retrying at the next poll');
      }
      if (options.once) break;
      await pause(o.pollIntervalMs);
    }
  }

  const done = loop();
  return {
    done,
    procedures,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      wake?.();
      await done;
    },
  };
}
