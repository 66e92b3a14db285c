/**
 * WebTransport test helpers: a self-signed ECDSA certificate made with openssl at test time (valid 2 days, so
 * `serverCertificateHashes` accepts it) and its SHA-256 pin, and Node's WebTransport implementation
 * (`@fails-components/webtransport`, pure-JS HTTP/2 transport) with a counter of sessions opened.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WebTransportConstructor, WebTransportLike } from '@scanrelay/protocol';

export interface TestCertificate {
  cert: string;
  key: string;
  /** SHA-256 of the certificate's DER, hex. */
  sha256: string;
  remove(): void;
}

/** A fresh self-signed P-256 certificate for 127.0.0.1 in a temp dir. */
export function makeCertificate(): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'web-client-wt-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  const sha256 = createHash('sha256')
    .update(new X509Certificate(readFileSync(cert)).raw)
    .digest('hex');
  return { cert, key, sha256, remove: () => rmSync(dir, { recursive: true, force: true }) };
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
