/**
 * Builds the demo page's script (demo/page.ts + the client library + the protocol) with esbuild, once at
 * start-up, into memory. Source maps stay out: the demo serves exactly one minified file.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** demo/page.ts, whether this module runs from source (vitest) or from dist/demo (npm start). */
export function pageSource(): string {
  for (const rel of ['./page.ts', '../../demo/page.ts']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error('web-client/demo/page.ts not found next to the demo server; run from a full checkout');
}

export async function bundlePage(): Promise<string> {
  const result = await build({
    entryPoints: [pageSource()],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error('esbuild produced no output for the demo page');
  return file.text;
}
