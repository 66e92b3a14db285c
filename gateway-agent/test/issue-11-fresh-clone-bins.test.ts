/**
 * Issue 11: the installers' commands in the READMEs must work from a fresh clone and can never reach the public
 * npm registry. A clone of this repository's HEAD goes through `npm ci` (from the npm cache, scripts off),
 * the binaries are checked before the build (a clear "not built" message) and after it (every README
 * command's `--help`), and no document may tell anyone to type `npx scanrelay-…`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCS = ['README.md', 'relay/README.md', 'gateway-agent/README.md', 'deploy/README.md'];
const BINS = ['scanrelay-relay', 'scanrelay-gateway'];
const exec = promisify(execFile);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command in the clone with npm pinned offline. */
async function run(cwd: string, file: string, args: string[]): Promise<Run> {
  // Offline: npm answers from its cache only, so a name that is not linked fails (ENOTCACHED) instead of
  // being fetched from the public registry.
  const env = { ...process.env, npm_config_offline: 'true' };
  try {
    const { stdout, stderr } = await exec(file, args, { cwd, env, timeout: 240_000, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Every `node_modules/.bin/scanrelay-*` command the docs show, reduced to its binary and sub-command. */
async function documentedCommands(): Promise<string[][]> {
  const found = new Map<string, string[]>();
  for (const doc of DOCS) {
    const text = await readFile(join(ROOT, doc), 'utf8');
    for (const m of text.matchAll(/node_modules\/\.bin\/(scanrelay-[a-z]+)((?: [a-z][a-z-]*)?)/g)) {
      const argv = [m[1]!, ...(m[2] ? [m[2].trim()] : [])];
      found.set(argv.join(' '), argv);
    }
  }
  return [...found.values()];
}

let dir: string;
let clone: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scanrelay-clone-'));
  clone = join(dir, 'repo');
  const cloned = await run(dir, 'git', ['clone', '--quiet', ROOT, clone]);
  expect(cloned.code, cloned.stderr).toBe(0);
  const ci = await run(clone, 'npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund']);
  expect(ci.code, ci.stderr.slice(-2000)).toBe(0);
}, 300_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('issue 11: binaries from a fresh clone', () => {
  it('no document tells an installer to run our binaries through npx', async () => {
    for (const doc of DOCS) {
      const text = await readFile(join(ROOT, doc), 'utf8');
      for (const bin of BINS) expect(text, `${doc} must not say "npx ${bin}"`).not.toContain(`npx ${bin}`);
    }
  });

  it('the docs show each binary by its node_modules/.bin path', async () => {
    const commands = await documentedCommands();
    for (const bin of BINS) expect(commands.some((c) => c[0] === bin)).toBe(true);
  });

  it('npm ci links both binaries; before the build they say how to fix it (exit 78), never fetch', async () => {
    for (const bin of BINS) {
      const r = await run(clone, join(clone, 'node_modules/.bin', bin), ['--help']);
      expect(r.code).toBe(78);
      expect(r.stderr).toContain(`${bin}: not built: run \`npm run build\``);
    }
  });

  it('after `npm run build` every README command answers --help (and `npm exec --no` finds them locally)', async () => {
    const build = await run(clone, 'npm', ['run', 'build']);
    expect(build.code, build.stdout.slice(-2000) + build.stderr.slice(-2000)).toBe(0);
    const commands = await documentedCommands();
    expect(commands.length).toBeGreaterThanOrEqual(3);
    for (const [bin, ...sub] of commands) {
      const r = await run(clone, join(clone, 'node_modules/.bin', bin!), [...sub, '--help']);
      expect(r.code, `${bin} ${sub.join(' ')} --help: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(bin);
    }
    for (const bin of BINS) {
      const r = await run(clone, 'npm', ['exec', '--no', '--', bin, '--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('Usage');
    }
  }, 300_000);
});
