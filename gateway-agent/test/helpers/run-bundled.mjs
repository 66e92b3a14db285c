// Bundle a TypeScript entry from source (gateway-agent/test/helpers/child.ts) and run it with this Node.
//   node gateway-agent/test/helpers/run-bundled.mjs <entry.ts> [args…]
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  process.stderr.write('usage: node run-bundled.mjs <entry.ts> [args…]\n');
  process.exit(2);
}
const outfile = join(root, 'node_modules', '.cache', 'scanrelay-gateway-tests', `run-${process.pid}.mjs`);
await build({
  entryPoints: [join(root, entry)],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  alias: { '@scanrelay/protocol': join(root, 'relay/protocol/src/index.ts') },
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
});
const r = spawnSync(process.execPath, [outfile, ...args], { stdio: 'inherit', cwd: root });
rmSync(outfile, { force: true });
process.exit(r.status ?? 1);
