import { connect } from 'node:http2';
import { type WebTransportConstructor, type WebTransportSocket, webTransportSocketClass } from '@scanrelay/protocol';
import { makeSelfSignedCertificate } from '../helpers/certificate.js';

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
  const made = makeSelfSignedCertificate('relay-wt-suite-');
  certificate = { certPath: made.certPath, keyPath: made.keyPath, sha256: made.sha256, remove: made.remove };
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
