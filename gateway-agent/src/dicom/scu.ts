/**
 * One SCU association with dcmjs-dimse's Client, as a promise that always settles.
 *
 * dcmjs-dimse traps this guards against:
 * - A request whose presentation context the peer rejected is dropped silently (a log line, no response).
 * - An association can close (peer crash, abort, release) before the final response.
 * - A peer can stall; the library's own timeouts are per PDU and do not cover a missing response.
 * So: a request is done only when a response with a non-pending status arrived. When the association
 * closes first, the request fails with `dicom_context_rejected` (its context was not accepted) or
 * `dicom_no_final_response`; when nothing arrives for `timeoutMs`, the association is aborted and the
 * request fails with `dicom_timeout`.
 */
import dimse from 'dcmjs-dimse';
import { clientSocket, emitterOf, setNoDelay } from './dimse-util.js';
import { DicomError } from './errors.js';
import type { DicomLogger, DicomPeer } from './types.js';

const { Client } = dimse;
const { Status } = dimse.constants;

type Request = dimse.requests.Request;
type Response = dimse.responses.Response;
type Association = dimse.association.Association;

export interface ScuOptions {
  callingAet: string;
  peer: DicomPeer;
  /** Longest wait for the association, and between two responses, ms. */
  timeoutMs: number;
  logger?: DicomLogger;
  /** Called for every response (pending ones included), in order. */
  onResponse?: (request: Request, response: Response) => void;
  /** Extra presentation contexts to propose (e.g. storage commitment reports on the same association). */
  contexts?: dimse.association.PresentationContext[];
  /**
   * Keep the association open this long after the last response before releasing it, ms (default 0): a
   * storage commitment SCP may send its N-EVENT-REPORT on the same association right after the N-ACTION.
   */
  lingerMs?: number;
  /** N-EVENT-REPORT the peer sends on this association (storage commitment). */
  onEventReport?: (request: dimse.requests.NEventReportRequest) => Promise<number>;
  /** Set TCP_NODELAY on the association's socket (default true; see `DicomOptions.tcpNoDelay`). */
  noDelay?: boolean;
}

/** Whether a DIMSE status is "pending" (0xFF00 / 0xFF01). */
export function isPending(status: number): boolean {
  return status === Status.Pending || status === 0xff01;
}

/** Whether a final status counts as success (0x0000, or a warning 0x0001 / 0xBxxx). */
export function isSuccessOrWarning(status: number): boolean {
  return status === Status.Success || status === 0x0001 || (status & 0xf000) === 0xb000;
}

/**
 * Open one association, send `requests` in order, and resolve with each one's final response once the
 * association has closed. Rejects with a `DicomError` when any request has no final response.
 */
export function runAssociation(requests: Request[], opts: ScuOptions): Promise<Map<Request, Response>> {
  const finals = new Map<Request, Response>();
  const { peer } = opts;
  const where = `${peer.aet}@${peer.host}:${peer.port}`;
  return new Promise((resolve, reject) => {
    const client = new Client();
    const events = emitterOf(client);
    let accepted: Association | undefined;
    let rejected: { result: number; source: number; reason: number } | undefined;
    let networkError: Error | undefined;
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = true;
        opts.logger?.warn({ peer: where, timeoutMs: opts.timeoutMs }, 'DICOM peer did not answer in time; aborting');
        try {
          client.abort();
        } catch {
          // no association yet: the socket is still connecting
        }
        // The close event may never come for a socket that never connected; settle now.
        finish();
      }, opts.timeoutMs);
    };
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      const missing = requests.filter((r) => !finals.has(r));
      if (missing.length === 0) return resolve(finals);
      if (rejected)
        return reject(
          new DicomError(
            'dicom_association_rejected',
            `${where} rejected the association (result ${rejected.result}, source ${rejected.source}, reason ${rejected.reason}); ` +
              `check that the peer knows this gateway's AE title "${opts.callingAet}" and that "${peer.aet}" is its AE title`,
          ),
        );
      if (timedOut)
        return reject(
          new DicomError(
            'dicom_timeout',
            `${where} did not answer within ${opts.timeoutMs} ms; check that it is running`,
          ),
        );
      const first = missing[0]!;
      if (accepted && !accepted.getAcceptedPresentationContextFromRequest(first))
        return reject(
          new DicomError(
            'dicom_context_rejected',
            `${where} does not accept ${first.toString()} (presentation context rejected); the peer does not offer this service to this gateway`,
          ),
        );
      if (networkError && !accepted)
        return reject(
          new DicomError(
            'dicom_network',
            `cannot reach ${where}: ${networkError.message}; check host, port and firewall`,
            {
              cause: networkError,
            },
          ),
        );
      reject(
        new DicomError(
          'dicom_no_final_response',
          `${where} closed the association before the final response to ${first.toString()}` +
            (networkError ? ` (${networkError.message})` : ''),
        ),
      );
    };
    for (const request of requests) {
      emitterOf(request).on('response', (response: Response) => {
        arm();
        opts.onResponse?.(request, response);
        if (!isPending(response.getStatus())) finals.set(request, response);
      });
      client.addRequest(request);
    }
    for (const context of opts.contexts ?? []) client.addAdditionalPresentationContext(context);
    events.on('associationAccepted', (association: Association) => {
      accepted = association;
      arm();
    });
    events.on('associationRejected', (r: { result: number; source: number; reason: number }) => {
      rejected = r;
    });
    events.on('networkError', (err: Error) => {
      networkError = err;
    });
    events.on('closed', () => finish());
    events.on(
      'nEventReportRequest',
      (request: dimse.requests.NEventReportRequest, callback: (r: dimse.responses.NEventReportResponse) => void) => {
        const respond = (status: number) => {
          const r = dimse.responses.NEventReportResponse.fromRequest(request);
          r.setStatus(status);
          callback(r);
        };
        const handler = opts.onEventReport;
        if (!handler) return respond(Status.NoSuchEventType);
        handler(request).then(respond, () => respond(Status.ProcessingFailure));
      },
    );
    arm();
    try {
      client.send(peer.host, peer.port, opts.callingAet, peer.aet, {
        connectTimeout: opts.timeoutMs,
        associationTimeout: opts.timeoutMs,
        pduTimeout: opts.timeoutMs,
        associationLingerTimeout: opts.lingerMs ?? 0,
      });
      // Small PDUs both ways: without this, Nagle meets the peer's delayed ACK (~40 ms per exchange).
      if (opts.noDelay !== false && !setNoDelay(clientSocket(client)))
        opts.logger?.debug({ peer: where }, 'could not reach the DICOM client socket to set TCP_NODELAY');
    } catch (err) {
      networkError = err as Error;
      finish();
    }
  });
}
