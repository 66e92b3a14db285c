/**
 * The library's size budget (README "Size"): the browser bundle of web-client/src — client, protocol schemas,
 * both codecs (msgpackr included) and the WebTransport socket — minified and gzipped stays within 25 KiB.
 */

import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

export const BUDGET_BYTES = 25 * 1024;

describe('bundle size', () => {
  it('client + protocol, minified and gzipped, fits the 25 KiB budget', async () => {
    const result = await build({
      entryPoints: [fileURLToPath(new URL('../../src/index.ts', import.meta.url))],
      alias: { '@scanrelay/protocol': fileURLToPath(new URL('../../../relay/protocol/src/index.ts', import.meta.url)) },
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'browser',
      target: ['es2022'],
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const code = result.outputFiles[0]!.contents;
    const gzipped = gzipSync(code, { level: 9 }).byteLength;
    // Nothing from Node may end up in the browser bundle.
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((i) => i.startsWith('node:') || /node_modules\/(ws|pino|jose)\//.test(i))).toEqual([]);
    expect(inputs.some((i) => i.includes('relay/protocol/src/schema.ts'))).toBe(true);
    // WebTransport support ships in the same budget (the socket over one stream and its framing).
    expect(inputs.some((i) => i.includes('relay/protocol/src/webtransport-socket.ts'))).toBe(true);
    expect(gzipped).toBeGreaterThan(1024);
    expect(gzipped).toBeLessThanOrEqual(BUDGET_BYTES);
  });
});
