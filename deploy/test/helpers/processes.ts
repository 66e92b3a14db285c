/**
 * Child processes for topology tests: each one's output goes to its own log file (shown when a test fails),
 * and a group stops everything it started — SIGTERM, then SIGKILL after a grace period — even on failure.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Settles when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  /** Whether it is still running. */
  running(): boolean;
  /** Send `signal` and wait for the exit; SIGKILL after `graceMs` if it is still there. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ExitInfo>;
  /** The last `lines` lines of its output. */
  tail(lines?: number): string;
}

export class ProcessGroup {
  private readonly procs: Managed[] = [];
  constructor(private readonly logDir: string) {}

  start(
    name: string,
    cmd: string,
    args: readonly string[],
    opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
  ): Managed {
    const logFile = join(this.logDir, `${name}.log`);
    const log = createWriteStream(logFile, { flags: 'a' });
    log.write(`\n=== start ${cmd} ${args.join(' ')}\n`);
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    let done = false;
    const exited = new Promise<ExitInfo>((resolveExit) => {
      child.once('error', (err) => {
        log.write(`=== spawn error: ${err.message}\n`);
        done = true;
        resolveExit({ code: 127, signal: null });
      });
      child.once('exit', (code, signal) => {
        done = true;
        log.write(`=== exit code=${code} signal=${signal}\n`);
        resolveExit({ code, signal });
      });
    });
    const managed: Managed = {
      name,
      child,
      logFile,
      exited,
      running: () => !done,
      stop: async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000) => {
        if (done) return exited;
        child.kill(signal);
        const timer = setTimeout(() => {
          if (!done) child.kill('SIGKILL');
        }, graceMs);
        try {
          return await exited;
        } finally {
          clearTimeout(timer);
        }
      },
      tail: (lines = 40) => {
        try {
          return readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n');
        } catch {
          return '';
        }
      },
    };
    this.procs.push(managed);
    return managed;
  }

  /** Output of every process, for a failure report. */
  report(lines = 30): string {
    return this.procs.map((p) => `--- ${p.name} (${p.logFile})\n${p.tail(lines)}`).join('\n');
  }

  /** Stop every process still running, most recently started first. */
  async stopAll(): Promise<void> {
    for (const p of [...this.procs].reverse()) await p.stop('SIGTERM', 5_000);
  }
}
