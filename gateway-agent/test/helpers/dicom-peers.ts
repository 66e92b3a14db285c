/**
 * Real DICOM peers for the gateway's tests, all on loopback: Orthanc (a PACS, started on free ports with a
 * temporary configuration and storage directory), the dcmtk tools, and pynetdicom scripts (test/helpers/py).
 * Every process started here is killed by its `stop()` (tests call it in afterEach/afterAll).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PY_DIR = fileURLToPath(new URL('./py/', import.meta.url));

/** A free TCP port on 127.0.0.1 (closed again before returning; the race is acceptable on loopback). */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/**
 * `n` distinct free ports, all held open until every one is chosen: asking one at a time can hand out the
 * same port twice (the kernel reuses a just-released ephemeral port), which once made Orthanc's HTTP and
 * DICOM listeners collide.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const addr = s.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export async function tempDir(prefix = 'scanrelay-dicom-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * dcmtk's tools, resolved to Debian's install directory (override with SCANRELAY_DCMTK_BIN). By name alone,
 * PATH can find pynetdicom's console scripts of the same names first (pip installs `findscu`, `storescu`, …
 * into Python's bin directory) — a different implementation with different options, not the peer we test with.
 */
const DCMTK_TOOLS = new Set(['findscu', 'storescu', 'echoscu', 'movescu', 'getscu', 'dcmdump', 'dump2dcm', 'img2dcm']);
const DCMTK_BIN = process.env.SCANRELAY_DCMTK_BIN ?? '/usr/bin';

/** The Python with pynetdicom (override with SCANRELAY_TEST_PYTHON; CI sets it to the one it installed into). */
const PYTHON = process.env.SCANRELAY_TEST_PYTHON ?? 'python3';

/** Run a command (dcmtk tool, python3) to completion; never rejects on a non-zero exit. */
export function runTool(
  cmd: string,
  args: string[],
  opts: { cwd?: string; timeoutMs?: number } = {},
): Promise<ToolResult> {
  const file = DCMTK_TOOLS.has(cmd) ? join(DCMTK_BIN, cmd) : cmd;
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: opts.cwd, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Run a pynetdicom script from test/helpers/py with JSON on its last stdout line. */
export async function runPython(script: string, args: string[], timeoutMs = 30_000): Promise<unknown> {
  const r = await runTool(PYTHON, [join(PY_DIR, script), ...args], { timeoutMs });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last);
  } catch {
    throw new Error(`${script} exited ${r.code} without JSON output:\n${r.stdout}\n${r.stderr}`);
  }
}

/** findscu -W with keys; returns the response files' paths (rsp*.dcm in a fresh directory). */
export async function findscuWorklist(
  port: number,
  callingAet: string,
  calledAet: string,
  keys: string[],
): Promise<{ result: ToolResult; files: string[]; dir: string }> {
  const dir = await tempDir('findscu-');
  const args = ['-W', '-X', '-aet', callingAet, '-aec', calledAet, '127.0.0.1', String(port)];
  for (const k of keys) args.push('-k', k);
  const result = await runTool('findscu', args, { cwd: dir });
  const files = (await readdir(dir))
    .filter((f) => f.startsWith('rsp'))
    .sort()
    .map((f) => join(dir, f));
  return { result, files, dir };
}

export interface OrthancPeer {
  aet: string;
  dicomPort: number;
  httpPort: number;
  dir: string;
  /** GET/POST to Orthanc's REST API on loopback. */
  rest(path: string, init?: { method?: string; body?: unknown }): Promise<unknown>;
  stop(): Promise<void>;
}

export interface OrthancModality {
  aet: string;
  port: number;
}

/**
 * Start Orthanc as a PACS: strict AE checks, the listed modalities registered (they may find, move, store
 * and commit), everything else refused except echo and store. HTTP on loopback only.
 */
export async function startOrthanc(opts: {
  aet?: string;
  modalities: Record<string, OrthancModality>;
}): Promise<OrthancPeer> {
  const aet = opts.aet ?? 'ORTHANC';
  const dir = await tempDir('orthanc-');
  const [dicomPort, httpPort] = (await freePorts(2)) as [number, number];
  const modalities: Record<string, unknown> = {};
  for (const [name, m] of Object.entries(opts.modalities))
    modalities[name] = {
      AET: m.aet,
      Host: '127.0.0.1',
      Port: m.port,
      AllowEcho: true,
      AllowFind: true,
      AllowMove: true,
      AllowGet: true,
      AllowStore: true,
      AllowStorageCommitment: true,
    };
  const config = {
    Name: 'scanrelay-test-pacs',
    StorageDirectory: join(dir, 'db'),
    IndexDirectory: join(dir, 'db'),
    DicomAet: aet,
    DicomPort: dicomPort,
    HttpPort: httpPort,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomCheckCalledAet: true,
    DicomCheckModalityHost: true,
    DicomAlwaysAllowEcho: true,
    DicomAlwaysAllowStore: true,
    DicomAlwaysAllowFind: false,
    DicomAlwaysAllowMove: false,
    DicomAlwaysAllowGet: false,
    DicomModalities: modalities,
    Plugins: [],
    StableAge: 1,
    ConcurrentJobs: 1,
    LogExportedResources: false,
  };
  const configPath = join(dir, 'orthanc.json');
  await writeFile(configPath, JSON.stringify(config));
  const child: ChildProcess = spawn('Orthanc', [configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 20_000) stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = `http://127.0.0.1:${httpPort}`;
  const rest = async (path: string, init: { method?: string; body?: unknown } = {}) => {
    const res = await fetch(base + path, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      ...(init.body === undefined
        ? {}
        : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`Orthanc ${path}: HTTP ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Orthanc exited at start-up:\n${stderr}`);
    try {
      await rest('/system');
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`Orthanc did not start within 20 s:\n${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { aet, dicomPort, httpPort, dir, rest, stop };
}
