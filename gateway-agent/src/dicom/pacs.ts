/**
 * The gateway as an SCU of the PACS: study-level C-FIND, C-MOVE with sub-operation progress, and storage
 * commitment (N-ACTION; the result comes back as N-EVENT-REPORT, usually on a new association to our SCP).
 *
 * dcmjs-dimse traps handled here:
 * - `CFindRequest.createWorklistFindRequest()` (and the study helper's extra keys) send matching keys a strict
 *   PACS treats as filters; the study query is built by hand with return keys only.
 * - Stale command fields: a response without a dataset is parsed on top of the previous command's bytes, so
 *   a final C-MOVE response without "remaining" reports the last pending one's. On a final status only the
 *   completed/failed/warning counts are trusted.
 */
import { join } from 'node:path';
import type { JsonObject, PacsFindArgs, PacsRetrieveArgs } from '@scanrelay/protocol';
import dimse from 'dcmjs-dimse';
import { datasetOf, type Naturalized, withDataset } from './dimse-util.js';
import { DicomError, hexStatus } from './errors.js';
import { isPending, isSuccessOrWarning, runAssociation } from './scu.js';
import { JsonStateFile } from './state-file.js';
import type { DicomEvent, DicomLogger, DicomPeer } from './types.js';
import { uuidUid } from './uid.js';
import { textOf } from './worklist-match.js';

const { CFindRequest, CMoveRequest, NActionRequest } = dimse.requests;
const { SopClass, Status } = dimse.constants;

/** Well-known SOP instance of the Storage Commitment Push Model (PS3.4 J.3.5). */
export const STORAGE_COMMITMENT_INSTANCE = '1.2.840.10008.1.20.1.1';

export interface PacsClientOptions {
  aet: string;
  pacs: DicomPeer | undefined;
  timeoutMs: number;
  logger: DicomLogger;
  emit: (event: DicomEvent) => Promise<void>;
  now: () => number;
  stateDir: string;
  commitmentTimeoutMs: number;
  /** Accession of a study, for event subjects (from the worklist). */
  accessionOfStudy: (studyInstanceUid: string) => string | undefined;
  /** TCP_NODELAY on its associations (default true). */
  noDelay?: boolean;
}

interface PendingCommitment {
  transactionUid: string;
  accession?: string;
  count: number;
  expiresAt: number;
}

interface CommitmentDoc {
  version: 1;
  pending: PendingCommitment[];
}

/** Study attributes returned by `pacsFind` — no patient name or birth date: results reach every watcher. */
const STUDY_RETURN_KEYS: Record<string, string> = {
  StudyInstanceUID: 'studyInstanceUid',
  AccessionNumber: 'accession',
  StudyDate: 'studyDate',
  StudyTime: 'studyTime',
  StudyDescription: 'studyDescription',
  ModalitiesInStudy: 'modalities',
  NumberOfStudyRelatedSeries: 'series',
  NumberOfStudyRelatedInstances: 'instances',
};

export class PacsClient {
  private readonly pending = new Map<string, PendingCommitment>();
  private readonly file: JsonStateFile<CommitmentDoc>;

  constructor(private readonly opts: PacsClientOptions) {
    this.file = new JsonStateFile(join(opts.stateDir, 'commitments.json'), (v) => {
      const doc = v as CommitmentDoc;
      if (doc?.version !== 1 || !Array.isArray(doc.pending)) throw new Error('expected {version: 1, pending: [...]}');
      return doc;
    });
  }

  async load(): Promise<void> {
    const doc = await this.file.load();
    for (const p of doc?.pending ?? []) this.pending.set(p.transactionUid, p);
  }

  private peer(): DicomPeer {
    if (!this.opts.pacs)
      throw new DicomError('dicom_no_pacs', 'no PACS is configured; set SCANRELAY_GATEWAY_PACS to AET@host:port');
    return this.opts.pacs;
  }

  private scu(peer: DicomPeer) {
    return {
      callingAet: this.opts.aet,
      peer,
      timeoutMs: this.opts.timeoutMs,
      logger: this.opts.logger,
      noDelay: this.opts.noDelay !== false,
    };
  }

  /** Study-level C-FIND (Study Root). */
  async find(args: PacsFindArgs): Promise<{ studies: JsonObject[] }> {
    const peer = this.peer();
    const query: Naturalized = { QueryRetrieveLevel: 'STUDY', SpecificCharacterSet: 'ISO_IR 192' };
    for (const key of Object.keys(STUDY_RETURN_KEYS)) query[key] = '';
    query.PatientID = args.patientId ?? '';
    if (args.accession !== undefined) query.AccessionNumber = args.accession;
    if (args.studyInstanceUid !== undefined) query.StudyInstanceUID = args.studyInstanceUid;
    const request = withDataset(new CFindRequest(), query);
    const studies: JsonObject[] = [];
    const finals = await runAssociation([request], {
      ...this.scu(peer),
      onResponse: (_req, rsp) => {
        if (!isPending(rsp.getStatus())) return;
        const el = datasetOf(rsp);
        if (Object.keys(el).length === 0) return;
        const study: JsonObject = {};
        for (const [key, name] of Object.entries(STUDY_RETURN_KEYS)) study[name] = textOf(el[key]);
        studies.push(study);
      },
    });
    const status = finals.get(request)!.getStatus();
    if (status !== Status.Success)
      throw new DicomError(
        'dicom_failed_status',
        `${peer.aet} answered the study query with status ${hexStatus(status)}`,
        {
          status,
        },
      );
    return { studies };
  }

  /** C-MOVE of a study to `destinationAet`, reporting sub-operation progress. */
  async retrieve(
    args: PacsRetrieveArgs,
    onProgress: (p: { done: number; total: number; failed: number }) => void,
  ): Promise<{ completed: number; failed: number; warning: number }> {
    const peer = this.peer();
    const request = CMoveRequest.createStudyMoveRequest(args.destinationAet, args.studyInstanceUid);
    const accession = this.opts.accessionOfStudy(args.studyInstanceUid);
    const subject = accession ? { subject: accession } : {};
    let lastEventAt = 0;
    const progressEvent = (done: number, total: number, failed: number, force: boolean) => {
      const at = this.opts.now();
      // At most one event a second (plus the last): a 1,000-image study must not flood the outbox.
      if (!force && at - lastEventAt < 1000) return;
      lastEventAt = at;
      void this.opts
        .emit({
          kind: 'retrieve.progress',
          ...subject,
          at,
          data: { studyInstanceUid: args.studyInstanceUid, done, total, failed },
        })
        .catch((err: unknown) =>
          this.opts.logger.error({ err: (err as Error).message }, 'cannot record retrieve.progress'),
        );
    };
    const finals = await runAssociation([request], {
      ...this.scu(peer),
      onResponse: (_req, rsp) => {
        const move = rsp as dimse.responses.CMoveResponse;
        if (!isPending(move.getStatus())) return;
        const completed = move.getCompleted() ?? 0;
        const failed = move.getFailures() ?? 0;
        const warning = move.getWarnings() ?? 0;
        const done = completed + failed + warning;
        const total = done + (move.getRemaining() ?? 0);
        onProgress({ done, total, failed });
        progressEvent(done, total, failed, false);
      },
    });
    const final = finals.get(request) as dimse.responses.CMoveResponse;
    const status = final.getStatus();
    // Final response: counts only (see the stale-field note above); "remaining" is never read here.
    const completed = final.getCompleted() ?? 0;
    const failed = final.getFailures() ?? 0;
    const warning = final.getWarnings() ?? 0;
    const done = completed + failed + warning;
    onProgress({ done, total: done, failed });
    progressEvent(done, done, failed, true);
    if (!isSuccessOrWarning(status) && completed === 0)
      throw new DicomError(
        'dicom_failed_status',
        status === Status.MoveDestinationUnknown
          ? `${peer.aet} does not know the destination "${args.destinationAet}"; register it in the PACS's modalities`
          : `${peer.aet} answered the retrieve with status ${hexStatus(status)} (${failed} failed)`,
        { status },
      );
    return { completed, failed, warning };
  }

  /** Storage commitment request (N-ACTION type 1). The outcome arrives via `onReport`. */
  async requestCommitment(
    instances: { sopClassUid: string; sopInstanceUid: string }[],
    accession?: string,
  ): Promise<{ transactionUid: string }> {
    const peer = this.peer();
    const transactionUid = uuidUid();
    const entry: PendingCommitment = {
      transactionUid,
      ...(accession ? { accession } : {}),
      count: instances.length,
      expiresAt: this.opts.now() + this.opts.commitmentTimeoutMs,
    };
    this.pending.set(transactionUid, entry);
    await this.persist();
    const request = withDataset(
      new NActionRequest(SopClass.StorageCommitmentPushModel, STORAGE_COMMITMENT_INSTANCE, 1),
      {
        TransactionUID: transactionUid,
        ReferencedSOPSequence: instances.map((i) => ({
          ReferencedSOPClassUID: i.sopClassUid,
          ReferencedSOPInstanceUID: i.sopInstanceUid,
        })),
      },
    );
    try {
      const finals = await runAssociation([request], {
        ...this.scu(peer),
        onEventReport: (req) =>
          this.onReport((req as unknown as { getEventTypeId(): number }).getEventTypeId(), datasetOf(req)),
      });
      const status = finals.get(request)!.getStatus();
      if (status !== Status.Success)
        throw new DicomError(
          'dicom_failed_status',
          `${peer.aet} refused the storage commitment request (${hexStatus(status)})`,
          {
            status,
          },
        );
    } catch (err) {
      this.pending.delete(transactionUid);
      await this.persist().catch(() => undefined);
      throw err;
    }
    return { transactionUid };
  }

  /** N-EVENT-REPORT of a storage commitment result (event type 1: all committed, 2: some failed). */
  async onReport(eventTypeId: number, dataset: Naturalized): Promise<number> {
    const transactionUid = textOf(dataset.TransactionUID);
    const entry = this.pending.get(transactionUid);
    if (!entry) {
      this.opts.logger.warn(
        { transactionUid, eventTypeId },
        'storage commitment result for an unknown transaction; ignored',
      );
      return Status.Success;
    }
    const committed = Array.isArray(dataset.ReferencedSOPSequence) ? dataset.ReferencedSOPSequence.length : 0;
    const failed = Array.isArray(dataset.FailedSOPSequence) ? dataset.FailedSOPSequence.length : 0;
    // Settled first, then reported; if the report cannot be recorded the entry comes back and the PACS gets
    // a failure status, so it may send the result again.
    this.pending.delete(transactionUid);
    await this.persist();
    try {
      await this.opts.emit({
        kind: 'storage.committed',
        ...(entry.accession ? { subject: entry.accession } : {}),
        at: this.opts.now(),
        data: { transactionUid, committed, failed, by: 'pacs' },
      });
    } catch (err) {
      this.pending.set(transactionUid, entry);
      await this.persist().catch(() => undefined);
      throw err;
    }
    return Status.Success;
  }

  /** Drop commitment requests the PACS never answered; each becomes a `storage.committed` with all failed. */
  async expireCommitments(): Promise<void> {
    const now = this.opts.now();
    for (const entry of [...this.pending.values()]) {
      if (entry.expiresAt > now) continue;
      this.opts.logger.warn(
        { transactionUid: entry.transactionUid },
        'the PACS did not report storage commitment in time; counted as not committed — check the PACS and resend',
      );
      await this.opts.emit({
        kind: 'storage.committed',
        ...(entry.accession ? { subject: entry.accession } : {}),
        at: now,
        data: { transactionUid: entry.transactionUid, committed: 0, failed: entry.count, by: 'pacs', timedOut: true },
      });
      this.pending.delete(entry.transactionUid);
    }
    await this.persist();
  }

  private persist(): Promise<void> {
    return this.file.save({ version: 1, pending: [...this.pending.values()] });
  }
}
