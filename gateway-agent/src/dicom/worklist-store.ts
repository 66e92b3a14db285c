/**
 * The day's Modality Worklist: scheduled procedure steps added by `worklist.add`, kept in memory and in
 * `worklist.json` of the state directory so a restart keeps them. Idempotent by accession number. Items
 * leave when cancelled or when their retention period ends (default: the end of the clinic day).
 */
import { join } from 'node:path';
import type { WorklistAddArgs } from '@scanrelay/protocol';
import { dicomDate, dicomTime, endOfClinicDay } from './dicom-time.js';
import { JsonStateFile } from './state-file.js';
import { WorklistConflictError } from './types.js';
import { uuidUid } from './uid.js';

/** One scheduled procedure step, as stored. */
export interface WorklistItem {
  accession: string;
  patientId: string;
  patientName: string;
  birthDate: string;
  sex: 'F' | 'M' | 'O';
  stationAet: string;
  /** ISO 8601 as given. */
  scheduledAt: string;
  procedure?: string;
  /** Given by the manage app or generated (`2.25.…`) once and kept. */
  studyInstanceUid: string;
  /** Whether the StudyInstanceUID was generated here (a retry without one is then still "the same"). */
  studyUidGenerated: boolean;
  addedAt: number;
  /** Purge time, ms epoch. */
  expiresAt: number;
}

interface WorklistDoc {
  version: 1;
  items: WorklistItem[];
}

function validateDoc(value: unknown): WorklistDoc {
  const doc = value as WorklistDoc;
  if (typeof doc !== 'object' || doc === null || doc.version !== 1 || !Array.isArray(doc.items))
    throw new Error('expected {version: 1, items: [...]}');
  for (const item of doc.items)
    if (typeof item?.accession !== 'string' || typeof item.studyInstanceUid !== 'string')
      throw new Error('an item lacks accession or studyInstanceUid');
  return doc;
}

export interface WorklistStoreOptions {
  stateDir: string;
  now: () => number;
  retentionMs?: number;
  clinicDayEndHour?: number;
}

/** The fields whose equality makes a repeated `worklist.add` "the same" request. */
const COMPARED = ['patientId', 'patientName', 'birthDate', 'sex', 'stationAet', 'procedure'] as const;

export class WorklistStore {
  private readonly items = new Map<string, WorklistItem>();
  private readonly file: JsonStateFile<WorklistDoc>;

  constructor(private readonly opts: WorklistStoreOptions) {
    this.file = new JsonStateFile(join(opts.stateDir, 'worklist.json'), validateDoc);
  }

  async load(): Promise<void> {
    const doc = await this.file.load();
    this.items.clear();
    for (const item of doc?.items ?? []) this.items.set(item.accession, item);
  }

  /**
   * Add an item. Same details as the stored one → `{existing: true}` (nothing written); different → throws
   * `WorklistConflictError`. Resolves once the item is on disk.
   */
  async add(args: WorklistAddArgs): Promise<{ existing: boolean; item: WorklistItem }> {
    const current = this.items.get(args.accession);
    if (current) {
      const differs: string[] = COMPARED.filter((k) => (current[k] ?? '') !== (args[k] ?? ''));
      if (Date.parse(current.scheduledAt) !== Date.parse(args.scheduledAt)) differs.push('scheduledAt');
      if (args.studyInstanceUid !== undefined && args.studyInstanceUid !== current.studyInstanceUid)
        differs.push('studyInstanceUid');
      if (differs.length > 0)
        throw new WorklistConflictError(
          `accession ${args.accession} is already on the worklist with different ${differs.join(', ')}; ` +
            'cancel it first or use another accession number',
        );
      return { existing: true, item: current };
    }
    const now = this.opts.now();
    const scheduledMs = Date.parse(args.scheduledAt);
    const expiresAt =
      this.opts.retentionMs !== undefined
        ? now + this.opts.retentionMs
        : endOfClinicDay(Math.max(now, scheduledMs), this.opts.clinicDayEndHour);
    const item: WorklistItem = {
      accession: args.accession,
      patientId: args.patientId,
      patientName: args.patientName,
      birthDate: args.birthDate,
      sex: args.sex,
      stationAet: args.stationAet,
      scheduledAt: args.scheduledAt,
      ...(args.procedure === undefined ? {} : { procedure: args.procedure }),
      studyInstanceUid: args.studyInstanceUid ?? uuidUid(),
      studyUidGenerated: args.studyInstanceUid === undefined,
      addedAt: now,
      expiresAt,
    };
    this.items.set(item.accession, item);
    await this.persist();
    return { existing: false, item };
  }

  /** Remove an item; `undefined` when there was none. */
  async cancel(accession: string): Promise<WorklistItem | undefined> {
    const item = this.items.get(accession);
    if (!item) return undefined;
    this.items.delete(accession);
    await this.persist();
    return item;
  }

  get(accession: string): WorklistItem | undefined {
    return this.items.get(accession);
  }

  byStudyInstanceUid(uid: string): WorklistItem | undefined {
    for (const item of this.items.values()) if (item.studyInstanceUid === uid) return item;
    return undefined;
  }

  all(): WorklistItem[] {
    return [...this.items.values()];
  }

  /** Drop items past their retention time; returns the accessions dropped. */
  async purgeExpired(): Promise<string[]> {
    const now = this.opts.now();
    const gone = [...this.items.values()].filter((i) => i.expiresAt <= now).map((i) => i.accession);
    if (gone.length === 0) return gone;
    for (const a of gone) this.items.delete(a);
    await this.persist();
    return gone;
  }

  private persist(): Promise<void> {
    return this.file.save({ version: 1, items: [...this.items.values()] });
  }
}

/** The scheduled start as DICOM DA and TM in the gateway's local time. */
export function scheduledDicom(item: WorklistItem): { date: string; time: string } {
  const ms = Date.parse(item.scheduledAt);
  return { date: dicomDate(ms), time: dicomTime(ms) };
}
