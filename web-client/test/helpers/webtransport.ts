import { connect } from 'node:http2';
import type { WebTransportConstructor, WebTransportLike } from '@scanrelay/protocol';
import { makeSelfSignedCertificate } from '../../../relay/test/helpers/certificate.js';

export interface TestCertificate {
  cert: string;
  key: string;
  /** SHA-256 of the certificate's DER, hex. */
  sha256: string;
  remove(): void;
}

/** A fresh self-signed P-256 certificate for 127.0.0.1 in a temp dir (the shared helper's, in this shape). */
export function makeCertificate(): TestCertificate {
  const made = makeSelfSignedCertificate('web-client-wt-');
  return { cert: made.certPath, key: made.keyPath, sha256: made.sha256Hex, remove: made.remove };
}

/** Node's WebTransport, wrapped to count the sessions the client under test opens. */
export async function countingWebTransport(): Promise<{ WebTransport: WebTransportConstructor; opened: () => number }> {
  const { WebTransport } = (await import('@fails-components/webtransport')) as unknown as {
    WebTransport: WebTransportConstructor;
  };
  let opened = 0;
  class Counting implements WebTransportLike {
    readonly #inner: WebTransportLike;
    readonly ready: WebTransportLike['ready'];
    readonly closed: WebTransportLike['closed'];
    constructor(url: string, options?: Record<string, unknown>) {
      opened++;
      this.#inner = new WebTransport(url, options);
      this.ready = this.#inner.ready;
      this.closed = this.#inner.closed;
    }
    createBidirectionalStream() {
      return this.#inner.createBidirectionalStream();
    }
    close(info?: { closeCode?: number; reason?: string }) {
      this.#inner.close(info);
    }
  }
  return { WebTransport: Counting, opened: () => opened };
}

/** An in-memory `sessionStorage` stand-in. */
export function memoryStorage(): {
  getItem(k: string): string | null;
  setItem(k: string, v: string): void;
  map: Map<string, string>;
} {
  const map = new Map<string, string>();
  return { map, getItem: (k) => map.get(k) ?? null, setItem: (k, v) => void map.set(k, v) };
}

/**
 * Make WebTransport CONNECTs carry `Origin: origin`, as a browser's do. The Node implementation sends its host
 * name instead (not an origin, so the relay's browser endpoint refuses it with 403). Patches the HTTP/2 client
 * session's `request` in this test process only; returns the undo.
 */
export function browserOriginOnWebTransport(origin: string): () => void {
  const probe = connect('https://127.0.0.1:9');
  probe.on('error', () => undefined);
  const proto = Object.getPrototypeOf(probe) as {
    request: (headers: Record<string, unknown>, ...rest: unknown[]) => unknown;
  };
  probe.destroy();
  const original = proto.request;
  proto.request = function (this: unknown, headers: Record<string, unknown>, ...rest: unknown[]) {
    const h = headers?.[':protocol'] === 'webtransport' ? { ...headers, origin } : headers;
    return original.call(this, h, ...rest);
  };
  return () => {
    proto.request = original;
  };
}
