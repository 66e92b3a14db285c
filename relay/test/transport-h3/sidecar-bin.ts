/** The Go sidecar binary the tests use: built by `npm run build:sidecar` (CI's .ci/run does it). */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const SIDECAR_BIN =
  process.env.SCANRELAY_WT_SIDECAR ?? fileURLToPath(new URL('../../wt-sidecar/bin/wt-sidecar', import.meta.url));

/** Fail loudly (never skip) when the binary was not built. */
export function requireSidecar(): string {
  if (!existsSync(SIDECAR_BIN))
    throw new Error(`wt-sidecar not built at ${SIDECAR_BIN}: run \`npm run build:sidecar\` (needs Go ≥ 1.24)`);
  return SIDECAR_BIN;
}
