/**
 * Transport choice: WebTransport first when it is configured and an implementation exists, WebSocket otherwise —
 * and WebSocket for the rest of the browser session once WebTransport has failed to open, so later reconnects
 * do not pay the failed attempt again (remembered in memory and, in browsers, in `sessionStorage`).
 *
 * WebTransport carries the same protocol v1 envelopes through the protocol package's WebSocket-shaped
 * `webTransportSocketClass` (one bidirectional stream, length-prefixed frames, subprotocol preamble, close codes
 * in the session's close info), so the client's state machine does not know which transport it is on.
 */
import { PATHS, ProtocolError, type WebTransportConstructor, webTransportSocketClass } from '@scanrelay/protocol';
import { ScanRelayError } from './errors.js';
import type { WebSocketConstructor } from './types.js';

/** Which transport carries the connection. */
export type TransportKind = 'webtransport' | 'websocket';

/** A certificate hash the browser pins instead of CA validation (W3C WebTransport `serverCertificateHashes`). */
export interface CertificateHash {
  algorithm: 'sha-256';
  /** The SHA-256 of the certificate's DER: bytes, or hex (colons allowed, as `openssl x509 -fingerprint` prints). */
  value: Uint8Array | ArrayBuffer | string;
}

/** Where and how to try WebTransport before WebSocket. */
export interface WebTransportClientOptions {
  /**
   * The relay's WebTransport listener (its `SCANRELAY_WEBTRANSPORT_PORT`): `https://relay.example.org:4433`, or
   * with `/v1/browser`. https only; no credentials, query or fragment.
   */
  url: string;
  /**
   * Pinned certificate hashes, for a relay with a self-signed certificate. Browsers accept these only for an
   * ECDSA certificate valid for at most 14 days. Omit for a CA-issued certificate.
   */
  serverCertificateHashes?: readonly CertificateHash[];
  /** WebTransport implementation. Default `globalThis.WebTransport` (absent → WebSocket straight away). */
  WebTransport?: WebTransportConstructor;
  /** Extra options for the implementation (Node: `{ forceReliable: true, headers: { origin } }`). */
  options?: Record<string, unknown>;
  /** Time allowed for the WebTransport session to open before falling back to WebSocket, ms. Default 5,000. */
  openTimeoutMs?: number;
}

/** The parts of the Web Storage API used to remember the fallback (`sessionStorage` in browsers). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

const STORAGE_PREFIX = 'scanrelay.transport:';

/** Normalise the relay URL to its browser endpoint (ws/wss …/v1/browser). */
export function browserEndpoint(url: string): string {
  const u = new URL(url);
  if (u.username || u.password || u.search || u.hash)
    throw new ScanRelayError('connect_failed', 'the relay URL must not carry credentials, a query or a fragment');
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  else if (u.protocol !== 'ws:' && u.protocol !== 'wss:')
    throw new ScanRelayError('connect_failed', `unsupported relay URL scheme ${u.protocol}`);
  if (!u.pathname.endsWith(PATHS.browser)) u.pathname = u.pathname.replace(/\/$/, '') + PATHS.browser;
  return u.toString();
}

/** Normalise the WebTransport URL to its browser endpoint (https …/v1/browser). */
export function webTransportEndpoint(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch (cause) {
    throw new ScanRelayError('connect_failed', `options.webTransport.url is not a URL: ${url.slice(0, 64)}`, {
      cause,
    });
  }
  if (u.protocol !== 'https:')
    throw new ScanRelayError(
      'connect_failed',
      'options.webTransport.url must be an https:// URL (WebTransport is TLS only)',
    );
  if (u.username || u.password || u.search || u.hash)
    throw new ScanRelayError(
      'connect_failed',
      'options.webTransport.url must not carry credentials, a query or a fragment',
    );
  if (!u.pathname.endsWith(PATHS.browser)) u.pathname = u.pathname.replace(/\/$/, '') + PATHS.browser;
  return u.toString();
}

function toHashBytes(value: CertificateHash['value']): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  const hex = value.replace(/:/g, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hex))
    throw new TypeError(
      'options.webTransport.serverCertificateHashes: a sha-256 value is 64 hex digits (colons allowed)',
    );
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/**
 * The transport policy of one client: which transport to open next, and what it learnt. WebTransport is
 * skipped when no implementation exists or when it already failed to open in this browser session.
 */
export class TransportPolicy {
  readonly #endpoint: string | undefined;
  readonly #Socket: WebSocketConstructor | undefined;
  readonly #storage: StorageLike | undefined;
  readonly #storageKey: string;
  readonly openTimeoutMs: number;
  #fellBack = false;
  /** Set when WebTransport failed in the current attempt; committed once the WebSocket opens. */
  #pending: ScanRelayError | undefined;

  constructor(options: WebTransportClientOptions | undefined, storage: StorageLike | null | undefined) {
    this.openTimeoutMs = options?.openTimeoutMs ?? 5_000;
    if (!(this.openTimeoutMs > 0)) throw new TypeError('options.webTransport.openTimeoutMs must be > 0');
    this.#storage = storage === null ? undefined : (storage ?? defaultStorage());
    if (!options) {
      this.#storageKey = '';
      return;
    }
    this.#endpoint = webTransportEndpoint(options.url);
    this.#storageKey = STORAGE_PREFIX + this.#endpoint;
    const Impl =
      options.WebTransport ?? (globalThis as { WebTransport?: WebTransportConstructor }).WebTransport ?? undefined;
    if (Impl) {
      const hashes = options.serverCertificateHashes?.map((h) => ({
        algorithm: h.algorithm,
        value: toHashBytes(h.value),
      }));
      this.#Socket = webTransportSocketClass(Impl, {
        ...options.options,
        ...(hashes && hashes.length > 0 ? { serverCertificateHashes: hashes } : {}),
      }) as unknown as WebSocketConstructor;
    }
    this.#fellBack = this.#read() === 'websocket';
  }

  /** True when the next connection should try WebTransport. */
  get preferWebTransport(): boolean {
    return this.#Socket !== undefined && !this.#fellBack;
  }

  /** Why WebSocket is used although WebTransport is configured (undefined when it is not configured). */
  get fallbackReason(): string | undefined {
    if (this.#endpoint === undefined) return undefined;
    if (!this.#Socket) return 'no WebTransport implementation in this runtime';
    return this.#fellBack ? 'WebTransport failed to open earlier in this session' : undefined;
  }

  /** Start of an attempt: the WebTransport endpoint and socket class, when it is to be tried. */
  webTransport(): { url: string; Socket: WebSocketConstructor } | undefined {
    this.#pending = undefined;
    return this.preferWebTransport && this.#endpoint ? { url: this.#endpoint, Socket: this.#Socket! } : undefined;
  }

  /** WebTransport failed to open in this attempt (`cause`: the implementation's error); WebSocket is tried next. */
  failed(cause: unknown): void {
    this.#pending = new ScanRelayError(
      'connect_failed',
      'WebTransport failed to open; using WebSocket for the rest of this session ' +
        "(check the relay's WebTransport port, UDP reachability, proxies and certificate)",
      { cause },
    );
  }

  /**
   * A socket of `kind` opened. A WebSocket after a WebTransport failure commits the fallback: WebSocket from now
   * on, in this client and (through storage) this browser session. Returns why WebSocket is used although
   * WebTransport is configured, if it is.
   */
  opened(kind: TransportKind): ScanRelayError | undefined {
    const pending = this.#pending;
    this.#pending = undefined;
    if (kind !== 'websocket') return undefined;
    if (pending) {
      this.#fellBack = true;
      try {
        this.#storage?.setItem(this.#storageKey, 'websocket');
      } catch {
        // Storage full or blocked: the in-memory choice still holds for this client.
      }
      return pending;
    }
    const reason = this.fallbackReason;
    return reason ? new ScanRelayError('connect_failed', `using WebSocket: ${reason}`) : undefined;
  }

  #read(): string | null {
    try {
      return this.#storage?.getItem(this.#storageKey) ?? null;
    } catch {
      return null;
    }
  }
}

/** `sessionStorage` when the runtime has one and lets us use it (sandboxed frames throw on access). */
function defaultStorage(): StorageLike | undefined {
  try {
    return (globalThis as { sessionStorage?: StorageLike }).sessionStorage;
  } catch {
    return undefined;
  }
}

/** A binary frame's bytes, whichever view the socket delivered. */
export function frameBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new ProtocolError('bad_message', 'unsupported frame payload');
}
