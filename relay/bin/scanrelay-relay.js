#!/usr/bin/env -S node --max-semi-space-size=1
// Node flags: the same as relay/src/main.ts's shebang and the image ENTRYPOINT (deploy/test/launcher-flags.test.ts).
// Committed launcher for `scanrelay-relay`: npm links a workspace's bin at install time only if its target exists,
// and dist/ is built later, so the bin points here (always present) and this loads the build. Run it as
// `npm exec --no-install -- scanrelay-relay` or node_modules/.bin/scanrelay-relay — never bare `npx scanrelay-relay`, which can fetch a
// same-named package from the public registry.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/main.js', import.meta.url);
if (!existsSync(entry)) {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  process.stderr.write(
    `scanrelay-relay: not built: run \`npm run build\` in ${root} (missing ${fileURLToPath(entry)})\n`,
  );
  process.exit(78);
}
await import(entry.href);
