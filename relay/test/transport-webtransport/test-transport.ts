/**
 * What the relay test fixture and test client need to run the protocol suites over WebTransport
 * (SCANRELAY_TEST_TRANSPORT=webtransport, set by on-webtransport/*.test.ts through ./protocol-suite.ts):
 *
 * - a self-signed P-256 certificate made with openssl once per test file, pinned by its SHA-256;
 * - {@link WtTestSocket}: `webTransportSocketClass` over `@fails-components/webtransport` (HTTP/2 transport,
 *   `forceReliable`) shaped like the subset of a `ws` WebSocket that helpers/client.ts uses;
 * - a per-connection Origin: that library always sends `origin: <hostname>` and ignores a `headers` option
 *   (engineer J's finding, web-client/test/helpers/webtransport.ts). The wanted Origin rides in a query
 *   parameter of the CONNECT URL, and a patch of the HTTP/2 client's `request` (this test process only) moves
 *   it into the `origin` header and strips the parameter again, so the relay sees exactly a browser's CONNECT.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type WebTransportConstructor, type WebTransportSocket, webTransportSocketClass } from '@scanrelay/protocol';

export const onWebTransport = (): boolean => process.env.SCANRELAY_TEST_TRANSPORT === 'webtransport';

export interface TestCertificate {
  certPath: string;
  keyPath: string;
  sha256: Uint8Array;
  remove(): void;
}

let certificate: TestCertificate | undefined;

/** This test file's certificate (made on first use; {@link removeCertificate} deletes it). */
export function testCertificate(): TestCertificate {
  if (certificate) return certificate;
  const dir = mkdtempSync(join(tmpdir(), 'relay-wt-suite-'));
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
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
      keyPath,
      '-out',
      certPath,
      '-days',
      '2', // serverCertificateHashes accepts certificates valid for at most 14 days
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  const sha256 = createHash('sha256')
    .update(new X509Certificate(readFileSync(certPath)).raw)
    .digest();
  certificate = { certPath, keyPath, sha256, remove: () => rmSync(dir, { recursive: true, force: true }) };
  return certificate;
}

export function removeCertificate(): void {
  certificate?.remove();
  certificate = undefined;
}

const ORIGIN_PARAM = 'scanrelay-test-origin';
const ID_PARAM = 'scanrelay-test-id';
/** HTTP status of each test CONNECT by id: the library reports a refusal only as "Opening handshake failed". */
const connectStatus = new Map<string, number>();
let nextId = 0;
let patched = false;

/**
 * Move `?scanrelay-test-origin=…` of a WebTransport CONNECT into its `origin` header (absent when empty),
 * strip `scanrelay-test-id`, and note the response status under that id.
 */
function patchHttp2Origin(): void {
  if (patched) return;
  patched = true;
  const probe = connect('https://127.0.0.1:9');
  probe.on('error', () => undefined);
  const proto = Object.getPrototypeOf(probe) as {
    request: (headers: Record<string, unknown>, ...rest: unknown[]) => unknown;
  };
  probe.destroy();
  const original = proto.request;
  proto.request = function (this: unknown, headers: Record<string, unknown>, ...rest: unknown[]) {
    const path = headers?.[':path'];
    if (headers?.[':protocol'] !== 'webtransport' || typeof path !== 'string')
      return original.call(this, headers, ...rest);
    const url = new URL(path, 'https://x');
    const origin = url.searchParams.get(ORIGIN_PARAM);
    const id = url.searchParams.get(ID_PARAM);
    url.searchParams.delete(ORIGIN_PARAM);
    url.searchParams.delete(ID_PARAM);
    const h: Record<string, unknown> = { ...headers, ':path': `${url.pathname}${url.search}` };
    delete h.origin;
    if (origin) h.origin = origin;
    const stream = original.call(this, h, ...rest) as {
      once(e: 'response', l: (headers: Record<string, unknown>) => void): void;
    };
    if (id !== null) {
      stream.once('response', (res) => connectStatus.set(id, Number(res[':status'])));
    }
    return stream;
  };
}

type WsEvent = 'open' | 'message' | 'close' | 'error' | 'refused';

/**
 * A WebTransport connection with the `ws` surface helpers/client.ts uses: `on(event)`, `send(data)`,
 * `protocol`, `readyState`, `terminate()`; `refused` fires with the HTTP status of a refused CONNECT.
 */
export class WtTestSocket {
  static readonly OPEN = 1;
  static readonly CONNECTING = 0;
  readonly #socket: WebTransportSocket;
  readonly #listeners = new Map<WsEvent, Array<(...args: unknown[]) => void>>();
  #opened = false;

  private constructor(
    url: string,
    protocols: string[],
    Impl: WebTransportConstructor,
    hash: Uint8Array,
    private readonly id: string,
  ) {
    const Socket = webTransportSocketClass(Impl, {
      serverCertificateHashes: [{ algorithm: 'sha-256', value: hash }],
      forceReliable: true,
    });
    this.#socket = new Socket(url, protocols);
    this.#socket.addEventListener('open', (() => {
      this.#opened = true;
      this.#emit('open');
    }) as never);
    this.#socket.addEventListener('message', ((e: { data: string | ArrayBuffer }) => {
      const binary = typeof e.data !== 'string';
      this.#emit('message', binary ? Buffer.from(e.data as ArrayBuffer) : Buffer.from(e.data as string), binary);
    }) as never);
    this.#socket.addEventListener('close', ((e: { code: number; reason: string }) => {
      const status = connectStatus.get(this.id);
      connectStatus.delete(this.id);
      if (!this.#opened && status !== undefined && status !== 200) this.#emit('refused', status);
      this.#emit('close', e.code, Buffer.from(e.reason));
    }) as never);
    this.#socket.addEventListener('error', ((e: { error?: unknown }) => this.#emit('error', e.error)) as never);
  }

  /** Open `url` (https://…/v1/browser|gateway) offering `protocols`, with the CONNECT carrying `origin`. */
  static async open(url: string, protocols: string[], origin: string | undefined): Promise<WtTestSocket> {
    patchHttp2Origin();
    const { WebTransport } = (await import('@fails-components/webtransport')) as unknown as {
      WebTransport: WebTransportConstructor;
    };
    const u = new URL(url);
    const id = String(++nextId);
    u.searchParams.set(ORIGIN_PARAM, origin ?? '');
    u.searchParams.set(ID_PARAM, id);
    return new WtTestSocket(u.toString(), protocols, WebTransport, testCertificate().sha256, id);
  }

  get protocol(): string {
    return this.#socket.protocol;
  }

  get readyState(): number {
    return this.#socket.readyState;
  }

  on(event: WsEvent, listener: (...args: never[]) => void): this {
    const list = this.#listeners.get(event) ?? [];
    list.push(listener as (...args: unknown[]) => void);
    this.#listeners.set(event, list);
    return this;
  }

  once(event: WsEvent, listener: (...args: never[]) => void): this {
    const wrapped = (...args: unknown[]): void => {
      const list = this.#listeners.get(event) ?? [];
      list.splice(list.indexOf(wrapped), 1);
      (listener as (...a: unknown[]) => void)(...args);
    };
    return this.on(event, wrapped);
  }

  /** WebTransport frames carry no text/binary flag: the bytes go as they are (strings as UTF-8). */
  send(data: string | Uint8Array): void {
    this.#socket.send(data);
  }

  close(code?: number, reason?: string): void {
    this.#socket.close(code, reason);
  }

  /** Drop the session (close info 1006, as an abrupt TCP end on WebSocket). */
  terminate(): void {
    this.#socket.close(1006, '');
  }

  #emit(event: WsEvent, ...args: unknown[]): void {
    for (const l of [...(this.#listeners.get(event) ?? [])]) l(...args);
  }
}
