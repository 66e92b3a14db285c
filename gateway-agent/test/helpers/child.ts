/**
 * Run gateway-agent code in a separate Node process (to kill it with SIGKILL or freeze it with SIGSTOP).
 * The entry is bundled from source with esbuild on each run, so a child always runs the current code without
 * a prior `tsc -b`; npm dependencies stay external and load from node_modules.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
let outDir: Promise<string> | undefined;

/** Bundle `entry` (path relative to the repo root) to an ESM file; returns its path. */
export async function bundle(entry: string): Promise<string> {
  // Inside the repo (node_modules/.cache) so that the bundle's bare imports resolve from node_modules.
  outDir ??= (async () => {
    const base = join(ROOT, 'node_modules', '.cache', 'scanrelay-gateway-tests');
    await mkdir(base, { recursive: true });
    return mkdtemp(join(base, 'run-'));
  })();
  const dir = await outDir;
  const outfile = join(dir, `${basename(entry).replace(/\.ts$/, '')}-${process.pid}.mjs`);
  await build({
    entryPoints: [join(ROOT, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    alias: { '@scanrelay/protocol': join(ROOT, 'relay/protocol/src/index.ts') },
    // Bundled ESM that `require`s (pino's transports, ws's optional deps) needs a require.
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    logLevel: 'silent',
    absWorkingDir: ROOT,
  });
  return outfile;
}

/** Remove this process's bundles (call in afterAll). */
export async function cleanupBundles(): Promise<void> {
  if (!outDir) return;
  const dir = await outDir;
  outDir = undefined;
  await rm(dir, { recursive: true, force: true });
}

export interface Child {
  proc: ChildProcess;
  /** Lines the child printed on stdout so far. */
  lines: string[];
  /** Resolves with the first stdout line matching `pred`. */
  waitFor(pred: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (or signal name) when it ends. */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
  stderr(): string;
}

/** Start `node <file> ...args` with `env` added; stdout is read line by line. */
export function startChild(file: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(process.execPath, [file, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: ROOT,
  });
  const lines: string[] = [];
  const waiters: { pred: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  let buf = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    let nl = buf.indexOf('\n');
    while (nl !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      lines.push(line);
      for (const w of [...waiters])
        if (w.pred(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      nl = buf.indexOf('\n');
    }
  });
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    err = (err + chunk).slice(-200_000);
  });
  const exited = new Promise<number | string>((resolve) => {
    proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1));
  });
  return {
    proc,
    lines,
    exited,
    stderr: () => err,
    kill: (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
    waitFor(pred, timeoutMs = 20_000) {
      const found = lines.find(pred);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => {
          reject(new Error(`child did not print the expected line in ${timeoutMs} ms; stderr:\n${err.slice(-4000)}`));
        }, timeoutMs);
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(t);
            resolve(l);
          },
        });
        void exited.then(() => {
          clearTimeout(t);
          const late = lines.find(pred);
          if (late !== undefined) resolve(late);
          else reject(new Error(`child exited before printing the expected line; stderr:\n${err.slice(-4000)}`));
        });
      });
    },
  };
}
