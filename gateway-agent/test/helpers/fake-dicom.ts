/**
 * A stand-in for the DICOM side (the *other* side of the dispatcher's contract, gateway-agent/src/dicom/types.ts),
 * used only by link/dispatch tests. End-to-end tests use the real DICOM service.
 */
import type {
  EchoArgs,
  JsonObject,
  PacsFindArgs,
  PacsRetrieveArgs,
  WorklistAddArgs,
  WorklistCancelArgs,
} from '@scanrelay/protocol';
import { type DicomOptions, type DicomService, WorklistConflictError } from '../../src/dicom/types.js';

export interface FakeDicom extends DicomService {
  calls: { cmd: string; args: unknown }[];
  worklist: Map<string, WorklistAddArgs>;
  /** Make pacs.retrieve wait until the returned function is called. */
  block(): () => void;
  /** Emit an event through the agent's outbox (as the real MPPS/storage SCPs do). */
  raise(
    kind: 'procedure.started' | 'images.received' | 'procedure.completed',
    subject: string,
    data?: JsonObject,
  ): Promise<void>;
}

export function createFakeDicom(opts: Pick<DicomOptions, 'emit'> & Partial<DicomOptions>): FakeDicom {
  const calls: { cmd: string; args: unknown }[] = [];
  const worklist = new Map<string, WorklistAddArgs>();
  const now = opts.now ?? Date.now;
  let gate: Promise<void> | undefined;
  return {
    block() {
      let release!: () => void;
      gate = new Promise((r) => {
        release = r;
      });
      return release;
    },
    calls,
    worklist,
    async start() {},
    async stop() {},
    port: () => 0,
    async worklistAdd(args: WorklistAddArgs) {
      calls.push({ cmd: 'worklist.add', args });
      const existing = worklist.get(args.accession);
      if (existing) {
        if (JSON.stringify(existing) !== JSON.stringify(args)) throw new WorklistConflictError('different details');
        return { existing: true };
      }
      worklist.set(args.accession, args);
      await opts.emit({
        kind: 'worklist.added',
        subject: args.accession,
        at: now(),
        data: { station: args.stationAet },
      });
      return { existing: false };
    },
    async worklistCancel(args: WorklistCancelArgs) {
      calls.push({ cmd: 'worklist.cancel', args });
      return { existed: worklist.delete(args.accession) };
    },
    async echo(args: EchoArgs) {
      calls.push({ cmd: 'echo', args });
      return { online: true, ms: 1 };
    },
    async pacsFind(args: PacsFindArgs) {
      calls.push({ cmd: 'pacs.find', args });
      return { studies: [] };
    },
    async pacsRetrieve(args: PacsRetrieveArgs, onProgress) {
      calls.push({ cmd: 'pacs.retrieve', args });
      await gate;
      for (let i = 1; i <= 3; i++) onProgress({ done: i, total: 3, failed: 0 });
      return { completed: 3, failed: 0, warning: 0 };
    },
    async raise(kind, subject, data = {}) {
      await opts.emit({ kind, subject, at: now(), data });
    },
  };
}

export const WORKLIST_ARGS: WorklistAddArgs = {
  accession: 'ACC0001',
  patientId: '9434765919',
  patientName: 'SMITH^JANE',
  birthDate: '19700101',
  sex: 'F',
  stationAet: 'MG1',
  scheduledAt: '2026-11-24T09:00:00Z',
};
