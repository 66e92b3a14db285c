/**
 * Bundles the k6 scripts with esbuild. For k6 (`--target k6`, default): msgpackr and lib/ are bundled, the
 * `k6*` modules stay external, output in bench/k6/dist/. For the shim (`buildForShim`): the `k6*` modules are
 * replaced by bench/k6/shim/*, and the bundle runs in Node (used by CI through bench/test/k6-shim.test.ts).
 *
 *   node bench/dist/k6/build.js            # → bench/k6/dist/{fanout,command,connections,churn}.js
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** The k6 scripts, by file name without `.js`. */
export const K6_SCRIPTS = ['fanout', 'command', 'connections', 'churn'] as const;
export type K6Script = (typeof K6_SCRIPTS)[number];

// This file runs from bench/k6 (source, under vitest) or bench/dist/k6 (built); find bench/k6 either way.
const here = dirname(fileURLToPath(import.meta.url));
export const K6_DIR = here.endsWith(join('dist', 'k6')) ? join(here, '..', '..', 'k6') : here;

const SHIM_MODULES: Record<string, string> = {
  k6: 'k6.ts',
  'k6/websockets': 'websockets.ts',
  'k6/metrics': 'metrics.ts',
  'k6/execution': 'execution.ts',
  'k6/timers': 'timers.ts',
};

/** Bundle one script for real k6. */
export async function buildForK6(script: K6Script, outDir = join(K6_DIR, 'dist')): Promise<string> {
  const outfile = join(outDir, `${script}.js`);
  await build({
    entryPoints: [join(K6_DIR, `${script}.js`)],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    external: ['k6', 'k6/*'],
    outfile,
    logLevel: 'silent',
  });
  return outfile;
}

/** Bundle one script for the Node shim. */
export async function buildForShim(script: K6Script, outDir: string): Promise<string> {
  const outfile = join(outDir, `${script}.shim.mjs`);
  const alias: Record<string, string> = {};
  for (const [name, file] of Object.entries(SHIM_MODULES)) alias[name] = join(K6_DIR, 'shim', file);
  await build({
    entryPoints: [join(K6_DIR, `${script}.js`)],
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    alias,
    outfile,
    logLevel: 'silent',
    // ws is CommonJS and requires Node built-ins; give the ESM bundle a real `require`.
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return outfile;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const s of K6_SCRIPTS) process.stdout.write(`${await buildForK6(s)}\n`);
}
