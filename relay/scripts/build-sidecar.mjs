// Build the HTTP/3 WebTransport sidecar (relay/wt-sidecar, Go) into relay/wt-sidecar/bin/wt-sidecar.
// Modules come from the Go module proxy (GOPROXY) and are cached in GOMODCACHE; go.sum pins them.
// Without Go this prints why and exits 0: the relay still builds and serves WebSocket, and the HTTP/3
// tests fail loudly (they are never skipped).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../wt-sidecar/', import.meta.url));
const go = process.env.GO ?? 'go';
const probe = spawnSync(go, ['version'], { encoding: 'utf8' });
if (probe.status !== 0) {
  console.warn(`wt-sidecar: not built — \`${go}\` not found (Go ≥ 1.24 needed); HTTP/3 WebTransport stays off`);
  process.exit(0);
}
const started = Date.now();
const r = spawnSync(go, ['build', '-trimpath', '-mod=readonly', '-o', 'bin/wt-sidecar', '.'], {
  cwd: dir,
  stdio: 'inherit',
});
if (r.status !== 0) {
  console.warn('wt-sidecar: go build failed (see above); HTTP/3 WebTransport stays off');
  process.exit(0);
}
console.log(`wt-sidecar: built ${dir}bin/wt-sidecar with ${probe.stdout.trim()} in ${Date.now() - started} ms`);
