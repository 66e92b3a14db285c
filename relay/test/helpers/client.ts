/**
 * A protocol-speaking WebSocket test client (browser or gateway side) over the real `ws` client library.
 * Every frame the relay sends is decoded AND validated against the protocol schema for its direction, so any
 * test using this client also proves the relay only sends valid protocol v1 messages.
 *
 * ```ts
 * const c = await TestClient.connect(`ws://127.0.0.1:${port}/v1/browser`, { origin: ORIGIN });
 * c.send({ type: 'hello', token });
 * const welcome = await c.next('welcome');
 * const { code } = await c.closed;
 * ```
 */
import {
  type AnyMessage,
  type Codec,
  decodeFrame,
  encodeMessage,
  SUBPROTOCOLS,
  validateMessage,
} from '@scanrelay/protocol';
import WebSocket from 'ws';
import { WtTestSocket } from '../transport-webtransport/test-transport.js';

export type Msg = Record<string, unknown> & { type: string };

export interface ConnectOptions {
  codec?: Codec;
  origin?: string;
  /** Override the offered subprotocols entirely. */
  protocols?: string[];
  /** Headers to add (e.g. a forged X-Forwarded-For). */
  headers?: Record<string, string>;
}

const WAIT_MS = 5_000;

export class TestClient {
  readonly received: Msg[] = [];
  #unread: Msg[] = [];
  #waiters: { match: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Frames that failed protocol validation (a relay bug if ever non-empty). */
  readonly invalid: unknown[] = [];

  private constructor(
    readonly ws: WebSocket,
    readonly codec: Codec,
    readonly direction: 'relay→browser' | 'relay→gateway',
  ) {
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    ws.on('error', () => undefined);
    ws.on('message', (data, isBinary) => this.#onFrame(data as Buffer, isBinary));
  }

  static connect(url: string, opts: ConnectOptions = {}): Promise<TestClient> {
    const codec = opts.codec ?? 'json';
    const protocols = opts.protocols ?? [SUBPROTOCOLS[codec]];
    const direction = url.includes('/v1/gateway') ? 'relay→gateway' : 'relay→browser';
    // https:// is the relay's WebTransport listener (SCANRELAY_TEST_TRANSPORT=webtransport, see
    // relay/test/transport-webtransport): the same client over a WebSocket-shaped WebTransport session.
    if (url.startsWith('https:')) return TestClient.#connectWebTransport(url, protocols, codec, direction, opts);
    const ws = new WebSocket(url, protocols, {
      perMessageDeflate: false,
      ...(opts.origin ? { origin: opts.origin } : {}),
      ...(opts.headers ? { headers: opts.headers } : {}),
    });
    const client = new TestClient(ws, codec, direction);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => reject(new UpgradeRefused(res.statusCode ?? 0)));
      ws.once('error', reject);
    });
  }

  static async #connectWebTransport(
    url: string,
    protocols: string[],
    codec: Codec,
    direction: 'relay→browser' | 'relay→gateway',
    opts: ConnectOptions,
  ): Promise<TestClient> {
    const socket = await WtTestSocket.open(url, protocols, opts.origin);
    // WtTestSocket has the part of the ws API this class uses.
    const client = new TestClient(socket as unknown as WebSocket, codec, direction);
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(client));
      socket.once('refused', (status: number) => reject(new UpgradeRefused(status)));
      socket.once('close', (code: number) =>
        reject(new Error(`WebTransport session closed (${code}) before it opened`)),
      );
    });
  }

  #onFrame(data: Buffer, isBinary: boolean): void {
    let msg: Msg;
    try {
      msg = validateMessage(this.direction, decodeFrame(this.codec, data, isBinary, 1 << 24)) as unknown as Msg;
    } catch (err) {
      this.invalid.push({ err: String(err), frame: data.toString('utf8').slice(0, 500) });
      return;
    }
    this.received.push(msg);
    const i = this.#waiters.findIndex((w) => w.match(msg));
    if (i >= 0) {
      const [w] = this.#waiters.splice(i, 1);
      w!.resolve(msg);
      return;
    }
    this.#unread.push(msg);
  }

  /** Send a message (encoded with this client's codec). */
  send(msg: Msg | AnyMessage): void {
    this.ws.send(encodeMessage(this.codec, msg as AnyMessage));
  }

  /** Send raw bytes or text as they are. */
  sendRaw(data: string | Buffer | Uint8Array, binary?: boolean): void {
    if (this.ws instanceof WtTestSocket)
      this.ws.send(data); // WebTransport frames have no text/binary flag
    else this.ws.send(data, { binary: binary ?? typeof data !== 'string' });
  }

  /**
   * The next unread message of `type` (and matching `where`), waiting for it if needed. Messages of other
   * types stay unread for later calls.
   */
  next<T extends Msg = Msg>(type: string, where: (m: Msg) => boolean = () => true, timeoutMs = WAIT_MS): Promise<T> {
    const match = (m: Msg): boolean => m.type === type && where(m);
    const i = this.#unread.findIndex(match);
    if (i >= 0) return Promise.resolve(this.#unread.splice(i, 1)[0] as T);
    return new Promise<T>((resolve, reject) => {
      const waiter = { match, resolve: resolve as (m: Msg) => void };
      this.#waiters.push(waiter);
      const timer = setTimeout(() => {
        const idx = this.#waiters.indexOf(waiter);
        if (idx >= 0) this.#waiters.splice(idx, 1);
        reject(
          new Error(
            `no "${type}" message within ${timeoutMs} ms; unread: ${JSON.stringify(this.#unread.map((m) => m.type))}`,
          ),
        );
      }, timeoutMs);
      timer.unref();
      void this.closed.then(() => undefined);
    });
  }

  /** Unread messages of `type` right now (consumed). */
  drain(type?: string): Msg[] {
    const out = this.#unread.filter((m) => type === undefined || m.type === type);
    this.#unread = this.#unread.filter((m) => !(type === undefined || m.type === type));
    return out;
  }

  /** Send ping{ref} and wait for its pong: everything the relay sent before it has arrived. */
  async roundTrip(): Promise<void> {
    const ref = `rt-${Math.random().toString(36).slice(2)}`;
    this.send({ type: 'ping', ref });
    await this.next('pong', (m) => m.ref === ref);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    // (WtTestSocket uses the same readyState numbers.)
  }
}

/** The relay refused the upgrade with this HTTP status. */
export class UpgradeRefused extends Error {
  constructor(readonly status: number) {
    super(`upgrade refused with HTTP ${status}`);
  }
}

/** Try an upgrade; resolve with the HTTP status it was refused with, or 101 when it was accepted. */
export async function upgradeStatus(url: string, opts: ConnectOptions = {}): Promise<number> {
  try {
    const c = await TestClient.connect(url, opts);
    c.close();
    return 101;
  } catch (err) {
    if (err instanceof UpgradeRefused) return err.status;
    throw err;
  }
}
