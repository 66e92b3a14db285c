/**
 * Processes of a benchmark arm: started pinned to the SUT core with `taskset`, measured from /proc, always
 * stopped. Every process the harness starts is registered here so that an interrupted run still stops it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository root, found from this file whether it runs from source (bench/src/harness, under vitest)
 * or built (bench/dist/src/harness).
 */
export const REPO_ROOT = (() => {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const i = here.lastIndexOf(`${sep}bench${sep}`);
  if (i < 0) throw new Error(`cannot locate the repository root from ${here}`);
  return here.slice(0, i);
})();

/** CPU the system under test runs on; the load generator takes the other one. */
export const SUT_CPU = 1;
export const LOAD_CPU = 0;

const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64
const started = new Set<ChildProcess>();
const hasTaskset = spawnSync('taskset', ['-V']).status === 0;

export interface Proc {
  child: ChildProcess;
  pid: number;
  /** stdout+stderr so far (capped), for error messages. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Start `cmd args` pinned to `cpu` (when taskset exists). Resolves once `ready` matches its output. */
export async function startPinned(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; ready?: RegExp; cpu?: number; timeoutMs?: number } = {},
): Promise<Proc & { match: RegExpExecArray | null }> {
  const cpu = opts.cpu ?? SUT_CPU;
  const [file, argv] = hasTaskset ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, {
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.add(child);
  let out = '';
  const onData = (c: Buffer): void => {
    if (out.length < 64 * 1024) out += c.toString();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const proc: Proc = {
    child,
    pid: child.pid ?? -1,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) {
        started.delete(child);
        return;
      }
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await once(child, 'exit');
      clearTimeout(timer);
      started.delete(child);
    },
  };
  let match: RegExpExecArray | null = null;
  if (opts.ready) {
    const ready = opts.ready;
    const deadline = opts.timeoutMs ?? 20_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${cmd} did not become ready in ${deadline} ms; output:\n${out.slice(-2000)}`));
      }, deadline);
      const check = (): void => {
        match = ready.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', check);
      child.stderr?.on('data', check);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${cmd} exited (${code}) before ready; output:\n${out.slice(-2000)}`));
      });
    }).catch(async (err) => {
      await proc.stop('SIGKILL');
      throw err;
    });
  }
  return { ...proc, match };
}

/** Stop every process still running (end of run, or on SIGINT). */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...started].map((c) => (c.exitCode === null ? (c.kill('SIGKILL'), once(c, 'exit')) : 0)));
  started.clear();
}

/** utime+stime of a process (and its threads), in seconds; 0 when gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces: split after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Resident set size of a process, bytes. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Pin this process (the load generator) to the load CPU. */
export function pinSelf(): boolean {
  if (!hasTaskset) return false;
  return spawnSync('taskset', ['-cp', String(LOAD_CPU), String(process.pid)]).status === 0;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Raise the soft open-files limit to the hard limit for processes started from a shell. */
export function ulimitPrefix(): string[] {
  return ['sh', '-c', 'ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"'];
}
