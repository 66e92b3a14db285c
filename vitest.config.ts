import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// One run covers every workspace. Tests import sources (TypeScript) directly; `@scanrelay/protocol` resolves
// to its source so a protocol change is tested without a rebuild. Integration tests that start the built
// binaries (relay, gateway agent) rely on `npm test` having run `tsc -b` first.
export default defineConfig({
  resolve: {
    alias: {
      '@scanrelay/protocol': fileURLToPath(new URL('./relay/protocol/src/index.ts', import.meta.url)),
    },
  },
  test: {
    include: ['{relay,relay/protocol,gateway-agent,web-client,bench,deploy}/test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: { json: '.vitest-results.json' },
  },
});
