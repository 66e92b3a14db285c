/**
 * What happens to a received object once it is on disk: it is moved into `objects/`, linked to its worklist
 * item (StudyInstanceUID, else AccessionNumber), counted once per SOP instance, announced as
 * `images.received {count}` (the accession's running total), and optionally forwarded to the PACS. The index
 * (`received.json`) survives restarts; objects and index entries are purged after the retention period.
 */
import { readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { UID_PATTERN } from '@scanrelay/protocol';
import dimse from 'dcmjs-dimse';
import { endOfClinicDay } from './dicom-time.js';
import type { ReceivedFile } from './scp.js';
import { JsonStateFile } from './state-file.js';
import type { DicomEvent, DicomLogger } from './types.js';
import { uuidUid } from './uid.js';
import type { WorklistStore } from './worklist-store.js';

const { Status } = dimse.constants;

export interface StoredObject {
  sopInstanceUid: string;
  sopClassUid: string;
  /** File name inside `objects/`. */
  file: string;
  accession?: string;
  studyInstanceUid?: string;
  bytes: number;
  receivedAt: number;
  expiresAt: number;
}

interface ReceivedDoc {
  version: 1;
  objects: StoredObject[];
}

function validateDoc(value: unknown): ReceivedDoc {
  const doc = value as ReceivedDoc;
  if (typeof doc !== 'object' || doc === null || doc.version !== 1 || !Array.isArray(doc.objects))
    throw new Error('expected {version: 1, objects: [...]}');
  return doc;
}

export interface StorageOptions {
  stateDir: string;
  objectsDir: string;
  incomingDir: string;
  now: () => number;
  worklist: WorklistStore;
  emit: (event: DicomEvent) => Promise<void>;
  logger: DicomLogger;
  retentionMs?: number;
  clinicDayEndHour?: number;
  /** Called with each newly stored object (forwarding to the PACS). */
  onStored?: (object: StoredObject, path: string) => void;
  /** Called with each object the retention purge removed (its preview goes with it). */
  onPurged?: (object: StoredObject) => void;
}

export class StorageTracker {
  private readonly objects = new Map<string, StoredObject>();
  private readonly file: JsonStateFile<ReceivedDoc>;

  constructor(private readonly opts: StorageOptions) {
    this.file = new JsonStateFile(join(opts.stateDir, 'received.json'), validateDoc);
  }

  async load(): Promise<void> {
    const doc = await this.file.load();
    this.objects.clear();
    for (const o of doc?.objects ?? []) this.objects.set(o.sopInstanceUid, o);
    // Partial objects of associations cut by a crash.
    for (const name of await readdir(this.opts.incomingDir).catch(() => [] as string[]))
      if (name.endsWith('.part')) await unlink(join(this.opts.incomingDir, name)).catch(() => undefined);
  }

  pathOf(object: StoredObject): string {
    return join(this.opts.objectsDir, object.file);
  }

  get(sopInstanceUid: string): StoredObject | undefined {
    return this.objects.get(sopInstanceUid);
  }

  /** Number of distinct instances stored for an accession. */
  countFor(accession: string): number {
    let n = 0;
    for (const o of this.objects.values()) if (o.accession === accession) n++;
    return n;
  }

  /** The SCP's C-STORE handler. Returns the DICOM status. */
  async store(received: ReceivedFile): Promise<number> {
    const { header } = received;
    const { worklist } = this.opts;
    const studyUid = header.StudyInstanceUID;
    let accession = studyUid ? worklist.byStudyInstanceUid(studyUid)?.accession : undefined;
    if (!accession && header.AccessionNumber && worklist.get(header.AccessionNumber))
      accession = header.AccessionNumber;
    // The file name is derived from the SOP instance UID only when it is a well-formed UID (no path tricks).
    const sopUid = UID_PATTERN.test(received.sopInstanceUid) ? received.sopInstanceUid : uuidUid();
    const fileName = `${sopUid}.dcm`;
    await rename(received.path, join(this.opts.objectsDir, fileName));
    const now = this.opts.now();
    const isNew = !this.objects.has(sopUid);
    const object: StoredObject = {
      sopInstanceUid: sopUid,
      sopClassUid: received.sopClassUid,
      file: fileName,
      ...(accession ? { accession } : {}),
      ...(studyUid ? { studyInstanceUid: studyUid } : {}),
      bytes: received.bytes,
      receivedAt: now,
      expiresAt:
        this.opts.retentionMs !== undefined
          ? now + this.opts.retentionMs
          : endOfClinicDay(now, this.opts.clinicDayEndHour),
    };
    this.objects.set(sopUid, object);
    await this.file.save({ version: 1, objects: [...this.objects.values()] });
    if (accession && isNew)
      await this.opts.emit({
        kind: 'images.received',
        subject: accession,
        at: now,
        data: { count: this.countFor(accession) },
      });
    else if (!accession)
      this.opts.logger.info(
        { sopInstanceUid: sopUid, studyInstanceUid: studyUid },
        'received an object for a study that is not on the worklist; kept until retention, no event sent',
      );
    this.opts.onStored?.(object, this.pathOf(object));
    return Status.Success;
  }

  /** Delete objects past retention (and their index entries); returns how many. */
  async purgeExpired(): Promise<number> {
    const now = this.opts.now();
    const gone = [...this.objects.values()].filter((o) => o.expiresAt <= now);
    for (const o of gone) {
      await unlink(this.pathOf(o)).catch(() => undefined);
      this.objects.delete(o.sopInstanceUid);
      this.opts.onPurged?.(o);
    }
    // Files with no index entry (a crash between rename and index write) are removed once old enough.
    const known = new Set([...this.objects.values()].map((o) => o.file));
    const maxAge = this.opts.retentionMs ?? 24 * 3600_000;
    for (const name of await readdir(this.opts.objectsDir).catch(() => [] as string[])) {
      if (known.has(name)) continue;
      const p = join(this.opts.objectsDir, name);
      const st = await stat(p).catch(() => undefined);
      if (st && now - st.mtimeMs >= maxAge) await unlink(p).catch(() => undefined);
    }
    if (gone.length > 0) await this.file.save({ version: 1, objects: [...this.objects.values()] });
    return gone.length;
  }
}
