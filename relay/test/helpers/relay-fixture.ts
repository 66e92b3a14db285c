/**
 * A relay test fixture: real relay nodes on 127.0.0.1 port 0 (one or several sharing a MemoryHub, like nodes
 * on one Redis), a manage-app key with its JWKS file, gateways registered in the real registry with their own
 * key pairs, token minting, captured JSON logs, and clean-up of everything it started.
 *
 * ```ts
 * const fx = await createFixture();
 * const relay = await fx.start();
 * const { client } = await fx.browser(relay, { sites: ['site-a'] });
 * const gw = await fx.gateway(relay, 'gw-1');          // registered for site-a, hello'd, welcome received
 * await fx.close();                                     // in afterEach
 * ```
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Clock } from '../../src/clock.js';
import type { RelayConfigInput } from '../../src/config.js';
import { MemoryHub } from '../../src/ports/create.js';
import { createRelay, type Relay, type RelayDeps } from '../../src/relay.js';
import { onWebTransport, testCertificate } from '../transport-webtransport/test-transport.js';
import { type ConnectOptions, type Msg, TestClient } from './client.js';
import {
  type GatewayKey,
  generateGatewayKey,
  generateManageKey,
  type JwksFile,
  type MintOptions,
  mintCommand,
  mintGatewayAssertion,
  mintSession,
  TEST_ISSUER,
  type TestKey,
  writeJwksFile,
} from './tokens.js';

export const ORIGIN = 'https://manage.scanrelay.test';

export interface FixtureOptions {
  /** Clock shared by every node (a ManualClock for expiry tests). Default: the system clock. */
  clock?: Clock;
  /** Config merged into every node's. */
  config?: RelayConfigInput;
}

export interface BrowserOptions extends Omit<ConnectOptions, 'origin'> {
  sites?: string[];
  sub?: string;
  sid?: string;
  ttlSeconds?: number;
  claims?: Record<string, unknown>;
}

export class Fixture {
  readonly relays: Relay[] = [];
  readonly clients: TestClient[] = [];
  readonly hub = new MemoryHub();
  /** Parsed log lines of every node. */
  readonly logs: Record<string, unknown>[] = [];
  readonly gatewayKeys = new Map<string, GatewayKey>();
  #nodes = 0;

  private constructor(
    readonly manage: TestKey,
    readonly jwks: JwksFile,
    readonly dataDir: string,
    readonly opts: FixtureOptions,
  ) {}

  static async create(opts: FixtureOptions = {}): Promise<Fixture> {
    const manage = await generateManageKey();
    const jwks = await writeJwksFile([manage]);
    const dataDir = await mkdtemp(join(tmpdir(), 'scanrelay-core-'));
    return new Fixture(manage, jwks, dataDir, opts);
  }

  get now(): number {
    return (this.opts.clock ?? Date).now();
  }

  /** Start a node (listening) with the fixture's keys; `config` and `deps` override per node. */
  async start(config: RelayConfigInput = {}, deps: RelayDeps = {}): Promise<Relay> {
    const n = ++this.#nodes;
    const logs = this.logs;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
        cb();
      },
    });
    const base = this.opts.config ?? {};
    const relay = await createRelay(
      {
        host: '127.0.0.1',
        port: 0,
        manageJwks: this.jwks.path,
        manageIssuer: TEST_ISSUER,
        allowedOrigins: [ORIGIN],
        dataDir: join(this.dataDir, `node-${n}`),
        nodeId: `node-${n}`,
        // The whole protocol suite also runs on uWS (relay/test/transport-uws/protocol-suite.test.ts).
        ...(process.env.SCANRELAY_TEST_TRANSPORT === 'uws' ? { transport: 'uws' as const } : {}),
        // ...and on WebTransport (relay/test/transport-webtransport/on-webtransport): clients connect there.
        ...(onWebTransport()
          ? {
              webTransportPort: 0,
              webTransportCert: testCertificate().certPath,
              webTransportKey: testCertificate().keyPath,
            }
          : {}),
        ...base,
        ...config,
        limits: { ...base.limits, ...config.limits },
        timings: { shutdownGraceMs: 1_000, ...base.timings, ...config.timings },
        history: { ...base.history, ...config.history },
      },
      {
        memoryHub: this.hub,
        logger: pino({ level: 'info', base: { node: `node-${n}` } }, sink),
        defaultMetrics: false,
        ...(this.opts.clock ? { clock: this.opts.clock } : {}),
        ...deps,
      },
    );
    this.relays.push(relay);
    await relay.listen();
    return relay;
  }

  url(relay: Relay, endpoint: 'browser' | 'gateway' | string): string {
    const path = endpoint === 'browser' || endpoint === 'gateway' ? `/v1/${endpoint}` : endpoint;
    if (onWebTransport()) return `https://127.0.0.1:${relay.webTransportPort}${path}`;
    return `ws://127.0.0.1:${relay.port}${path}`;
  }

  http(relay: Relay, path: string): string {
    return `http://127.0.0.1:${relay.port}${path}`;
  }

  session(opts: BrowserOptions = {}): Promise<string> {
    return mintSession(this.manage, {
      now: this.now,
      ...(opts.ttlSeconds !== undefined ? { ttlSeconds: opts.ttlSeconds } : {}),
      claims: {
        sites: opts.sites ?? ['site-a'],
        ...(opts.sub !== undefined ? { sub: opts.sub } : {}),
        ...(opts.sid !== undefined ? { sid: opts.sid } : {}),
        ...opts.claims,
      },
    });
  }

  command(claims: Record<string, unknown> = {}, opts: Omit<MintOptions, 'claims'> = {}): Promise<string> {
    return mintCommand(this.manage, { now: this.now, ...opts, claims });
  }

  /** Open a browser socket (Origin allowed) without saying hello. */
  async connectBrowser(relay: Relay, opts: ConnectOptions = {}): Promise<TestClient> {
    const c = await TestClient.connect(this.url(relay, 'browser'), { origin: ORIGIN, ...opts });
    this.clients.push(c);
    return c;
  }

  async connectGateway(relay: Relay, opts: ConnectOptions = {}): Promise<TestClient> {
    const c = await TestClient.connect(this.url(relay, 'gateway'), opts);
    this.clients.push(c);
    return c;
  }

  /** A browser that said hello and got its welcome. */
  async browser(relay: Relay, opts: BrowserOptions = {}): Promise<{ client: TestClient; welcome: Msg; token: string }> {
    const client = await this.connectBrowser(relay, opts);
    const token = await this.session(opts);
    client.send({ type: 'hello', token });
    const welcome = await client.next('welcome');
    return { client, welcome, token };
  }

  /** Register an active gateway in the shared registry with a fresh key pair. */
  async addGateway(id: string, site = 'site-a'): Promise<GatewayKey> {
    const key = await generateGatewayKey();
    const relay = this.relays[0];
    if (!relay) throw new Error('start a relay first');
    const now = this.now;
    await relay.ports.registry.createGateway(
      {
        id,
        site,
        name: id,
        status: 'active',
        createdAt: now,
        publicKey: key.publicJwk,
        thumbprint: key.thumbprint,
        activatedAt: now,
      },
      {
        lookup: `L${id.replace(/-/g, '')}`.slice(0, 20),
        gateway: id,
        site,
        hash: 'unused',
        salt: 'unused',
        expiresAt: now,
        failures: 0,
        used: true,
      },
    );
    this.gatewayKeys.set(id, key);
    return key;
  }

  assertion(gateway: string): Promise<string> {
    const key = this.gatewayKeys.get(gateway);
    if (!key) throw new Error(`gateway ${gateway} not registered`);
    return mintGatewayAssertion(key, { gateway, now: this.now });
  }

  /** Connect a gateway (registering it on first use for `site`), say hello, return its welcome. */
  async gateway(
    relay: Relay,
    id: string,
    opts: ConnectOptions & { site?: string } = {},
  ): Promise<{ client: TestClient; welcome: Msg }> {
    if (!this.gatewayKeys.has(id)) await this.addGateway(id, opts.site ?? 'site-a');
    const client = await this.connectGateway(relay, opts);
    client.send({ type: 'hello', token: await this.assertion(id) });
    const welcome = await client.next('welcome');
    return { client, welcome };
  }

  /** Log lines matching `where`. */
  logsWhere(where: (line: Record<string, unknown>) => boolean): Record<string, unknown>[] {
    return this.logs.filter(where);
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    await Promise.allSettled(this.relays.map((r) => r.close()));
    await this.hub.close();
    await this.jwks.cleanup();
    await rm(this.dataDir, { recursive: true, force: true });
    for (const c of this.clients) expectNoInvalid(c);
  }
}

/** The relay must never send a frame that fails protocol validation. */
function expectNoInvalid(c: TestClient): void {
  if (c.invalid.length > 0) throw new Error(`relay sent invalid protocol frames: ${JSON.stringify(c.invalid)}`);
}

export const createFixture = (opts?: FixtureOptions): Promise<Fixture> => Fixture.create(opts);

/** Wait until `check` returns true (polling every 10 ms), or fail after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
