/**
 * HTTP/3 WebTransport through the Go sidecar (`relay/wt-sidecar`, quic-go + webtransport-go).
 *
 * The relay starts and supervises the sidecar; the sidecar terminates QUIC/HTTP3 and hands each session to
 * the relay over loopback TCP (one local connection per session, authenticated by a per-start random secret
 * sent in the first frame). This file presents that channel as the same structural `WtServer`/`WtSession`
 * the WebTransport adapter (`webtransport.ts`) drives, so preamble, caps, frame limits, slow-reader cut-off,
 * close codes and shutdown are the adapter's code, unchanged.
 *
 * ```
 *  sidecar ── OPEN {secret, path, origin, peer} ──▶ here: secret check, then the adapter's request callback
 *  sidecar ◀── ADMIT {status} ── (403/404/429/503 are answered to the browser before the session exists)
 *  sidecar ── STREAM, DATA… ──▶ session.incomingBidirectionalStreams / stream.readable
 *  sidecar ◀── DATA…, FIN, CLOSE {code, reason} ── stream.writable / session.close
 * ```
 * Local frames: [type u8][len u32 BE][payload].
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';

const OPEN = 1;
const ADMIT = 2;
const STREAM = 3;
const DATA = 4;
const FIN = 5;
const CLOSE = 6;
/** Sidecar → relay frames carry at most one 32 KiB stream read; anything larger is a broken peer. */
const MAX_LOCAL_FRAME = 256 * 1024;
/** Pause the local socket when this many stream chunks wait for the adapter's reader. */
const MAX_QUEUED_CHUNKS = 64;

export interface SidecarOptions {
  binary: string;
  /** UDP address the sidecar binds, e.g. `0.0.0.0:4433`. */
  listen: string;
  /** Browser Origin allowlist (the relay's `allowedOrigins`), checked before the session is accepted. */
  origins: readonly string[];
  /** PEM files; both unset → the sidecar makes a 13-day ECDSA P-256 dev certificate and reports its hash. */
  certFile?: string;
  keyFile?: string;
  paths: readonly string[];
  logger: Logger;
}

type Header = Record<string, string | undefined>;
type RequestCallback = (req: { header: Header }) => Promise<{ status: number }>;

function frame(type: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const head = Buffer.allocUnsafe(5);
  head[0] = type;
  head.writeUInt32BE(payload.byteLength, 1);
  return Buffer.concat([head, payload]);
}

/** Reads local frames off a socket. */
class LocalFrames {
  private buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): Array<{ type: number; payload: Buffer }> {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Array<{ type: number; payload: Buffer }> = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (len > MAX_LOCAL_FRAME) throw new Error('local frame too large');
      if (this.buf.length < 5 + len) break;
      out.push({ type: this.buf[0]!, payload: this.buf.subarray(5, 5 + len) });
      this.buf = this.buf.subarray(5 + len);
    }
    return out;
  }
}

/** A pull queue with an end, feeding `read()` calls. */
class Queue<T> {
  private items: T[] = [];
  private waiters: Array<(r: { done: boolean; value?: T }) => void> = [];
  private ended = false;
  constructor(private readonly onDrain?: () => void) {}
  get length(): number {
    return this.items.length;
  }
  push(v: T): void {
    const w = this.waiters.shift();
    if (w) w({ done: false, value: v });
    else this.items.push(v);
  }
  end(): void {
    this.ended = true;
    for (const w of this.waiters.splice(0)) w({ done: true });
  }
  read(): Promise<{ done: boolean; value?: T }> {
    const v = this.items.shift();
    if (v !== undefined) {
      if (this.items.length === 0) this.onDrain?.();
      return Promise.resolve({ done: false, value: v });
    }
    if (this.ended) return Promise.resolve({ done: true });
    return new Promise((r) => this.waiters.push(r));
  }
}

/** The adapter's view of the one bidi stream (the shape of the library's stream). */
interface SidecarStream {
  readable: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> } };
  writable: {
    getWriter(): {
      readonly desiredSize: number | null;
      write(chunk: Uint8Array): Promise<void>;
      close(): Promise<void>;
      abort(): Promise<void>;
    };
  };
}

/** One session carried over one local socket, shaped like the library's session. */
class SidecarSession {
  readonly ready = Promise.resolve();
  readonly closed: Promise<{ closeCode?: number; reason?: string }>;
  readonly header: Header;
  readonly peerAddress: string;
  private resolveClosed!: (info: { closeCode?: number; reason?: string }) => void;
  private readonly streams = new Queue<SidecarStream>();
  private readonly chunks: Queue<Uint8Array>;
  private done = false;

  constructor(
    private readonly socket: Socket,
    path: string,
    origin: string | undefined,
    peer: string,
  ) {
    this.header = { ':path': path, origin };
    this.peerAddress = peer;
    this.closed = new Promise((r) => {
      this.resolveClosed = r;
    });
    this.chunks = new Queue<Uint8Array>(() => socket.resume());
    socket.on('close', () => this.finish(1006, ''));
  }

  readonly incomingBidirectionalStreams = { getReader: () => ({ read: () => this.streams.read() }) };

  onFrame(type: number, payload: Buffer): void {
    if (type === STREAM) {
      const socket = this.socket;
      const chunks = this.chunks;
      this.streams.push({
        readable: { getReader: () => ({ read: () => chunks.read(), cancel: async () => {} }) },
        writable: {
          getWriter: () => ({
            desiredSize: 1,
            write: (chunk: Uint8Array) =>
              new Promise<void>((res, rej) => {
                if (socket.destroyed) rej(new Error('closed'));
                else socket.write(frame(DATA, chunk), (err) => (err ? rej(err) : res()));
              }),
            close: async () => {
              if (!socket.destroyed) socket.write(frame(FIN));
            },
            abort: async () => {
              this.close({ closeCode: 1006, reason: '' });
            },
          }),
        },
      });
    } else if (type === DATA) {
      this.chunks.push(new Uint8Array(payload));
      if (this.chunks.length > MAX_QUEUED_CHUNKS) this.socket.pause();
    } else if (type === CLOSE && payload.length >= 4) {
      this.finish(payload.readUInt32BE(0), payload.subarray(4).toString('utf8'));
    }
  }

  close(info?: { closeCode: number; reason: string }): void {
    if (this.socket.destroyed) return;
    const reason = Buffer.from(info?.reason ?? '', 'utf8');
    const p = Buffer.allocUnsafe(4 + reason.length);
    p.writeUInt32BE(info?.closeCode ?? 0, 0);
    reason.copy(p, 4);
    this.socket.end(frame(CLOSE, p));
    this.finish(info?.closeCode ?? 0, info?.reason ?? '');
  }

  private finish(code: number, reason: string): void {
    if (this.done) return;
    this.done = true;
    this.streams.end();
    this.chunks.end();
    this.resolveClosed({ closeCode: code, reason });
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}

/**
 * The sidecar-backed server: a loopback listener for the sidecar's sessions plus the supervised child.
 * `startServer` spawns the child (restarted with backoff if it exits); `ready` settles on its `listening`.
 */
export class SidecarWtServer {
  readonly ready: Promise<unknown>;
  readonly closed: Promise<unknown>;
  /** Base64 SHA-256 of the dev certificate (browsers pass it as `serverCertificateHashes`); '' in production. */
  certHash = '';
  private readonly secret = randomBytes(32);
  private readonly local: Server;
  private readonly queues = new Map<string, Queue<SidecarSession>>();
  private requestCallback: RequestCallback | undefined;
  private child: ChildProcess | undefined;
  private stopping = false;
  private backoffMs = 250;
  private udpPort = 0;
  private resolveReady!: (v: unknown) => void;
  private rejectReady!: (e: Error) => void;
  private resolveClosed!: (v: unknown) => void;

  constructor(private readonly options: SidecarOptions) {
    for (const p of options.paths) this.queues.set(p, new Queue<SidecarSession>());
    this.ready = new Promise((res, rej) => {
      this.resolveReady = res;
      this.rejectReady = rej;
    });
    this.ready.catch(() => {});
    this.closed = new Promise((r) => {
      this.resolveClosed = r;
    });
    this.local = createServer((socket) => this.onLocal(socket));
  }

  setRequestCallback(cb: RequestCallback): void {
    this.requestCallback = cb;
  }

  sessionStream(path: string) {
    const q = this.queues.get(path)!;
    return { getReader: () => ({ read: () => q.read() }) };
  }

  address(): { port: number; host: string } | null {
    return this.udpPort ? { port: this.udpPort, host: this.options.listen.replace(/:\d+$/, '') } : null;
  }

  startServer(): void {
    if (!existsSync(this.options.binary)) {
      this.rejectReady(
        new Error(
          `HTTP/3 WebTransport sidecar not found at ${this.options.binary} (build it: cd relay/wt-sidecar && go build -o bin/wt-sidecar .)`,
        ),
      );
      return;
    }
    this.local.listen(0, '127.0.0.1', () => this.spawnChild());
  }

  stopServer(): void {
    this.stopping = true;
    for (const q of this.queues.values()) q.end();
    this.child?.stdin?.end(); // the sidecar exits when its stdin closes
    const child = this.child;
    setTimeout(() => child?.kill('SIGKILL'), 1500).unref();
    this.local.close(() => this.resolveClosed(undefined));
  }

  private spawnChild(): void {
    const addr = this.local.address();
    const relayPort = typeof addr === 'object' && addr ? addr.port : 0;
    const log = this.options.logger;
    const child = spawn(this.options.binary, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.stdin!.write(
      `${JSON.stringify({
        listen: this.options.listen,
        relay: `127.0.0.1:${relayPort}`,
        secret: this.secret.toString('hex'),
        origins: this.options.origins,
        cert: this.options.certFile ?? '',
        key: this.options.keyFile ?? '',
        paths: this.options.paths,
      })}\n`,
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let ev: { event?: string; addr?: string; certHash?: string; code?: string; message?: string };
      try {
        ev = JSON.parse(line) as typeof ev;
      } catch {
        return;
      }
      if (ev.event === 'listening') {
        this.udpPort = Number(ev.addr?.split(':').pop());
        this.certHash = ev.certHash ?? '';
        this.backoffMs = 250;
        this.resolveReady(undefined);
      } else if (ev.event === 'fatal') {
        log.error({ code: ev.code, err: ev.message }, 'HTTP/3 WebTransport sidecar failed');
        this.rejectReady(new Error(`HTTP/3 sidecar: ${ev.code}: ${ev.message}`));
      }
    });
    createInterface({ input: child.stderr! }).on('line', (line) =>
      log.debug({ sidecar: line.slice(0, 300) }, 'sidecar stderr'),
    );
    child.on('error', (err) => this.rejectReady(err));
    child.on('exit', (code, signal) => {
      if (this.stopping) return;
      log.warn({ code, signal, retryMs: this.backoffMs }, 'HTTP/3 WebTransport sidecar exited; restarting');
      const wait = this.backoffMs;
      this.backoffMs = Math.min(this.backoffMs * 2, 10_000);
      setTimeout(() => {
        if (!this.stopping) this.spawnChild();
      }, wait).unref();
    });
  }

  private onLocal(socket: Socket): void {
    socket.setNoDelay(true);
    const frames = new LocalFrames();
    let session: SidecarSession | undefined;
    const deadline = setTimeout(() => socket.destroy(), 5000);
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      let list: Array<{ type: number; payload: Buffer }>;
      try {
        list = frames.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const f of list) {
        if (session) session.onFrame(f.type, f.payload);
        else if (f.type === OPEN) {
          clearTimeout(deadline);
          socket.pause();
          this.open(socket, f.payload).then(
            (s) => {
              session = s;
              socket.resume();
            },
            () => socket.destroy(),
          );
          return; // frames after OPEN wait for the ADMIT round trip (the sidecar sends none before it)
        } else socket.destroy();
      }
    });
  }

  private async open(socket: Socket, payload: Buffer): Promise<SidecarSession | undefined> {
    const req = JSON.parse(payload.toString('utf8')) as {
      secret?: string;
      path?: string;
      origin?: string;
      peer?: string;
    };
    const given = Buffer.from(String(req.secret ?? ''), 'hex');
    if (given.length !== this.secret.length || !timingSafeEqual(given, this.secret)) {
      socket.destroy();
      return undefined;
    }
    const path = String(req.path ?? '');
    const origin = req.origin ? String(req.origin) : undefined;
    const peer = String(req.peer ?? '');
    const queue = this.queues.get(path);
    const { status } = queue
      ? ((await this.requestCallback?.({ header: { ':path': path, origin, ':peer-address': peer } })) ?? {
          status: 503,
        })
      : { status: 404 };
    socket.write(frame(ADMIT, Buffer.from(JSON.stringify({ status }))));
    if (status !== 200 || !queue) {
      socket.end();
      return undefined;
    }
    const session = new SidecarSession(socket, path, origin, peer);
    queue.push(session);
    return session;
  }
}
