/**
 * The contract between the gateway agent's command dispatcher (link/commands) and its DICOM side
 * (`gateway-agent/src/dicom/`). The dispatcher verifies a command, then calls one of these; the DICOM side
 * emits events through `emit`, which the agent writes to its durable outbox before anything is sent.
 */
import type {
  EchoArgs,
  JsonObject,
  PacsFindArgs,
  PacsRetrieveArgs,
  WorklistAddArgs,
  WorklistCancelArgs,
} from '@scanrelay/protocol';

/** A site event as the DICOM side raises it; the outbox adds `seq`. `subject` is the accession number. */
export interface DicomEvent {
  kind:
    | 'worklist.added'
    | 'worklist.cancelled'
    | 'procedure.started'
    | 'images.received'
    | 'procedure.completed'
    | 'procedure.discontinued'
    | 'storage.committed'
    | 'modality.status'
    | 'retrieve.progress';
  subject?: string;
  at: number;
  data: JsonObject;
}

/** A peer AE: title, host, port. Parsed from `AET@host:port`. */
export interface DicomPeer {
  aet: string;
  host: string;
  port: number;
}

export interface DicomOptions {
  /** The gateway's own AE title (worklist, MPPS and storage SCP). */
  aet: string;
  /** Port for the SCPs (0 picks a free one; see `port()` after start). */
  port: number;
  /** Directory for the worklist store and received objects (mode 0700). */
  stateDir: string;
  pacs?: DicomPeer;
  modalities: DicomPeer[];
  /** Calling AE titles allowed to use the SCPs (default: the configured modalities and PACS). */
  allowedCallingAets?: string[];
  /** How long worklist items and received objects are kept, ms (default: until the end of the clinic day). */
  retentionMs?: number;
  /** Interval of C-ECHO checks of the modalities, ms (0 disables). */
  echoIntervalMs?: number;
  /** Receives every event; must persist it (outbox) before returning. */
  emit: (event: DicomEvent) => Promise<void>;
  now?: () => number;
  /**
   * Interface the SCPs bind to (default `0.0.0.0`: modalities reach the gateway over the site LAN). The SCP
   * runs on its own `net.Server`, not dcmjs-dimse's `Server.listen(port)`, which always binds every
   * interface; production sites still firewall the DICOM port to their modalities and PACS.
   */
  host?: string;
  /** pino-compatible logger (default: silent). Never receives patient data from the DICOM side. */
  logger?: DicomLogger;
  /**
   * Make a small JPEG preview of every stored image in a worker thread (default true). `onPreview` receives
   * each one; a preview that cannot be made is logged and skipped, never failing the C-STORE.
   */
  previews?: boolean;
  onPreview?: (preview: import('../preview/pool.js').Preview) => void;
  /** Forward every received object to the PACS (C-STORE, one at a time) when a PACS is configured (default false). */
  forwardToPacs?: boolean;
  /** Timeout of one SCU operation against a peer (association, each response), ms (default 30 000). */
  scuTimeoutMs?: number;
  /** Hour (0–23, local time) the clinic day ends, used when `retentionMs` is not set (default 23 → 23:59:59). */
  clinicDayEndHour?: number;
  /**
   * Storage commitment results the PACS sends back on a new association are accepted for this long after
   * the request, ms (default 10 minutes).
   */
  commitmentTimeoutMs?: number;
  /**
   * Set TCP_NODELAY on every DICOM socket, SCP and SCU side (default true). DIMSE exchanges are small PDUs
   * each way; with Nagle's algorithm on, a write waits for the peer's delayed ACK (~40 ms on Linux). `false`
   * keeps the operating system's default and exists to measure the difference.
   */
  tcpNoDelay?: boolean;
}

/** The subset of a pino logger the DICOM side uses. */
export interface DicomLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type WorklistAddResult = { existing: boolean };
export class WorklistConflictError extends Error {
  readonly reason = 'conflict';
  /** Stable code for logs and branching (see `DicomError` for the other DICOM failures). */
  readonly code = 'worklist_conflict';
}

export interface DicomService {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Port the SCPs listen on. */
  port(): number;
  /** Idempotent by accession: same details → {existing: true}; different → throws WorklistConflictError. */
  worklistAdd(args: WorklistAddArgs): Promise<WorklistAddResult>;
  /** Removes the item; resolves {existed} so a retry is not a failure. */
  worklistCancel(args: WorklistCancelArgs): Promise<{ existed: boolean }>;
  /** The echo monitor's last view of each configured peer (optional: test doubles may leave it out). */
  peerStatus?(): { aet: string; online: boolean; checkedAt?: number }[];
  /** C-ECHO a configured peer by AE title; emits modality.status. */
  echo(args: EchoArgs): Promise<{ online: boolean; ms: number }>;
  /** Study-level C-FIND on the PACS; results go in the command's completed detail. */
  pacsFind(args: PacsFindArgs): Promise<{ studies: JsonObject[] }>;
  /** C-MOVE with sub-operation progress. */
  pacsRetrieve(
    args: PacsRetrieveArgs,
    onProgress: (p: { done: number; total: number; failed: number }) => void,
  ): Promise<{ completed: number; failed: number; warning: number }>;
}
