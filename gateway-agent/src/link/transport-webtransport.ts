/**
 * The WebTransport transport of the relay link: `@fails-components/webtransport` (its pure-JS HTTP/2 transport,
 * `forceReliable`: the HTTP/3 native module is not built here) under the protocol package's WebSocket-shaped
 * `webTransportSocketClass` (one bidirectional stream, length-prefixed frames, subprotocol preamble, close codes
 * in the session's close info — the relay's mapping).
 *
 * Certificates. Without a pin, the library connects with Node's TLS defaults: the chain must lead to a CA in
 * Node's store (its bundled Mozilla roots plus `NODE_EXTRA_CA_CERTS`) and the certificate must name the host —
 * the same rule as `wss://`. With `serverCertificateHashes` the library turns CA validation off and checks the
 * hash itself, but (1.6.8) only when Node's own check failed: a certificate that chains to a trusted CA passes
 * **whatever its hash and host name** (its identity callback returns `false` on a mismatch, which Node reads as
 * "no error"). So a pinned gateway would accept any publicly trusted certificate — an interceptor's too. The
 * pin is therefore checked again here, on the TLS socket's certificate, before the session is used (before
 * `hello` carries the gateway assertion); if that socket cannot be reached the connection is refused (fail
 * closed). The library also refuses pinned certificates valid for more than 14 days (the WebTransport rule for
 * `serverCertificateHashes`) unless they chain to a trusted CA.
 */
import {
  type WebTransportConstructor,
  type WebTransportLike,
  type WebTransportSocket,
  webTransportSocketClass,
} from '@scanrelay/protocol';
import type { Logger } from '../log.js';
import type { LinkSocket, OpenSocket, SocketHandlers } from './socket.js';

export interface WebTransportOptions {
  /** Pinned SHA-256 of the relay's certificate, 64 lowercase hex characters (self-signed or private CA). */
  certSha256?: string | undefined;
  logger: Logger;
}

/** Load the WebTransport implementation. Rejects when the package is missing or cannot load. */
export async function loadWebTransport(): Promise<WebTransportConstructor> {
  const mod = (await import('@fails-components/webtransport')) as unknown as { WebTransport?: unknown };
  if (typeof mod.WebTransport !== 'function')
    throw new Error('@fails-components/webtransport does not export WebTransport');
  return mod.WebTransport as WebTransportConstructor;
}

type PeerCertificate = { fingerprint256?: string };
/** The library's TLS socket, reached through its internals (1.6.8): session → client → HTTP/2 client → socket. */
function peerCertificate(transport: unknown): PeerCertificate | undefined {
  const socket = (
    transport as {
      sessionint?: {
        parentobj?: { transportInt?: { clientInt?: { socket?: { getPeerCertificate?: () => PeerCertificate } } } };
      };
    }
  ).sessionint?.parentobj?.transportInt?.clientInt?.socket;
  return typeof socket?.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
}

/** Refused because the relay's certificate does not match the pin (or could not be read). */
export class PinMismatchError extends Error {
  readonly code = 'webtransport_pin_mismatch';
}

/** Wrap an implementation so `ready` resolves only once the peer certificate matches `pin`. */
export function pinnedWebTransport(Impl: WebTransportConstructor, pin: string, log: Logger): WebTransportConstructor {
  return class PinnedWebTransport implements WebTransportLike {
    readonly ready: Promise<unknown>;
    readonly closed: Promise<{ closeCode?: number; reason?: string }>;
    private readonly inner: WebTransportLike;
    constructor(url: string, options?: Record<string, unknown>) {
      this.inner = new Impl(url, options);
      this.closed = this.inner.closed;
      this.ready = this.inner.ready.then((value) => {
        const cert = peerCertificate(this.inner);
        const got = cert?.fingerprint256?.replace(/:/g, '').toLowerCase();
        if (got === pin) return value;
        const message =
          got === undefined
            ? 'cannot read the WebTransport certificate to check SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256 ' +
              '(has @fails-components/webtransport changed?); refusing the connection'
            : `the relay's WebTransport certificate (sha256 ${got}) does not match ` +
              'SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256; refusing the connection — check the relay certificate ' +
              'or update the pin';
        log.error({ url }, message);
        throw new PinMismatchError(message);
      });
    }
    createBidirectionalStream() {
      return this.inner.createBidirectionalStream();
    }
    close(info?: { closeCode?: number; reason?: string }) {
      this.inner.close(info);
    }
  };
}

/** An `OpenSocket` over WebTransport (HTTP/2). */
export function webTransportOpener(Impl: WebTransportConstructor, options: WebTransportOptions): OpenSocket {
  const pin = options.certSha256;
  const transportOptions: Record<string, unknown> = { forceReliable: true };
  if (pin) transportOptions.serverCertificateHashes = [{ algorithm: 'sha-256', value: Buffer.from(pin, 'hex') }];
  const Socket = webTransportSocketClass(pin ? pinnedWebTransport(Impl, pin, options.logger) : Impl, transportOptions);
  return (url: string, subprotocol: string, handlers: SocketHandlers): LinkSocket => {
    const s: WebTransportSocket = new Socket(url, [subprotocol]);
    let resolveClosed!: () => void;
    const whenClosed = new Promise<void>((resolve) => {
      resolveClosed = resolve;
    });
    s.onopen = () => handlers.open();
    s.onmessage = (e) =>
      typeof e.data === 'string'
        ? handlers.message(Buffer.from(e.data, 'utf8'), false)
        : handlers.message(Buffer.from(e.data), true);
    s.onerror = (e) => handlers.error((e.error as Error | undefined)?.message ?? 'WebTransport error', false);
    s.onclose = (e) => {
      resolveClosed();
      handlers.close(e.code, e.reason.slice(0, 123));
    };
    return {
      kind: 'webtransport',
      get protocol() {
        return s.protocol;
      },
      get bufferedAmount() {
        return s.bufferedAmount;
      },
      get isOpen() {
        return s.readyState === s.OPEN;
      },
      get isClosed() {
        return s.readyState === s.CLOSED;
      },
      whenClosed,
      send: (frame) => s.send(frame),
      // No transport-level ping on a WebTransport session: the protocol ping every interval proves liveness.
      ping: () => undefined,
      close: (code, reason) => s.close(code, reason),
      // No abortive close in the WebTransport API: close the session (the relay sees 1001, going away).
      terminate: () => s.close(1001, 'going away'),
    };
  };
}
