/**
 * The arms of a run: each starts its server processes (pinned to the SUT CPU), and gives the load generator
 * subscriber and publisher clients that speak that server's protocol. Every arm carries the same ~100-byte
 * JSON payload `{seq, ts, pad}`; `ts` is the *scheduled* send time (performance.now() of the load generator).
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Centrifuge } from 'centrifuge';
import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { freePort, type Proc, REPO_ROOT, startPinned } from './proc.js';
import {
  type EnrolledGateway,
  enrolGateway,
  gatewayAssertion,
  ManageApp,
  ORIGIN,
  startRelayNode,
} from './scanrelay.js';

const PAD = 'x'.repeat(56);
/** The payload every arm carries (about 100 bytes as JSON). */
export function payload(seq: number, ts: number): { seq: number; ts: number; pad: string } {
  return { seq, ts, pad: PAD };
}

export type OnEvent = (seq: number, ts: number) => void;

export interface Closeable {
  close(): void;
}

export interface Publisher extends Closeable {
  publish(seq: number, ts: number): void;
}

/** A running arm. */
export interface ArmInstance {
  /** Every process of the arm (servers and Redis): their CPU and RSS are the arm's. */
  pids(): number[];
  /** Connect one subscriber to topic `t` (0-based); resolves once it is subscribed. */
  subscriber(t: number, onEvent: OnEvent, localAddress?: string): Promise<Closeable>;
  /** Connect the publisher of topic `t`. */
  publisher(t: number): Promise<Publisher>;
  /** For the ScanRelay arms: the relay-specific handles the command and churn scenarios need. */
  relay?: RelayHandles;
  stop(): Promise<void>;
}

export interface RelayHandles {
  manage: ManageApp;
  gateways: EnrolledGateway[];
  browserUrl(node?: number): string;
  gatewayUrl(node?: number): string;
  /** Restart relay node `n` (0-based) in place: same port, same data. */
  restartNode(n: number): Promise<void>;
}

export interface ArmSpec {
  name: string;
  /** Why this arm cannot run on this machine, or undefined. */
  unavailable(): string | undefined;
  start(topics: number): Promise<ArmInstance>;
}

const nodeBin = process.execPath;
// Peers run built (bench/dist/src/peers), also when the harness itself is imported from source by a test.
const peersDir = join(REPO_ROOT, 'bench', 'dist', 'src', 'peers');
const centrifugeDir = join(REPO_ROOT, 'bench', 'peers', 'centrifuge');
const centrifugeBin = join(tmpdir(), 'scanrelay-bench-centrifuge-peer');

function topicName(t: number): string {
  return `topic-${t}`;
}

function wsOpen(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
  });
}

// ── bare ws / uWS peers: /sub/<topic>, /pub/<topic>, raw frames ──────────────────────────────────────────

function barePeer(name: string, script: string, needsNativeUws: boolean): ArmSpec {
  return {
    name,
    unavailable: () =>
      needsNativeUws && !['93', '108', '115'].includes(process.versions.modules)
        ? 'uWebSockets.js v20.30 has no native build for this Node (run the bench on Node 20)'
        : undefined,
    async start() {
      const proc = await startPinned(nodeBin, [join(peersDir, script)], { ready: /listening (\d+)/ });
      const port = Number(proc.match![1]);
      return {
        pids: () => [proc.pid],
        async subscriber(t, onEvent, localAddress) {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/sub/${topicName(t)}`, {
            perMessageDeflate: false,
            ...(localAddress ? { localAddress } : {}),
          });
          ws.on('message', (data: Buffer) => {
            const p = JSON.parse(data.toString()) as { seq: number; ts: number };
            onEvent(p.seq, p.ts);
          });
          await wsOpen(ws);
          ws.on('error', () => {});
          return { close: () => ws.terminate() };
        },
        async publisher(t) {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/pub/${topicName(t)}`, { perMessageDeflate: false });
          await wsOpen(ws);
          ws.on('error', () => {});
          return {
            publish: (seq, ts) => ws.send(JSON.stringify(payload(seq, ts))),
            close: () => ws.terminate(),
          };
        },
        stop: () => proc.stop(),
      };
    },
  };
}

// ── Redis (for the Socket.IO adapter and multi-node ScanRelay arms) ──────────────────────────────────────

async function startRedis(): Promise<Proc & { url: string }> {
  const port = await freePort();
  const proc = await startPinned(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'],
    { ready: /Ready to accept connections/ },
  );
  return { ...proc, url: `redis://127.0.0.1:${port}` };
}

const hasRedis = (): string | undefined =>
  spawnSync('redis-server', ['--version']).status === 0 ? undefined : 'redis-server is not installed';

// ── Socket.IO ────────────────────────────────────────────────────────────────────────────────────────────

function socketIo(name: string, withRedis: boolean): ArmSpec {
  return {
    name,
    unavailable: () => (withRedis ? hasRedis() : undefined),
    async start() {
      const redis = withRedis ? await startRedis() : undefined;
      const proc = await startPinned(
        nodeBin,
        [join(peersDir, 'socketio-peer.js'), '0', ...(redis ? ['--redis', redis.url] : [])],
        { ready: /listening (\d+)/ },
      ).catch(async (err) => {
        await redis?.stop();
        throw err;
      });
      const port = Number(proc.match![1]);
      const connectIo = async (auth: Record<string, string>, localAddress?: string): Promise<Socket> => {
        const s = io(`http://127.0.0.1:${port}`, {
          transports: ['websocket'],
          auth,
          forceNew: true,
          reconnection: false,
          ...(localAddress ? { localAddress } : {}),
        } as Parameters<typeof io>[1]);
        await new Promise<void>((resolve, reject) => {
          s.once('connect', () => resolve());
          s.once('connect_error', reject);
        });
        return s;
      };
      return {
        pids: () => [proc.pid, ...(redis ? [redis.pid] : [])],
        async subscriber(t, onEvent, localAddress) {
          const s = await connectIo({ role: 'sub', topic: topicName(t) }, localAddress);
          s.on('e', (msg: string) => {
            const p = JSON.parse(msg) as { seq: number; ts: number };
            onEvent(p.seq, p.ts);
          });
          // A join is asynchronous on the server; give it a round trip.
          await new Promise((r) => setTimeout(r, 5));
          return { close: () => s.disconnect() };
        },
        async publisher(t) {
          const s = await connectIo({ role: 'pub', topic: topicName(t) });
          return { publish: (seq, ts) => s.emit('p', JSON.stringify(payload(seq, ts))), close: () => s.disconnect() };
        },
        async stop() {
          await proc.stop();
          await redis?.stop();
        },
      };
    },
  };
}

// ── Centrifuge (Go) ──────────────────────────────────────────────────────────────────────────────────────

/** Build the Go peer once per run (module cache is used; go.sum pins every module). */
export function buildCentrifuge(): string | undefined {
  if (spawnSync('go', ['version']).status !== 0) return 'go is not installed';
  const r = spawnSync('go', ['build', '-o', centrifugeBin, '.'], { cwd: centrifugeDir, encoding: 'utf8' });
  return r.status === 0 ? undefined : `go build of bench/peers/centrifuge failed: ${r.stderr.slice(-500)}`;
}

function centrifugeArm(): ArmSpec {
  let buildError: string | undefined | null = null;
  return {
    name: 'centrifuge',
    unavailable: () => {
      if (buildError === null) buildError = buildCentrifuge();
      return buildError;
    },
    async start() {
      const proc = await startPinned(centrifugeBin, [], { ready: /listening (\d+)/, env: { GOMAXPROCS: '1' } });
      const port = Number(proc.match![1]);
      const url = `ws://127.0.0.1:${port}/connection/websocket`;
      const connect = async (localAddress?: string): Promise<Centrifuge> => {
        class BoundWebSocket extends WebSocket {
          constructor(address: string, protocols?: string | string[]) {
            super(address, protocols, { perMessageDeflate: false, ...(localAddress ? { localAddress } : {}) });
          }
        }
        const c = new Centrifuge(url, { websocket: BoundWebSocket, minReconnectDelay: 60_000 });
        const connected = once(c as unknown as NodeJS.EventEmitter, 'connected');
        c.connect();
        await connected;
        return c;
      };
      return {
        pids: () => [proc.pid],
        async subscriber(t, onEvent, localAddress) {
          const c = await connect(localAddress);
          const sub = c.newSubscription(topicName(t));
          sub.on('publication', (ctx) => {
            const p = ctx.data as { seq: number; ts: number };
            onEvent(p.seq, p.ts);
          });
          const subscribed = once(sub as unknown as NodeJS.EventEmitter, 'subscribed');
          sub.subscribe();
          await subscribed;
          return { close: () => c.disconnect() };
        },
        async publisher(t) {
          const c = await connect();
          const channel = topicName(t);
          return {
            publish: (seq, ts) => void c.publish(channel, payload(seq, ts)).catch(() => undefined),
            close: () => c.disconnect(),
          };
        },
        stop: () => proc.stop(),
      };
    },
  };
}

// ── ScanRelay ────────────────────────────────────────────────────────────────────────────────────────────

interface RelayArmOptions {
  name: string;
  transport: 'ws' | 'uws';
  /** Two nodes over Redis: gateways on node 0, browsers on node 1, so every event crosses Redis. */
  twoNodes: boolean;
}

function scanRelayArm(o: RelayArmOptions): ArmSpec {
  return {
    name: o.name,
    unavailable: () => {
      if (o.transport === 'uws' && !['93', '108', '115'].includes(process.versions.modules))
        return 'the uWS transport needs Node 20 here (uWebSockets.js v20.30 native build)';
      return o.twoNodes ? hasRedis() : undefined;
    },
    async start(topics) {
      const manage = await ManageApp.create();
      const dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-bench-data-'));
      const redis = o.twoNodes ? await startRedis() : undefined;
      const nodes: Array<Proc & { port: number }> = [];
      const startNode = async (n: number, port?: number): Promise<Proc & { port: number }> =>
        startRelayNode({
          transport: o.transport,
          manage,
          dataDir: join(dataDir, `node-${n}`),
          nodeId: `bench-${n + 1}`,
          ...(redis ? { redisUrl: redis.url } : {}),
          ...(port !== undefined ? { port } : {}),
        });
      try {
        nodes.push(await startNode(0));
        if (o.twoNodes) nodes.push(await startNode(1));
      } catch (err) {
        for (const n of nodes) await n.stop();
        await redis?.stop();
        await manage.cleanup();
        await rm(dataDir, { recursive: true, force: true });
        throw err;
      }
      const gateways: EnrolledGateway[] = [];
      for (let t = 0; t < topics; t++) gateways.push(await enrolGateway(nodes[0]!.port, manage, `site-${t}`, t));
      const browserNode = () => nodes[nodes.length - 1]!;
      const relay: RelayHandles = {
        manage,
        gateways,
        browserUrl: (n) => `ws://127.0.0.1:${(n === undefined ? browserNode() : nodes[n]!).port}/v1/browser`,
        gatewayUrl: (n) => `ws://127.0.0.1:${nodes[n ?? 0]!.port}/v1/gateway`,
        async restartNode(n) {
          const old = nodes[n]!;
          await old.stop();
          nodes[n] = await startNode(n, old.port);
        },
      };
      return {
        relay,
        pids: () => [...nodes.map((n) => n.pid), ...(redis ? [redis.pid] : [])],
        async subscriber(t, onEvent, localAddress) {
          const client = await relayBrowser(
            relay.browserUrl(),
            await manage.session(`user-${t}`, [`site-${t}`]),
            localAddress,
          ).catch((err: Error) => {
            throw new Error(`${err.message}${nodeState(nodes)}`);
          });
          client.onEvent = (m) => {
            const data = m.data as { ts?: number } | undefined;
            if (m.kind === 'images.received' && typeof data?.ts === 'number') onEvent(Number(m.seq), data.ts);
          };
          await client.request({ type: 'subscribe', site: `site-${t}` }, 'subscribed');
          return client;
        },
        async publisher(t) {
          const gw = gateways[t]!;
          const client = await relayGateway(relay.gatewayUrl(), gw);
          return {
            publish: (seq, ts) =>
              client.send({
                type: 'event',
                seq,
                kind: 'images.received',
                subject: 'BENCH1',
                at: Date.now(),
                data: payload(seq, ts),
              }),
            close: () => client.close(),
          };
        },
        async stop() {
          for (const n of nodes) await n.stop();
          await redis?.stop();
          await manage.cleanup();
          await rm(dataDir, { recursive: true, force: true });
        },
      };
    },
  };
}

/** When a relay connection fails: whether each node still runs, and the tail of a dead one's output. */
function nodeState(nodes: Array<Proc & { port: number }>): string {
  const dead = nodes.filter((n) => n.child.exitCode !== null || n.child.signalCode !== null);
  if (dead.length === 0) return ' (every relay node still running)';
  return dead
    .map(
      (n) => ` (relay on port ${n.port} exited ${n.child.exitCode ?? n.child.signalCode}: ${n.output().slice(-600)})`,
    )
    .join('');
}

export type RelayMsg = Record<string, unknown> & { type: string };

/** A minimal protocol v1 client (JSON codec) for the load generator. */
export class RelayClient {
  onEvent: ((m: RelayMsg) => void) | undefined;
  onMessage: ((m: RelayMsg) => void) | undefined;
  private waiters: Array<{ types: readonly string[]; resolve: (m: RelayMsg) => void; reject: (e: Error) => void }> = [];
  closed = false;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString()) as RelayMsg;
      if (m.type === 'event') {
        this.onEvent?.(m);
        return;
      }
      this.onMessage?.(m);
      const i = this.waiters.findIndex((w) => w.types.includes(m.type) || m.type === 'error');
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        if (m.type === 'error' && !w!.types.includes('error'))
          w!.reject(new Error(`relay error ${String(m.code)}: ${String(m.message)}`));
        else w!.resolve(m);
      }
    });
    ws.on('error', () => {});
    ws.on('close', (code, reason) => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w.reject(new Error(`socket closed ${code} ${reason.toString()}`));
    });
  }

  send(m: Record<string, unknown>): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  /** The next message of one of `types` (an `error` rejects unless asked for). */
  next(types: string | readonly string[]): Promise<RelayMsg> {
    const list = typeof types === 'string' ? [types] : types;
    return new Promise((resolve, reject) => this.waiters.push({ types: list, resolve, reject }));
  }

  request(m: Record<string, unknown>, reply: string | readonly string[]): Promise<RelayMsg> {
    const p = this.next(reply);
    this.send(m);
    return p;
  }

  close(): void {
    this.ws.terminate();
  }
}

export async function relayBrowser(url: string, token: string, localAddress?: string): Promise<RelayClient> {
  const ws = new WebSocket(url, ['scanrelay.v1.json'], {
    origin: ORIGIN,
    perMessageDeflate: false,
    ...(localAddress ? { localAddress } : {}),
  });
  await wsOpen(ws);
  const c = new RelayClient(ws);
  await c.request({ type: 'hello', token }, 'welcome');
  return c;
}

export async function relayGateway(url: string, gw: EnrolledGateway): Promise<RelayClient> {
  const ws = new WebSocket(url, ['scanrelay.v1.json'], { perMessageDeflate: false });
  await wsOpen(ws);
  const c = new RelayClient(ws);
  await c.request({ type: 'hello', token: await gatewayAssertion(gw) }, 'welcome');
  return c;
}

/**
 * The arm the churn scenario runs on: two nodes over Redis (a restarted node's clients resume on the other,
 * with history in Redis). On uWS where it loads, else on ws.
 */
export function churnArm(): ArmSpec {
  const uws = ['93', '108', '115'].includes(process.versions.modules);
  return scanRelayArm({
    name: `scanrelay-${uws ? 'uws' : 'ws'}-2nodes-redis`,
    transport: uws ? 'uws' : 'ws',
    twoNodes: true,
  });
}

/** Every arm, in report order; the first of each group is its reference. */
export const ARMS: ArmSpec[] = [
  barePeer('bare-uws', 'uws-peer.js', true),
  barePeer('bare-ws', 'ws-peer.js', false),
  socketIo('socket.io', false),
  socketIo('socket.io+redis', true),
  centrifugeArm(),
  scanRelayArm({ name: 'scanrelay-uws', transport: 'uws', twoNodes: false }),
  scanRelayArm({ name: 'scanrelay-ws', transport: 'ws', twoNodes: false }),
  scanRelayArm({ name: 'scanrelay-uws-2nodes-redis', transport: 'uws', twoNodes: true }),
];
