/**
 * Real redis-server processes for tests, on free loopback ports, in temporary directories.
 *
 * ```ts
 * const redis = await startRedis();          // { url, port, stop, pause, resume, restart, flushAll }
 * afterAll(() => redis.stop());
 * const cluster = await startRedisCluster();  // three masters; { urls, nodes, stop }
 * afterAll(() => cluster.stop());
 * ```
 *
 * Every server runs with `--appendonly yes --appendfsync always` in its own temp dir, so `restart()` and
 * `crash()` keep every acknowledged write (with `everysec` Redis may postpone the AOF write under I/O load
 * while still answering, and a SIGKILL then loses it); `--save ''` so no RDB snapshots are written. Pass
 * `['--appendfsync', 'everysec']` as `extra` where speed matters more than surviving SIGKILL. Every process
 * started here is also killed when the test process exits, so a failed `afterAll` cannot leave one behind.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Kill the server (SIGKILL if it does not stop) and remove its directory. Idempotent. */
  stop(): Promise<void>;
  /** SIGSTOP: the socket stays open but nothing answers (a hung Redis). */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
  /** Stop (SIGTERM, AOF flushed) and start again on the same port and directory: data kept. */
  restart(): Promise<void>;
  /** Kill the server with SIGKILL and start it again on the same port: acknowledged writes are kept. */
  crash(): Promise<void>;
  /** FLUSHALL through redis-cli (history lost). */
  flushAll(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) {
      try {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/** A port that was free a moment ago on 127.0.0.1 (redis-server cannot take `--port 0`). */
export async function freePort(): Promise<number> {
  return bindAndRelease(0);
}

/**
 * A free port P whose cluster bus port P + 10000 is free too (Redis Cluster listens on both; a port above
 * 55535 would make the bus port invalid and redis-server exit at start).
 */
export async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    try {
      await bindAndRelease(port);
      await bindAndRelease(port + 10_000);
      return port;
    } catch {
      // taken: try another
    }
  }
  throw new Error('no free port pair (P, P+10000) found for a Redis Cluster node');
}

function bindAndRelease(wanted: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(wanted, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server on port ${port} exited early (code ${child.exitCode}, ${child.signalCode})`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.setTimeout(500);
      socket.once('error', () => resolve(false));
      socket.once('timeout', () => {
        socket.destroy();
        resolve(false);
      });
      socket.connect(port, '127.0.0.1', () => {
        socket.write('PING\r\n');
        socket.once('data', (d) => {
          socket.destroy();
          // -LOADING while the AOF is replayed: not ready yet.
          resolve(d.toString().startsWith('+PONG'));
        });
      });
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function spawnRedis(port: number, dir: string, extra: string[]): ChildProcess {
  installExitHook();
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--protected-mode',
      'yes',
      '--loglevel',
      'warning',
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.resume();
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGCONT');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Start one redis-server. `extra` adds command-line options (later ones win, e.g. `--appendfsync everysec`). */
export async function startRedis(extra: string[] = []): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'scanrelay-redis-'));
  const port = extra.includes('--cluster-enabled') ? await freeClusterPort() : await freePort();
  let child = spawnRedis(port, dir, extra);
  let stopped = false;
  try {
    await waitForPort(port, child);
  } catch (err) {
    await stopChild(child, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const relaunch = async (signal: NodeJS.Signals): Promise<void> => {
    await stopChild(child, signal);
    child = spawnRedis(port, dir, extra);
    await waitForPort(port, child);
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopChild(child, 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
    pause() {
      child.kill('SIGSTOP');
    },
    resume() {
      child.kill('SIGCONT');
    },
    restart: () => relaunch('SIGTERM'),
    crash: () => relaunch('SIGKILL'),
    async flushAll() {
      await execFileAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'FLUSHALL']);
    },
  };
}

export interface RedisCluster {
  /** `redis://127.0.0.1:<port>` of every master (seed nodes). */
  urls: string[];
  nodes: RedisServer[];
  stop(): Promise<void>;
}

/** Start three masters on loopback and join them into a Redis Cluster covering all 16384 slots. */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) {
      nodes.push(
        await startRedis([
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          '2000',
        ]),
      );
    }
    await execFileAsync(
      'redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
      { timeout: 30_000 },
    );
    // `--cluster create` returns once slots are assigned; wait until every node agrees the cluster is ok.
    const deadline = Date.now() + 20_000;
    for (const node of nodes) {
      for (;;) {
        const { stdout } = await execFileAsync('redis-cli', [
          '-h',
          '127.0.0.1',
          '-p',
          String(node.port),
          'CLUSTER',
          'INFO',
        ]);
        if (stdout.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`Redis Cluster node ${node.port} not ok: ${stdout.slice(0, 200)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { urls: nodes.map((n) => n.url), nodes, stop };
}
