/**
 * A browser-protocol client for deploy tests: speaks protocol v1 (JSON subprotocol) over wss through the
 * proxy with an `Origin` header, validates every relay message against the contract, and — like a real
 * browser page — reconnects after a close whose code says so, resuming its subscription from the last
 * `position` it saw. It records everything it receives, so a test can assert that nothing was lost or doubled.
 */
import { EventEmitter } from 'node:events';
import {
  type BrowserCommandStatus,
  closeAction,
  decodeFrame,
  encodeMessage,
  type RelayToBrowser,
  type SiteEvent,
  SUBPROTOCOLS,
  validateMessage,
} from '@scanrelay/protocol';
import WebSocket from 'ws';

export interface BrowserClientOptions {
  /** wss URL of `/v1/browser` (through the proxy). */
  url: string;
  origin: string;
  /** CA certificate(s) to trust for the proxy's TLS certificate. */
  ca: string;
  site: string;
  /** A fresh session token for each (re)connection. */
  token: () => Promise<string>;
}

export interface CloseRecord {
  code: number;
  reason: string;
  node: string | undefined;
}

export class BrowserClient extends EventEmitter {
  readonly events: SiteEvent[] = [];
  readonly statuses: BrowserCommandStatus[] = [];
  readonly closes: CloseRecord[] = [];
  readonly errors: RelayToBrowser[] = [];
  /** Node of each welcome, in order. */
  readonly nodes: string[] = [];
  /** Position of the first `subscribed` (history before it is not this client's business). */
  firstPosition: string | undefined;
  lastPosition: string | undefined;
  private ws: WebSocket | undefined;
  private closed = false;
  private attempt = 0;

  constructor(private readonly opts: BrowserClientOptions) {
    super();
    this.setMaxListeners(100);
  }

  /** The node this client is connected to now (undefined between connections). */
  get node(): string | undefined {
    return this.ws?.readyState === WebSocket.OPEN ? this.nodes.at(-1) : undefined;
  }

  /** Connect, authenticate and subscribe; resolves once subscribed. */
  async start(): Promise<void> {
    await this.connect();
  }

  /** Send a command token; statuses arrive in `statuses` (and as `command.status` site events). */
  command(ref: string, token: string): void {
    this.send({ type: 'command', ref, token });
  }

  /** Close for good (no reconnect). */
  async stop(): Promise<void> {
    this.closed = true;
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolveClose) => {
      ws.once('close', () => resolveClose());
      ws.close(1000);
      setTimeout(() => ws.terminate(), 2_000).unref();
    });
  }

  /** Resolve with the first value `probe` returns (checked now and after every message), or reject on timeout. */
  waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
    return new Promise<T>((resolveWait, reject) => {
      const check = () => {
        const v = probe();
        if (v !== undefined && v !== false) {
          cleanup();
          resolveWait(v);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`browser client: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('message', check);
      };
      this.on('message', check);
      check();
    });
  }

  private send(message: Record<string, unknown>): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error('browser client: not connected');
    ws.send(encodeMessage('json', message) as string);
  }

  private connect(): Promise<void> {
    return new Promise<void>((resolveConnect, reject) => {
      const ws = new WebSocket(this.opts.url, [SUBPROTOCOLS.json], {
        origin: this.opts.origin,
        ca: this.opts.ca,
        perMessageDeflate: false,
        handshakeTimeout: 5_000,
      });
      this.ws = ws;
      let subscribed = false;
      ws.on('error', (err) => {
        if (!subscribed) reject(err);
      });
      ws.on('open', () => {
        this.opts.token().then(
          (token) => ws.send(encodeMessage('json', { type: 'hello', token }) as string),
          (err: unknown) => {
            reject(err);
            ws.terminate();
          },
        );
      });
      ws.on('message', (data, isBinary) => {
        const msg = validateMessage(
          'relay→browser',
          decodeFrame('json', isBinary ? new Uint8Array(data as Buffer) : String(data), isBinary, 1 << 20),
        );
        switch (msg.type) {
          case 'welcome':
            this.nodes.push(msg.node);
            ws.send(
              encodeMessage('json', {
                type: 'subscribe',
                site: this.opts.site,
                ...(this.lastPosition ? { since: this.lastPosition } : {}),
              }) as string,
            );
            break;
          case 'subscribed':
          case 'resync':
            if (msg.type === 'resync') this.emit('resync', msg);
            this.firstPosition ??= msg.position;
            if (!this.lastPosition || msg.type === 'resync') this.lastPosition = msg.position;
            subscribed = true;
            this.attempt = 0;
            resolveConnect();
            break;
          case 'event':
            this.events.push(msg);
            this.lastPosition = msg.position;
            break;
          case 'command.status':
            this.statuses.push(msg);
            break;
          case 'error':
            this.errors.push(msg);
            break;
          default:
            break;
        }
        this.emit('message', msg);
      });
      ws.on('close', (code, reason) => {
        this.closes.push({ code, reason: String(reason), node: this.nodes.at(-1) });
        this.emit('message', { type: 'closed', code });
        if (!subscribed) reject(new Error(`browser client: closed ${code} ${String(reason)} before subscribing`));
        else if (!this.closed && closeAction(code) === 'reconnect') this.reconnect();
      });
    });
  }

  /** Reconnect with a short full-jitter backoff, as the web client does, until it is subscribed again. */
  private reconnect(): void {
    const delay = Math.random() * Math.min(2_000, 100 * 2 ** this.attempt++);
    setTimeout(() => {
      if (this.closed) return;
      this.connect().catch(() => this.reconnect());
    }, delay);
  }
}
