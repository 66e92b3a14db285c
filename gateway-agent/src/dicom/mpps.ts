/**
 * MPPS SCP logic: N-CREATE `IN PROGRESS` → `procedure.started`; N-SET `COMPLETED` → `procedure.completed`
 * {images}; `DISCONTINUED` → `procedure.discontinued` {reason}. The N-CREATE's ScheduledStepAttributesSequence
 * names the accession; N-SET usually carries only status and performed series, so the MPPS instance UID →
 * accession mapping is kept in `mpps.json` and survives restarts. One accession may have several MPPS
 * (extra or repeat views); each is its own record.
 */
import { join } from 'node:path';
import dimse from 'dcmjs-dimse';
import { endOfClinicDay } from './dicom-time.js';
import type { Naturalized } from './dimse-util.js';
import { JsonStateFile } from './state-file.js';
import type { DicomEvent } from './types.js';
import { textOf } from './worklist-match.js';
import type { WorklistStore } from './worklist-store.js';

const { Status } = dimse.constants;

export type MppsStatus = 'IN PROGRESS' | 'COMPLETED' | 'DISCONTINUED';

export interface MppsRecord {
  uid: string;
  accession?: string;
  studyInstanceUid?: string;
  status: MppsStatus;
  stationAet: string;
  createdAt: number;
  expiresAt: number;
}

interface MppsDoc {
  version: 1;
  records: MppsRecord[];
}

function validateDoc(value: unknown): MppsDoc {
  const doc = value as MppsDoc;
  if (typeof doc !== 'object' || doc === null || doc.version !== 1 || !Array.isArray(doc.records))
    throw new Error('expected {version: 1, records: [...]}');
  return doc;
}

export interface MppsOptions {
  stateDir: string;
  now: () => number;
  worklist: WorklistStore;
  emit: (event: DicomEvent) => Promise<void>;
  retentionMs?: number;
  clinicDayEndHour?: number;
}

/** Status 0x0110 with this meaning per PS3.4 F.7.2.2: the step is final and may no longer be updated. */
const PROCESSING_FAILURE = Status.ProcessingFailure;

function first(seq: unknown): Naturalized | undefined {
  return Array.isArray(seq) && typeof seq[0] === 'object' && seq[0] !== null ? (seq[0] as Naturalized) : undefined;
}

/** Number of images an N-SET lists: every ReferencedImageSequence item of every performed series. */
export function countPerformedImages(dataset: Naturalized): number {
  const series = Array.isArray(dataset.PerformedSeriesSequence)
    ? (dataset.PerformedSeriesSequence as Naturalized[])
    : [];
  let n = 0;
  for (const s of series) if (Array.isArray(s.ReferencedImageSequence)) n += s.ReferencedImageSequence.length;
  return n;
}

export class MppsTracker {
  private readonly records = new Map<string, MppsRecord>();
  private readonly file: JsonStateFile<MppsDoc>;

  constructor(private readonly opts: MppsOptions) {
    this.file = new JsonStateFile(join(opts.stateDir, 'mpps.json'), validateDoc);
  }

  async load(): Promise<void> {
    const doc = await this.file.load();
    this.records.clear();
    for (const r of doc?.records ?? []) this.records.set(r.uid, r);
  }

  get(uid: string): MppsRecord | undefined {
    return this.records.get(uid);
  }

  /** N-CREATE. Returns the DICOM status to answer with. */
  async create(uid: string, dataset: Naturalized, callingAet: string): Promise<number> {
    if (this.records.has(uid)) return Status.DuplicateSOPInstance;
    const status = textOf(dataset.PerformedProcedureStepStatus);
    if (status !== 'IN PROGRESS') return Status.InvalidAttributeValue;
    const step = first(dataset.ScheduledStepAttributesSequence);
    const studyUid = textOf(step?.StudyInstanceUID) || undefined;
    let accession = textOf(step?.AccessionNumber) || undefined;
    // Some modalities leave AccessionNumber empty but keep the worklist's StudyInstanceUID.
    if (!accession && studyUid) accession = this.opts.worklist.byStudyInstanceUid(studyUid)?.accession;
    const now = this.opts.now();
    const record: MppsRecord = {
      uid,
      ...(accession ? { accession } : {}),
      ...(studyUid ? { studyInstanceUid: studyUid } : {}),
      status: 'IN PROGRESS',
      stationAet: callingAet,
      createdAt: now,
      expiresAt:
        this.opts.retentionMs !== undefined
          ? now + this.opts.retentionMs
          : endOfClinicDay(now, this.opts.clinicDayEndHour),
    };
    this.records.set(uid, record);
    try {
      await this.persist();
      await this.opts.emit({
        kind: 'procedure.started',
        ...(accession ? { subject: accession } : {}),
        at: now,
        data: { mpps: uid, stationAet: callingAet },
      });
    } catch (err) {
      // Not recorded as started: the modality gets a failure and may retry the same N-CREATE.
      this.records.delete(uid);
      await this.persist().catch(() => undefined);
      throw err;
    }
    return Status.Success;
  }

  /** N-SET. Returns the DICOM status to answer with. */
  async set(uid: string, dataset: Naturalized): Promise<number> {
    const record = this.records.get(uid);
    if (!record) return Status.NoSuchObjectInstance;
    if (record.status !== 'IN PROGRESS') return PROCESSING_FAILURE;
    const status = textOf(dataset.PerformedProcedureStepStatus);
    // An N-SET without a final status only updates attributes (e.g. the series so far): nothing to report.
    if (status !== 'COMPLETED' && status !== 'DISCONTINUED') return Status.Success;
    const images = countPerformedImages(dataset);
    const at = this.opts.now();
    const subject = record.accession ? { subject: record.accession } : {};
    const event: DicomEvent =
      status === 'COMPLETED'
        ? { kind: 'procedure.completed', ...subject, at, data: { mpps: uid, images } }
        : {
            kind: 'procedure.discontinued',
            ...subject,
            at,
            data: { mpps: uid, images, reason: discontinuationReason(dataset) },
          };
    record.status = status;
    try {
      await this.persist();
      await this.opts.emit(event);
    } catch (err) {
      record.status = 'IN PROGRESS';
      await this.persist().catch(() => undefined);
      throw err;
    }
    return Status.Success;
  }

  async purgeExpired(): Promise<number> {
    const now = this.opts.now();
    const gone = [...this.records.values()].filter((r) => r.expiresAt <= now);
    if (gone.length === 0) return 0;
    for (const r of gone) this.records.delete(r.uid);
    await this.persist();
    return gone.length;
  }

  private persist(): Promise<void> {
    return this.file.save({ version: 1, records: [...this.records.values()] });
  }
}

/** The coded reason of (0040,0281): its meaning, else its value, else ''. */
export function discontinuationReason(dataset: Naturalized): string {
  const code = first(dataset.PerformedProcedureStepDiscontinuationReasonCodeSequence);
  return textOf(code?.CodeMeaning) || textOf(code?.CodeValue) || '';
}
