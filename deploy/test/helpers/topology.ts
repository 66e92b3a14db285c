/**
 * The compose topology (deploy/compose/compose.yaml) as processes on loopback, for tests on machines without
 * a Docker engine: redis-server with the compose Redis settings, the relay nodes from the built binary with
 * the compose environment, and Debian's haproxy with deploy/proxy/haproxy.cfg.
 *
 * Only what cannot be the same outside containers is changed, each in one visible place (`localise*`):
 * service names become 127.0.0.1 with free ports, listen addresses become loopback, and container paths of
 * mounted files and volumes become the host files and temp directories behind them.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import {
  type ComposeFile,
  DEPLOY_DIR,
  hostPathOf,
  loadCompose,
  REPO_ROOT,
  serviceCommand,
  serviceEnvironment,
} from './compose.js';
import { freePort, run, tempDir, waitFor } from './exec.js';
import { type Managed, ProcessGroup } from './processes.js';

export const RELAY_BIN = join(REPO_ROOT, 'relay/dist/main.js');
export const GATEWAY_BIN = join(REPO_ROOT, 'gateway-agent/dist/cli.js');
export const HAPROXY_CFG = join(DEPLOY_DIR, 'proxy/haproxy.cfg');
export const DEMO_MAIN = join(DEPLOY_DIR, 'docker/demo-main.mjs');

export interface TopologyOptions {
  /** `iss` of the manage app's tokens (compose var SCANRELAY_MANAGE_ISSUER). */
  issuer: string;
  /** Relay services to run, as named in compose.yaml. */
  relays?: readonly string[];
}

interface RelayNode {
  service: string;
  port: number;
  env: NodeJS.ProcessEnv;
  proc: Managed | undefined;
}

/** An HAProxy server's state as its stats CSV reports it (`UP`, `DOWN`, `MAINT`, `no check`…). */
export type ServerStatus = string;

export class Topology {
  readonly dir: string;
  readonly secretsDir: string;
  readonly procs: ProcessGroup;
  readonly compose: ComposeFile;
  readonly vars: Record<string, string>;
  readonly redisPort: number;
  readonly proxyPort: number;
  readonly statsPort: number;
  readonly demoPort: number;
  readonly relays: Map<string, RelayNode>;
  /** Public origin of the deployment (what browsers' Origin is). */
  readonly origin: string;
  ca = '';
  private redis: Managed | undefined;
  private haproxy: Managed | undefined;

  private constructor(init: {
    dir: string;
    secretsDir: string;
    vars: Record<string, string>;
    ports: number[];
    relays: readonly string[];
  }) {
    this.dir = init.dir;
    this.secretsDir = init.secretsDir;
    this.procs = new ProcessGroup(init.dir);
    this.vars = init.vars;
    this.compose = loadCompose(init.vars);
    const [redisPort, proxyPort, statsPort, demoPort, ...relayPorts] = init.ports as [number, number, number, number];
    this.redisPort = redisPort;
    this.proxyPort = proxyPort;
    this.statsPort = statsPort;
    this.demoPort = demoPort;
    this.origin = init.vars.SCANRELAY_PUBLIC_ORIGIN as string;
    this.relays = new Map(
      init.relays.map((service, i) => [service, { service, port: relayPorts[i] as number, env: {}, proc: undefined }]),
    );
  }

  /** Make secrets (with the compose script), pick ports, read compose.yaml. Starts nothing yet. */
  static async create(opts: TopologyOptions): Promise<Topology> {
    const relays = opts.relays ?? ['relay1', 'relay2'];
    const dir = await tempDir('topology');
    const secretsDir = join(dir, 'secrets');
    const made = await run('sh', [join(DEPLOY_DIR, 'compose/make-dev-secrets.sh'), '--out', secretsDir]);
    if (made.code !== 0) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`make-dev-secrets.sh failed: ${made.stderr}`);
    }
    const ports: number[] = [];
    while (ports.length < 4 + relays.length) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    const vars = {
      SCANRELAY_REDIS_PASSWORD: randomBytes(18).toString('hex'),
      SCANRELAY_PUBLIC_ORIGIN: `https://localhost:${ports[1]}`,
      SCANRELAY_MANAGE_ISSUER: opts.issuer,
      SCANRELAY_LOG_LEVEL: 'info',
      SCANRELAY_DEMO_RELAY_URL: `wss://localhost:${ports[1]}`,
    };
    const topo = new Topology({ dir, secretsDir, vars, ports, relays });
    topo.ca = await readFile(join(secretsDir, 'tls-ca.pem'), 'utf8');
    return topo;
  }

  /** Host file of a compose secret (as make-dev-secrets.sh wrote it). */
  secretFile(name: string): string {
    const file = this.compose.secrets?.[name]?.file;
    if (!file) throw new Error(`compose.yaml declares no file secret "${name}"`);
    return join(this.secretsDir, file.replace(/^.*\//, ''));
  }

  /** A mounted file of a service, as the host path in this topology (secrets → this run's secrets dir). */
  private localiseMount(service: string, containerPath: string): string {
    const host = hostPathOf(this.compose, service, containerPath);
    const secretsRoot = join(this.compose.dir, 'secrets');
    return host.startsWith(`${secretsRoot}/`) ? join(this.secretsDir, host.slice(secretsRoot.length + 1)) : host;
  }

  /** Replace `<service>:<port>` addresses of compose services with their loopback address here. */
  localiseAddress(value: string): string {
    const map: Record<string, string> = {
      'redis:6379': `127.0.0.1:${this.redisPort}`,
      'demo:8080': `127.0.0.1:${this.demoPort}`,
      'haproxy:8443': `localhost:${this.proxyPort}`,
    };
    for (const r of this.relays.values()) map[`${r.service}:8080`] = `127.0.0.1:${r.port}`;
    let out = value;
    for (const [from, to] of Object.entries(map)) out = out.split(from).join(to);
    return out;
  }

  /** redis-server with the compose command (its redis.conf, its password), on loopback with a temp data dir. */
  async startRedis(): Promise<Managed> {
    const [bin, conf, ...rest] = serviceCommand(this.compose, 'redis');
    if (bin !== 'redis-server' || !conf) throw new Error('compose redis command must start: redis-server <conf>');
    const dataDir = join(this.dir, 'redis-data');
    await mkdir(dataDir, { recursive: true });
    const args = [
      this.localiseMount('redis', conf),
      ...rest,
      '--port',
      String(this.redisPort),
      '--bind',
      '127.0.0.1',
      '--dir',
      dataDir,
      '--daemonize',
      'no',
    ];
    this.redis = this.procs.start('redis', 'redis-server', args, { env: { PATH: process.env.PATH } });
    await waitFor('redis to answer PING', async () => {
      if (!this.redis?.running()) throw new Error(`redis-server exited:\n${this.redis?.tail()}`);
      const pong = await run('redis-cli', ['-p', String(this.redisPort), 'ping'], {
        env: { PATH: process.env.PATH, REDISCLI_AUTH: serviceEnvironment(this.compose, 'redis').REDISCLI_AUTH },
      });
      return pong.stdout.trim() === 'PONG';
    });
    return this.redis;
  }

  /** Stop redis-server as `docker compose restart redis` would (SIGTERM: it flushes the AOF and exits). */
  async stopRedis(): Promise<void> {
    const exit = await this.redis?.stop('SIGTERM', 10_000);
    if (exit && exit.signal === 'SIGKILL') throw new Error('redis-server did not exit on SIGTERM');
  }

  /** redis-server's output so far (start-up says where it loaded its data from). */
  redisLog(): string {
    return this.redis?.tail(200) ?? '';
  }

  /** Directory redis-server writes its AOF and snapshots to. */
  get redisDataDir(): string {
    return join(this.dir, 'redis-data');
  }

  /** The environment compose gives `service`, localised. */
  relayEnv(service: string): NodeJS.ProcessEnv {
    const node = this.relays.get(service);
    if (!node) throw new Error(`unknown relay ${service}`);
    const env = serviceEnvironment(this.compose, service);
    const out: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    for (const [k, v] of Object.entries(env)) out[k] = this.localiseAddress(v);
    // Listen on loopback only, on this node's port.
    out.SCANRELAY_HOST = '127.0.0.1';
    out.SCANRELAY_PORT = String(node.port);
    out.SCANRELAY_MANAGE_JWKS = this.localiseMount(service, env.SCANRELAY_MANAGE_JWKS as string);
    out.SCANRELAY_DATA_DIR = join(this.dir, `${service}-data`);
    return out;
  }

  /**
   * Start (or restart) a relay node from the built binary with its compose environment. A relay that cannot
   * reach Redis at start-up exits by design; compose then restarts it (`restart: unless-stopped`), and so does
   * this, at most three times.
   */
  async startRelay(service: string): Promise<Managed> {
    const node = this.relays.get(service);
    if (!node) throw new Error(`unknown relay ${service}`);
    node.env = this.relayEnv(service);
    await mkdir(node.env.SCANRELAY_DATA_DIR as string, { recursive: true });
    const restarts = this.compose.services[service]?.restart !== 'no';
    for (let attempt = 1; ; attempt++) {
      const proc = this.procs.start(service, process.execPath, [RELAY_BIN], { env: node.env, cwd: REPO_ROOT });
      node.proc = proc;
      const outcome = await waitFor(
        `${service} /readyz`,
        async () => {
          if (!proc.running()) return 'exited';
          const res = await fetch(`http://127.0.0.1:${node.port}/readyz`).catch(() => undefined);
          return res?.status === 200 ? 'ready' : undefined;
        },
        30_000,
      );
      if (outcome === 'ready') return proc;
      if (!restarts || attempt >= 3)
        throw new Error(`${service} exited during start-up (attempt ${attempt}):\n${proc.tail()}`);
    }
  }

  relayProcess(service: string): Managed {
    const p = this.relays.get(service)?.proc;
    if (!p) throw new Error(`${service} was not started`);
    return p;
  }

  /** The relay's node id (SCANRELAY_NODE_ID from compose). */
  nodeId(service: string): string {
    return serviceEnvironment(this.compose, service).SCANRELAY_NODE_ID as string;
  }

  serviceForNode(nodeId: string): string {
    for (const s of this.relays.keys()) if (this.nodeId(s) === nodeId) return s;
    throw new Error(`no relay service has node id ${nodeId}`);
  }

  /** Read one metric (summed over its label sets) straight from a relay's /metrics (never via the proxy). */
  async relayMetric(service: string, name: string): Promise<number | undefined> {
    const node = this.relays.get(service);
    const res = await fetch(`http://127.0.0.1:${node?.port}/metrics`).catch(() => undefined);
    if (!res?.ok) return undefined;
    const text = await res.text();
    let sum: number | undefined;
    for (const line of text.split('\n')) {
      const m = /^([a-z_:][a-z0-9_:]*)(\{[^}]*\})? (\S+)/i.exec(line);
      if (m && m[1] === name) sum = (sum ?? 0) + Number(m[3]);
    }
    return sum;
  }

  /** haproxy from Debian with deploy/proxy/haproxy.cfg and the compose haproxy environment, localised. */
  async startHaproxy(): Promise<Managed> {
    const env = serviceEnvironment(this.compose, 'haproxy');
    const out: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    for (const [k, v] of Object.entries(env)) out[k] = this.localiseAddress(v);
    out.HAPROXY_BIND = `127.0.0.1:${this.proxyPort}`;
    out.HAPROXY_STATS_BIND = `127.0.0.1:${this.statsPort}`;
    out.SCANRELAY_TLS_CERT = this.localiseMount('haproxy', env.SCANRELAY_TLS_CERT as string);
    // HAProxy refuses to start when maxconn needs more file descriptors than `ulimit -n` allows; compose
    // raises the container's limit (ulimits.nofile), a test process cannot, so it asks for fewer connections.
    out.HAPROXY_MAXCONN = '1000';
    const cfg = this.localiseMount('haproxy', '/usr/local/etc/haproxy/haproxy.cfg');
    // -db: foreground, no daemon; the same file compose mounts.
    this.haproxy = this.procs.start('haproxy', 'haproxy', ['-db', '-f', cfg], { env: out });
    await waitFor('haproxy stats', async () => {
      if (!this.haproxy?.running()) throw new Error(`haproxy exited:\n${this.haproxy?.tail()}`);
      return (await this.serverStatuses()).size > 0;
    });
    return this.haproxy;
  }

  /** Status of each backend server as HAProxy's own health checks see it: `be_relay/relay1` → `UP`. */
  async serverStatuses(): Promise<Map<string, ServerStatus>> {
    const res = await fetch(`http://127.0.0.1:${this.statsPort}/stats;csv`).catch(() => undefined);
    const out = new Map<string, ServerStatus>();
    if (!res?.ok) return out;
    const [header = '', ...rows] = (await res.text()).split('\n');
    const cols = header.replace(/^# /, '').split(',');
    const px = cols.indexOf('pxname');
    const sv = cols.indexOf('svname');
    const st = cols.indexOf('status');
    for (const row of rows) {
      const f = row.split(',');
      if (f.length < cols.length || f[sv] === 'FRONTEND' || f[sv] === 'BACKEND') continue;
      out.set(`${f[px]}/${f[sv]}`, f[st] as string);
    }
    return out;
  }

  /** Wait until HAProxy's health checks report `server` (e.g. `relay1`) in `status` (`UP` / `DOWN`). */
  waitForServer(server: string, status: 'UP' | 'DOWN', timeoutMs = 20_000, backend = 'be_relay'): Promise<true> {
    return waitFor(
      `haproxy to mark ${backend}/${server} ${status}`,
      async () => {
        const s = (await this.serverStatuses()).get(`${backend}/${server}`) ?? '';
        return s.split(' ')[0] === status;
      },
      timeoutMs,
    );
  }

  /** Public base URL through the proxy. */
  get publicUrl(): string {
    return `https://localhost:${this.proxyPort}`;
  }

  /** An HTTPS request through the proxy, trusting only this topology's CA. */
  https(
    method: string,
    path: string,
    opts: { headers?: Record<string, string>; body?: unknown } = {},
  ): Promise<{ status: number; body: string; headers: import('node:http').IncomingHttpHeaders }> {
    return new Promise((resolveReq, reject) => {
      const body =
        opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      const req = request(
        `${this.publicUrl}${path}`,
        {
          method,
          ca: this.ca,
          headers: {
            ...(body !== undefined
              ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
              : {}),
            ...opts.headers,
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => resolveReq({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
        },
      );
      req.on('error', reject);
      req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.end(body);
    });
  }

  /** The demo manage app (deploy/docker/demo-main.mjs, the image's entrypoint) with the compose demo environment. */
  async startDemo(): Promise<Managed> {
    const env = serviceEnvironment(this.compose, 'demo');
    const out: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    for (const [k, v] of Object.entries(env)) out[k] = this.localiseAddress(v);
    out.SCANRELAY_DEMO_HOST = '127.0.0.1';
    out.SCANRELAY_DEMO_PORT = String(this.demoPort);
    out.SCANRELAY_DEMO_DATA_DIR = join(this.dir, 'demo-data');
    out.SCANRELAY_DEMO_SIGNING_KEY = this.localiseMount('demo', env.SCANRELAY_DEMO_SIGNING_KEY as string);
    const proc = this.procs.start('demo', process.execPath, [DEMO_MAIN], { env: out, cwd: REPO_ROOT });
    await waitFor(
      'the demo app /healthz',
      async () => {
        if (!proc.running()) throw new Error(`demo exited:\n${proc.tail()}`);
        const res = await fetch(`http://127.0.0.1:${this.demoPort}/healthz`).catch(() => undefined);
        return res?.status === 200;
      },
      30_000,
    );
    return proc;
  }

  /** The environment compose gives the gateway service, localised, with its own state dir and DICOM port. */
  async gatewayEnv(stateDir: string): Promise<NodeJS.ProcessEnv> {
    const env = serviceEnvironment(this.compose, 'gateway');
    const out: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    for (const [k, v] of Object.entries(env)) out[k] = this.localiseAddress(v);
    out.SCANRELAY_GATEWAY_STATE_DIR = stateDir;
    out.SCANRELAY_GATEWAY_DICOM_PORT = String(await freePort());
    out.SCANRELAY_GATEWAY_MANAGE_JWKS = this.localiseMount('gateway', env.SCANRELAY_GATEWAY_MANAGE_JWKS as string);
    out.NODE_EXTRA_CA_CERTS = this.localiseMount('gateway', env.NODE_EXTRA_CA_CERTS as string);
    return out;
  }

  /** Stop every process and remove the temp directory. Safe to call after a partial start. */
  async stop(): Promise<void> {
    await this.procs.stopAll();
    await rm(this.dir, { recursive: true, force: true });
  }
}
