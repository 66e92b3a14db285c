/**
 * The gateway's DICOM listener: one port for the Modality Worklist, MPPS and Storage SCPs, plus C-ECHO and
 * the storage-commitment results (N-EVENT-REPORT) a PACS sends back on a new association.
 *
 * ```
 *  modality ──TCP──► net.Server (host, port) ──► GatewayScp (one per association, dcmjs-dimse Scp)
 *                                                  associationRequested: called AE + calling-AE allowlist
 *                                                  C-ECHO / C-FIND (MWL) / N-CREATE / N-SET / C-STORE / N-EVENT-REPORT
 *                                                    └─► ScpHandlers (async, guarded: one callback each)
 * ```
 *
 * Why our own `net.Server`: dcmjs-dimse's `Server.listen(port)` binds every interface and has no host
 * option; here `host` can restrict it (tests bind 127.0.0.1). Production still firewalls the port.
 *
 * dcmjs-dimse traps handled here: a handler's callback may be called once only (a second call throws inside
 * an event emitter), and a rejected promise from an async handler is not caught by the library — every
 * handler goes through `guard()`. C-STORE datasets are streamed to a file (see storage-sink.ts) instead of
 * the library's in-memory stream.
 */
import { randomUUID } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import dimse from 'dcmjs-dimse';
import type { CallerRejection, CallerVerdict } from './caller-allowlist.js';
import { datasetOf, emitterOf, type Naturalized, setNoDelay, withDataset } from './dimse-util.js';
import { MAX_ASSOCIATE_PDU, PduLengthGuard } from './pdu-guard.js';
import { FileSink, readStoredHeader, type StoredHeader } from './storage-sink.js';
import type { DicomLogger } from './types.js';
import { uuidUid } from './uid.js';

const { Scp, Dataset } = dimse;
const {
  CEchoResponse,
  CFindResponse,
  CStoreResponse,
  NActionResponse,
  NCreateResponse,
  NSetResponse,
  NEventReportResponse,
} = dimse.responses;
const { NEventReportRequest } = dimse.requests;
const STORAGE_COMMITMENT_INSTANCE = '1.2.840.10008.1.20.1.1';
/** C-STORE "Refused: Out of Resources" (PS3.4 B.2.3): the object could not be written (disk full, I/O error). */
const OUT_OF_RESOURCES = 0xa700;
const { Status, PresentationContextResult, RejectResult, RejectSource, RejectReason, SopClass, StorageClass } =
  dimse.constants;
const TS = dimse.constants.TransferSyntax;

type Association = dimse.association.Association;
type PresentationContext = dimse.association.PresentationContext;
type Request = dimse.requests.Request;
type CStoreRequest = dimse.requests.CStoreRequest;

/** A C-STORE object written to disk, handed to the storage handler. */
export interface ReceivedFile {
  /** Temporary path of the complete Part 10 file; the handler moves or deletes it. */
  path: string;
  bytes: number;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  header: StoredHeader;
}

/** What the SCP does with each request. Each returns the DICOM status to answer with. */
export interface ScpHandlers {
  worklistFind(query: Naturalized, callingAet: string): Promise<Naturalized[]>;
  mppsCreate(sopInstanceUid: string, dataset: Naturalized, callingAet: string): Promise<number>;
  mppsSet(sopInstanceUid: string, dataset: Naturalized, callingAet: string): Promise<number>;
  store(file: ReceivedFile, callingAet: string): Promise<number>;
  commitmentReport(eventTypeId: number, dataset: Naturalized, callingAet: string): Promise<number>;
  /**
   * A modality's storage commitment request (N-ACTION) to this gateway. Returns the status and the result to
   * report back (N-EVENT-REPORT on the same association, sent right after the N-ACTION response).
   */
  commitmentRequest(
    dataset: Naturalized,
    callingAet: string,
  ): Promise<{ status: number; report?: { eventTypeId: number; dataset: Naturalized } }>;
}

export interface ScpConfig {
  aet: string;
  /** Calling AE title + source address check (see caller-allowlist.ts). */
  checkCaller(aet: string, remoteAddress: string | undefined): CallerVerdict;
  /** Counts a refused association (the `associationsRejected` counter). */
  onRejected?(reason: CallerRejection): void;
  /** Where C-STORE objects are written while they arrive. */
  incomingDir: string;
  handlers: ScpHandlers;
  logger: DicomLogger;
  /** Idle/association/PDU timeout of an incoming association, ms. */
  timeoutMs: number;
  /** Set TCP_NODELAY on accepted sockets (default true; see `DicomOptions.tcpNoDelay`). */
  noDelay?: boolean;
}

/** Storage SOP classes a screening site sends: MG, breast tomosynthesis and projection, DX, CAD/dose SR, SC. */
export const STORAGE_SOP_CLASSES: readonly string[] = [
  StorageClass.DigitalMammographyXRayImageStorageForPresentation,
  StorageClass.DigitalMammographyXRayImageStorageForProcessing,
  StorageClass.BreastTomosynthesisImageStorage,
  StorageClass.BreastProjectionXRayImageStorageForPresentation,
  StorageClass.BreastProjectionXRayImageStorageForProcessing,
  StorageClass.DigitalXRayImageStorageForPresentation,
  StorageClass.DigitalXRayImageStorageForProcessing,
  StorageClass.MammographyCadSrStorage,
  StorageClass.XRayRadiationDoseSRStorage,
  StorageClass.ComprehensiveSrStorage,
  StorageClass.EnhancedSrStorage,
  StorageClass.BasicTextSrStorage,
  StorageClass.SecondaryCaptureImageStorage,
  StorageClass.EncapsulatedPdfStorage,
];

/** Objects are stored as received, so compressed syntaxes are fine (no transcoding needed). */
const STORAGE_TRANSFER_SYNTAXES: readonly string[] = [
  TS.ExplicitVRLittleEndian,
  TS.ImplicitVRLittleEndian,
  TS.JpegLossless,
  TS.JpegBaseline,
  TS.JpegLsLossless,
  TS.JpegLsLossy,
  TS.Jpeg2000Lossless,
  TS.Jpeg2000Lossy,
  TS.RleLossless,
];
const COMMAND_TRANSFER_SYNTAXES: readonly string[] = [TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian];

const SERVICE_SOP_CLASSES: readonly string[] = [
  SopClass.Verification,
  SopClass.ModalityWorklistInformationModelFind,
  SopClass.ModalityPerformedProcedureStep,
  SopClass.StorageCommitmentPushModel,
];

/**
 * Wrap an SCP callback so it runs at most once. dcmjs-dimse sends one response per call; a second call from
 * a buggy path would send a stray response (or throw inside the emitter). Extra calls are logged, not sent.
 */
export function onceCallback<T>(callback: (r: T) => void, onExtra: () => void): (r: T) => void {
  let called = false;
  return (r: T) => {
    if (called) {
      onExtra();
      return;
    }
    called = true;
    callback(r);
  };
}

/** Build the per-association SCP class bound to `cfg`. */
function makeScpClass(cfg: ScpConfig) {
  const log = cfg.logger;
  return class GatewayScp extends Scp {
    // dcmjs-dimse's own Server sets `connected` on accepted sockets; its association/PDU timeouts only run
    // when it is set. We also set `connectedTime`, so a peer that connects and never sends A-ASSOCIATE-RQ is
    // dropped after the association timeout instead of holding a socket open.
    declare connected: boolean;
    declare connectedTime: number | undefined;
    declare socket: Socket;
    private callingAet = '';
    private readonly sinks = new WeakMap<Request, { sink: FileSink; path: string }>();
    private currentSink: FileSink | undefined;
    private readonly openSinks = new Set<{ sink: FileSink; path: string }>();
    // Storage datasets go to disk (not capped here); every other dataset is held in memory by the library.
    private readonly pduGuard = new PduLengthGuard(MAX_ASSOCIATE_PDU, {
      isStreamed: (pcid) => this.storageContexts.has(pcid),
    });
    private readonly storageContexts = new Set<number>();

    constructor(socket: Socket, opts?: ConstructorParameters<typeof Scp>[1]) {
      super(socket, opts);
      this.connected = true;
      this.connectedTime = Date.now();
      // Backpressure: dcmjs-dimse writes each PDV into our sink from its own 'data' listener without looking
      // at the return value; this listener runs right after it and pauses the socket until the file catches
      // up, so a fast sender cannot fill memory with a slow disk.
      socket.on('data', (chunk: Buffer) => {
        const oversized = this.pduGuard.feed(chunk);
        if (oversized !== undefined) {
          log.warn(
            {
              remote: `${socket.remoteAddress}:${socket.remotePort}`,
              callingAet: this.callingAet,
              declared: oversized,
            },
            'dropped a DICOM connection: it sent a PDU larger than the negotiated maximum',
          );
          socket.destroy();
          return;
        }
        const sink = this.currentSink;
        if (sink?.writableNeedDrain && !socket.isPaused()) {
          socket.pause();
          sink.once('drain', () => socket.resume());
          sink.once('close', () => socket.resume());
        }
      });
      socket.on('close', () => {
        // An association aborted mid-object leaves a partial file: remove it.
        for (const open of this.openSinks) {
          open.sink.destroy();
          void unlink(open.path).catch(() => undefined);
        }
        this.openSinks.clear();
      });
    }

    override associationRequested(association: Association): void {
      const calling = association.getCallingAeTitle().trim();
      const called = association.getCalledAeTitle().trim();
      this.callingAet = calling;
      const remote = `${this.socket.remoteAddress}:${this.socket.remotePort}`;
      if (called !== cfg.aet) {
        log.warn(
          { callingAet: calling, calledAet: called, remote },
          `association refused: called AE "${called}" is not this gateway's AE title "${cfg.aet}"; set the modality's destination AE to "${cfg.aet}"`,
        );
        cfg.onRejected?.('called_ae');
        this.sendAssociationReject(
          RejectResult.Permanent,
          RejectSource.ServiceUser,
          RejectReason.CalledAeNotRecognized,
        );
        return;
      }
      const verdict = cfg.checkCaller(calling, this.socket.remoteAddress);
      if (!verdict.ok) {
        if (verdict.reason === 'wrong_source_address')
          log.warn(
            { callingAet: calling, remote, expected: verdict.expected },
            `association refused: calling AE "${calling}" is configured at ${verdict.expected.join(', ')} but connected from ${this.socket.remoteAddress}; fix the peer's address in SCANRELAY_GATEWAY_MODALITIES/PACS if the unit moved`,
          );
        else
          log.warn(
            { callingAet: calling, remote },
            `association refused: calling AE "${calling}" is not allowed; add it to SCANRELAY_GATEWAY_MODALITIES if it is a modality of this site`,
          );
        cfg.onRejected?.(verdict.reason);
        this.sendAssociationReject(
          RejectResult.Permanent,
          RejectSource.ServiceUser,
          RejectReason.CallingAeNotRecognized,
        );
        return;
      }
      for (const { context } of association.getPresentationContexts()) {
        const abstract = context.getAbstractSyntaxUid();
        const offered = context.getTransferSyntaxUids();
        const allowed = STORAGE_SOP_CLASSES.includes(abstract)
          ? STORAGE_TRANSFER_SYNTAXES
          : SERVICE_SOP_CLASSES.includes(abstract)
            ? COMMAND_TRANSFER_SYNTAXES
            : undefined;
        if (!allowed) {
          context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
          continue;
        }
        const ts = allowed.find((t) => offered.includes(t));
        if (ts && allowed === STORAGE_TRANSFER_SYNTAXES) this.storageContexts.add(context.getPresentationContextId());
        if (ts) context.setResult(PresentationContextResult.Accept, ts);
        else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
      }
      // dcmjs-dimse advertises min(peer's maximum, its own) as our receive maximum; a peer announcing 0
      // ("unlimited") would make that 0 too, so give it a real bound first. Then hold the peer to it.
      if (association.getMaxPduLength() === 0) association.setMaxPduLength(dimse.Implementation.getMaxPduLength());
      this.sendAssociationAccept();
      this.pduGuard.setLimit(association.getMaxPduLength() + 16);
    }

    override associationReleaseRequested(): void {
      this.sendAssociationReleaseResponse();
    }

    override abort(source: number, reason: number): void {
      log.info({ callingAet: this.callingAet, source, reason }, 'association aborted by the peer');
      this.socket.destroy();
    }

    /** Run an async handler; answer exactly once, with a failure status if it throws. */
    private guard<R>(what: string, callback: (r: R) => void, run: () => Promise<R>, onError: () => R): void {
      const reply = onceCallback(callback, () =>
        log.error({ what, callingAet: this.callingAet }, 'SCP handler answered twice; second answer dropped'),
      );
      run()
        .catch((err: unknown) => {
          log.error(
            { what, callingAet: this.callingAet, err: (err as Error)?.message },
            `${what} failed; answered the peer with a failure status`,
          );
          return onError();
        })
        .then(reply)
        // Sending can throw (socket gone); a rejection here would otherwise be unhandled and end the process.
        .catch((err: unknown) =>
          log.error(
            { what, callingAet: this.callingAet, err: (err as Error)?.message },
            `could not send the ${what} response`,
          ),
        );
    }

    override cEchoRequest(request: dimse.requests.CEchoRequest, callback: (r: dimse.responses.CEchoResponse) => void) {
      const response = CEchoResponse.fromRequest(request);
      response.setStatus(Status.Success);
      onceCallback(callback, () => undefined)(response);
    }

    override cFindRequest(
      request: dimse.requests.CFindRequest,
      callback: (r: dimse.responses.CFindResponse[]) => void,
    ) {
      this.guard(
        'worklist C-FIND',
        callback,
        async () => {
          if (request.getAffectedSopClassUid() !== SopClass.ModalityWorklistInformationModelFind) {
            const r = CFindResponse.fromRequest(request);
            r.setStatus(Status.SopClassNotSupported);
            return [r];
          }
          const matches = await cfg.handlers.worklistFind(datasetOf(request), this.callingAet);
          const responses = matches.map((m) => {
            const r = CFindResponse.fromRequest(request);
            r.setDataset(new Dataset(m));
            r.setStatus(Status.Pending);
            return r;
          });
          const final = CFindResponse.fromRequest(request);
          final.setStatus(Status.Success);
          return [...responses, final];
        },
        () => {
          const r = CFindResponse.fromRequest(request);
          r.setStatus(Status.ProcessingFailure);
          return [r];
        },
      );
    }

    override nCreateRequest(
      request: dimse.requests.NCreateRequest,
      callback: (r: dimse.responses.NCreateResponse) => void,
    ) {
      const fail = (status: number) => {
        const r = NCreateResponse.fromRequest(request);
        r.setStatus(status);
        return r;
      };
      this.guard(
        'MPPS N-CREATE',
        callback,
        async () => {
          if (request.getAffectedSopClassUid() !== SopClass.ModalityPerformedProcedureStep)
            return fail(Status.NoSuchSopClass);
          // A modality may leave the instance UID to the SCP (PS3.4 F.7.2.1.1); then we assign one.
          const uid = request.getAffectedSopInstanceUid() || uuidUid();
          const status = await cfg.handlers.mppsCreate(uid, datasetOf(request), this.callingAet);
          const r = fail(status);
          r.setAffectedSopInstanceUid(uid);
          return r;
        },
        () => fail(Status.ProcessingFailure),
      );
    }

    override nSetRequest(request: dimse.requests.NSetRequest, callback: (r: dimse.responses.NSetResponse) => void) {
      const respond = (status: number) => {
        const r = NSetResponse.fromRequest(request);
        r.setStatus(status);
        return r;
      };
      this.guard(
        'MPPS N-SET',
        callback,
        async () => {
          if (request.getRequestedSopClassUid() !== SopClass.ModalityPerformedProcedureStep)
            return respond(Status.NoSuchSopClass);
          const uid = request.getRequestedSopInstanceUid();
          return respond(await cfg.handlers.mppsSet(uid, datasetOf(request), this.callingAet));
        },
        () => respond(Status.ProcessingFailure),
      );
    }

    override nEventReportRequest(
      request: dimse.requests.NEventReportRequest,
      callback: (r: dimse.responses.NEventReportResponse) => void,
    ) {
      const respond = (status: number) => {
        const r = NEventReportResponse.fromRequest(request);
        r.setStatus(status);
        return r;
      };
      this.guard(
        'storage commitment N-EVENT-REPORT',
        callback,
        async () => {
          if (request.getAffectedSopClassUid() !== SopClass.StorageCommitmentPushModel)
            return respond(Status.NoSuchSopClass);
          const status = await cfg.handlers.commitmentReport(
            request.getEventTypeId(),
            datasetOf(request),
            this.callingAet,
          );
          return respond(status);
        },
        () => respond(Status.ProcessingFailure),
      );
    }

    override nActionRequest(
      request: dimse.requests.NActionRequest,
      callback: (r: dimse.responses.NActionResponse) => void,
    ) {
      const respond = (status: number) => {
        const r = NActionResponse.fromRequest(request);
        r.setStatus(status);
        return r;
      };
      let report: { eventTypeId: number; dataset: Naturalized } | undefined;
      this.guard(
        'storage commitment N-ACTION',
        (r: dimse.responses.NActionResponse) => {
          callback(r);
          // PS3.4 J.3.3: the result may come on the same association; the modality keeps it open for it.
          if (report && !this.socket.destroyed) {
            const rq = new NEventReportRequest(
              SopClass.StorageCommitmentPushModel,
              STORAGE_COMMITMENT_INSTANCE,
              report.eventTypeId,
            );
            this.sendRequests(withDataset(rq, report.dataset));
          }
        },
        async () => {
          if (request.getRequestedSopClassUid() !== SopClass.StorageCommitmentPushModel)
            return respond(Status.NoSuchSopClass);
          if (request.getActionTypeId() !== 1) return respond(Status.NoSuchActionType);
          const result = await cfg.handlers.commitmentRequest(datasetOf(request), this.callingAet);
          report = result.report;
          return respond(result.status);
        },
        () => respond(Status.ProcessingFailure),
      );
    }

    override createStoreWritableStream(context: PresentationContext, request: CStoreRequest): Writable {
      const path = join(cfg.incomingDir, `${randomUUID()}.part`);
      const sink = new FileSink(path, {
        sopClassUid: request.getAffectedSopClassUid(),
        sopInstanceUid: request.getAffectedSopInstanceUid(),
        transferSyntaxUid: context.getAcceptedTransferSyntaxUid() ?? TS.ImplicitVRLittleEndian,
        sourceAet: this.callingAet,
      });
      // Without a listener, a disk error would be an unhandled 'error' event and end the process.
      sink.on('error', (err) => log.error({ err: err.message, path }, 'cannot write a received object to disk'));
      const entry = { sink, path };
      this.sinks.set(request, entry);
      this.openSinks.add(entry);
      this.currentSink = sink;
      return sink;
    }

    override createDatasetFromStoreWritableStream(
      writable: Writable,
      context: PresentationContext,
      callback: (dataset: dimse.Dataset) => void,
    ): void {
      const sink = writable as FileSink;
      if (this.currentSink === sink) this.currentSink = undefined;
      // Only the header (up to the study/series attributes) is parsed: the pixel data stays on disk.
      sink
        .done()
        .then(() => readStoredHeader(sink.path, sink.datasetOffset, context.getAcceptedTransferSyntaxUid() ?? ''))
        .then(
          (header) => callback(new Dataset(header as unknown as Record<string, unknown>)),
          (err: unknown) => {
            sink.failed = (err as Error)?.message ?? 'write failed';
            callback(new Dataset({}));
          },
        );
    }

    override cStoreRequest(request: CStoreRequest, callback: (r: dimse.responses.CStoreResponse) => void) {
      const entry = this.sinks.get(request);
      const respond = (status: number) => {
        const r = CStoreResponse.fromRequest(request);
        r.setStatus(status);
        return r;
      };
      this.guard(
        'C-STORE',
        callback,
        async () => {
          if (!entry) return respond(Status.ProcessingFailure);
          this.openSinks.delete(entry);
          if (entry.sink.failed) {
            await unlink(entry.path).catch(() => undefined);
            return respond(OUT_OF_RESOURCES);
          }
          const file: ReceivedFile = {
            path: entry.path,
            bytes: entry.sink.bytes,
            sopClassUid: request.getAffectedSopClassUid(),
            sopInstanceUid: request.getAffectedSopInstanceUid(),
            transferSyntaxUid: entry.sink.transferSyntaxUid,
            header: datasetOf(request) as StoredHeader,
          };
          return respond(await cfg.handlers.store(file, this.callingAet));
        },
        () => {
          if (entry) void unlink(entry.path).catch(() => undefined);
          return respond(Status.ProcessingFailure);
        },
      );
    }
  };
}

/** Concurrent DICOM connections served; Node closes further ones as soon as they are accepted. */
const MAX_CONNECTIONS = 64;

/** The listening side: a `net.Server` that runs one GatewayScp per connection. */
export class ScpServer {
  private server: NetServer | undefined;
  private readonly sockets = new Set<Socket>();
  private boundPort = 0;

  constructor(private readonly cfg: ScpConfig) {}

  async listen(host: string, port: number): Promise<number> {
    const ScpClass = makeScpClass(this.cfg);
    // A-ASSOCIATE-RQ must come within the timeout; an established association may idle longer (units keep
    // one open between images), up to four times it, before it is aborted.
    const opts = {
      connectTimeout: this.cfg.timeoutMs * 4,
      associationTimeout: this.cfg.timeoutMs,
      pduTimeout: this.cfg.timeoutMs * 4,
    };
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined); // reported through the SCP's networkError below
      // Responses are small PDUs (N-CREATE-RSP, C-FIND pendings): send each at once rather than let Nagle hold
      // it for the modality's delayed ACK (~40 ms a round trip on Linux).
      if (this.cfg.noDelay !== false) setNoDelay(socket);
      const scp = new ScpClass(socket, opts);
      emitterOf(scp).on('networkError', (err: Error) => {
        this.cfg.logger.info({ err: err.message }, 'DICOM connection ended with an error');
        socket.destroy();
      });
    });
    // A site has a handful of modalities; far more concurrent connections is a fault or an attack.
    server.maxConnections = MAX_CONNECTIONS;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.cfg.logger.error({ err: err.message }, 'DICOM listener error'));
    const addr = server.address();
    this.boundPort = typeof addr === 'object' && addr ? addr.port : port;
    return this.boundPort;
  }

  port(): number {
    return this.boundPort;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
