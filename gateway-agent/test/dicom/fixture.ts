/** A DICOM service on 127.0.0.1 with a temp state dir and an event recorder, for the tests of this folder. */
import { rm } from 'node:fs/promises';
import {
  createDicomService,
  type DicomEvent,
  type DicomOptions,
  type GatewayDicomService,
} from '../../src/dicom/index.js';
import { tempDir } from '../helpers/dicom-peers.js';

export const GATEWAY_AET = 'SCANRELAY';
export const MODALITY_AET = 'HOLOGIC1';

export class EventRecorder {
  readonly events: DicomEvent[] = [];
  private waiters: { match: (e: DicomEvent) => boolean; resolve: (e: DicomEvent) => void }[] = [];
  /** Set to make `emit` fail (outbox write failure). */
  failNext = false;

  emit = async (event: DicomEvent): Promise<void> => {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('outbox unavailable (test)');
    }
    this.events.push(event);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(event)) return true;
      w.resolve(event);
      return false;
    });
  };

  /** Resolves with the first event (already recorded or future) that matches. */
  waitFor(kind: DicomEvent['kind'], pred: (e: DicomEvent) => boolean = () => true): Promise<DicomEvent> {
    const match = (e: DicomEvent) => e.kind === kind && pred(e);
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  of(kind: DicomEvent['kind']): DicomEvent[] {
    return this.events.filter((e) => e.kind === kind);
  }
}

export interface Fixture {
  svc: GatewayDicomService;
  recorder: EventRecorder;
  stateDir: string;
  port: number;
  /** Stop the service (state kept); `cleanup` also removes the state dir. */
  stop(): Promise<void>;
  cleanup(): Promise<void>;
}

export async function startService(overrides: Partial<DicomOptions> = {}, stateDir?: string): Promise<Fixture> {
  const dir = stateDir ?? (await tempDir('scanrelay-gw-'));
  const recorder = new EventRecorder();
  const svc = createDicomService({
    aet: GATEWAY_AET,
    port: 0,
    host: '127.0.0.1',
    stateDir: dir,
    modalities: [{ aet: MODALITY_AET, host: '127.0.0.1', port: 1 }],
    allowedCallingAets: [MODALITY_AET, 'FINDSCU', 'STORESCU', 'ECHOSCU', 'PYNETDICOM', 'ORTHANC'],
    emit: recorder.emit,
    scuTimeoutMs: 10_000,
    ...overrides,
  });
  await svc.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await svc.stop();
  };
  return {
    svc,
    recorder,
    stateDir: dir,
    port: svc.port(),
    stop,
    async cleanup() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A `worklist.add` argument set scheduled today at 10:00 local time. */
export function addArgs(accession: string, extra: Record<string, string> = {}) {
  const d = new Date();
  d.setHours(10, 0, 0, 0);
  return {
    accession,
    patientId: '9434765919',
    patientName: 'SMITH^JANE',
    birthDate: '19700101',
    sex: 'F' as const,
    stationAet: MODALITY_AET,
    scheduledAt: d.toISOString(),
    procedure: 'Screening mammography',
    ...extra,
  };
}
