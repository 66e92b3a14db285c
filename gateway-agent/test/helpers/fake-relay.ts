/**
 * A protocol-speaking stand-in for the relay's gateway endpoint (the *other* side of the link), for link and
 * agent tests: real WebSocket server on 127.0.0.1 port 0, protocol v1 codecs and schema validation, event
 * storage with acks, command delivery, scripted closes. The real relay is used by the e2e tests.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import {
  type Codec,
  chooseSubprotocol,
  codecForSubprotocol,
  decodeFrame,
  encodeMessage,
  type GatewayCommandStatus,
  type GatewayEvent,
  type RelayToGateway,
  validateMessage,
} from '@scanrelay/protocol';
import { type WebSocket, WebSocketServer } from 'ws';

export interface FakeConnection {
  ws: WebSocket;
  codec: Codec;
  /** The hello token (gateway assertion) this connection sent. */
  token: Promise<string>;
  send(message: RelayToGateway): void;
  close(code: number, reason?: string): void;
}

export interface FakeRelayOptions {
  gateway?: string;
  site?: string;
  /** Highest seq held from before (as if stored by an earlier relay life). */
  acked?: number;
}

export class FakeRelay {
  readonly connections: FakeConnection[] = [];
  /** Events stored, in arrival order, each seq once. */
  readonly events: GatewayEvent[] = [];
  /** Events that arrived with a seq already stored (resends). */
  duplicates = 0;
  /** Events that arrived out of order (a gap). */
  gaps = 0;
  readonly statuses: GatewayCommandStatus[] = [];
  pings = 0;
  acked: number;
  /** Send `event.ack` after storing each event. */
  autoAck = true;
  /** Answer `hello` with `welcome` (false: stay silent, to test the hello timeout). */
  answerHello = true;
  /** Answer protocol pings. */
  answerPings = true;
  /** When set, the next hello is answered with an error of this code and a close with `closeCode`. */
  refuseNext: { code: 'revoked' | 'internal' | 'unauthenticated'; closeCode: number } | undefined;
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];

  private constructor(
    private readonly wss: WebSocketServer,
    readonly port: number,
    readonly gateway: string,
    readonly site: string,
    acked: number,
  ) {
    this.acked = acked;
    wss.on('connection', (ws) => this.accept(ws));
  }

  static async start(opts: FakeRelayOptions = {}, port = 0): Promise<FakeRelay> {
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port,
      path: '/v1/gateway',
      maxPayload: 64 * 1024,
      perMessageDeflate: false,
      handleProtocols: (offered) => chooseSubprotocol(offered) ?? false,
    });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    const address = wss.address() as { port: number };
    return new FakeRelay(wss, address.port, opts.gateway ?? 'gw-1', opts.site ?? 'site-a', opts.acked ?? 0);
  }

  /** Base URL as the gateway is configured with it. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Resolves once `pred()` holds (checked on every relay-side change). */
  until(pred: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`fake relay: timed out waiting for ${what}`)), timeoutMs);
      this.waiters.push({
        pred,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      });
    });
  }

  /** The most recent connection. */
  get last(): FakeConnection {
    const c = this.connections.at(-1);
    if (!c) throw new Error('no connection yet');
    return c;
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private changed(): void {
    for (const w of [...this.waiters])
      if (w.pred()) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
  }

  private accept(ws: WebSocket): void {
    const codec = codecForSubprotocol(ws.protocol) ?? 'json';
    let resolveToken!: (t: string) => void;
    const conn: FakeConnection = {
      ws,
      codec,
      token: new Promise((r) => {
        resolveToken = r;
      }),
      send: (m) => {
        if (ws.readyState === ws.OPEN) ws.send(encodeMessage(codec, m), { binary: codec === 'msgpack' });
      },
      close: (code, reason) => ws.close(code, reason),
    };
    this.connections.push(conn);
    ws.on('error', () => undefined);
    let authed = false;
    ws.on('message', (data, isBinary) => {
      const msg = validateMessage('gateway→relay', decodeFrame(codec, data as Buffer, isBinary, 64 * 1024));
      if (msg.type === 'hello') {
        resolveToken(msg.token);
        const refuse = this.refuseNext;
        if (refuse) {
          this.refuseNext = undefined;
          conn.send({ type: 'error', code: refuse.code, message: 'refused by the fake relay' });
          ws.close(refuse.closeCode, refuse.code);
        } else if (this.answerHello) {
          authed = true;
          conn.send({ type: 'welcome', gateway: this.gateway, site: this.site, node: 'fake-1', acked: this.acked });
        }
      } else if (!authed) {
        ws.close(4501, 'unauthenticated');
      } else if (msg.type === 'event') {
        if (msg.seq <= this.acked) this.duplicates++;
        else {
          if (msg.seq !== this.acked + 1) this.gaps++;
          this.events.push(msg);
          this.acked = msg.seq;
          if (this.autoAck) conn.send({ type: 'event.ack', seq: msg.seq });
        }
      } else if (msg.type === 'command.status') {
        this.statuses.push(msg);
      } else if (msg.type === 'ping') {
        this.pings++;
        if (this.answerPings) conn.send({ type: 'pong', ...(msg.ref ? { ref: msg.ref } : {}) });
      }
      this.changed();
    });
    this.changed();
  }
}

/**
 * A TCP proxy in front of a server. `blackhole()` keeps every current connection open but silently drops all
 * bytes both ways — a half-open path, as a dead NAT or a frozen peer leaves it. New connections work normally.
 */
export class TcpProxy {
  private holes = new Set<Socket>();
  private sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    let proxy!: TcpProxy;
    const server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
      proxy.sockets.add(client).add(upstream);
      const forward = (from: Socket, to: Socket) =>
        from.on('data', (chunk) => {
          if (!proxy.holes.has(from)) to.write(chunk);
        });
      forward(client, upstream);
      forward(upstream, client);
      const end = () => {
        if (proxy.holes.has(client)) return;
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end).on('error', () => undefined);
      upstream.on('close', end).on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new TcpProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Drop every byte on all current connections, keeping them open. */
  blackhole(): void {
    for (const s of this.sockets) this.holes.add(s);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
