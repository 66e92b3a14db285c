/** Small typed bridges over dcmjs-dimse 0.3.3's typings. */
import type { Socket } from 'node:net';
import dimse from 'dcmjs-dimse';

/** A dcmjs "naturalized" dataset: keyword → value, sequences as arrays, person names as `[{Alphabetic}]`. */
export type Naturalized = Record<string, unknown>;

/**
 * The naturalized dataset of a request. (dcmjs-dimse's typings build Request from a ts-mixer mixin whose
 * types do not resolve here, so `getDataset` is reached through this one typed cast.)
 */
export function datasetOf(request: unknown): Naturalized {
  const ds = (request as { getDataset(): { getElements(): Naturalized } | undefined }).getDataset();
  return ds?.getElements() ?? {};
}

/** The event-emitter side of a dcmjs-dimse object (its AsyncEventEmitter2 base is untyped here). */
export function emitterOf(x: unknown): { on(event: string, listener: (...args: never[]) => void): void } {
  return x as { on(event: string, listener: (...args: never[]) => void): void };
}

/**
 * dcmjs-dimse logs every association and DIMSE message to the console at trace level by default (its
 * loglevel logger is enabled with `enableAll`). The gateway logs through pino instead; keep the library to
 * errors, which never include datasets (`logDatasets` stays off).
 */
export function quietDimseLog(level: 'silent' | 'error' | 'warn' = 'silent'): void {
  dimse.log.setLevel(level);
}

/** Attach a dataset to a request (see `datasetOf` for why this goes through a cast). */
export function withDataset<R>(request: R, elements: Naturalized): R {
  (request as unknown as { setDataset(ds: dimse.Dataset): void }).setDataset(new dimse.Dataset(elements));
  return request;
}

/** Set a request's Affected SOP Class UID (same typing gap as `datasetOf`). */
export function withAffectedSopClass<R>(request: R, sopClassUid: string): R {
  (request as unknown as { setAffectedSopClassUid(uid: string): void }).setAffectedSopClassUid(sopClassUid);
  return request;
}

/**
 * Turn off Nagle's algorithm on a DICOM socket. A DIMSE exchange is a few small PDUs each way (command, then
 * dataset; response, then the next request); with Nagle on, the second small write of a burst waits for the
 * peer's delayed ACK (~40 ms on Linux), which was most of an MPPS N-CREATE's round trip on loopback.
 */
export function setNoDelay(socket: Socket | undefined): boolean {
  if (!socket || typeof socket.setNoDelay !== 'function') return false;
  socket.setNoDelay(true);
  return true;
}

/**
 * The TCP socket of a dcmjs-dimse `Client` after `send()`. The library opens it inside `send()` with
 * `net.connect()` and no socket options, and keeps it on its `network` (a `Network`, whose `socket` it
 * reads itself); `undefined` if a future version moves it, so callers degrade to Nagle on, never fail.
 */
export function clientSocket(client: unknown): Socket | undefined {
  const network = (client as { network?: { socket?: unknown } }).network;
  const socket = network?.socket as Socket | undefined;
  return socket && typeof socket.setNoDelay === 'function' ? socket : undefined;
}
