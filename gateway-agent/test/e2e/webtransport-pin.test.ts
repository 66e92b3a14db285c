/**
 * Regression: @fails-components/webtransport 1.6.8 checks `serverCertificateHashes` only when Node's own
 * certificate check failed, so a certificate chaining to a trusted CA is accepted whatever its hash and host
 * name. The gateway checks the pin itself on the TLS socket (src/link/transport-webtransport.ts). Proven in a
 * child process that trusts a test CA (NODE_EXTRA_CA_CERTS) and a relay presenting that CA's certificate for
 * another host name.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { bundle, cleanupBundles, startChild } from '../helpers/child.js';

const dir = mkdtempSync(join(tmpdir(), 'gw-wt-ca-'));
afterAll(async () => {
  await cleanupBundles();
  rmSync(dir, { recursive: true, force: true });
});

it('a pinned gateway refuses a CA-trusted certificate that does not match its pin (the library alone accepts it)', async () => {
  const f = (n: string) => join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  execFileSync(
    'openssl',
    ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=test-ca'],
    { stdio: 'ignore' },
  );
  execFileSync(
    'openssl',
    ['req', ...ec, '-keyout', f('leaf.key'), '-out', f('leaf.csr'), '-subj', '/CN=other.example'],
    { stdio: 'ignore' },
  );
  writeFileSync(f('ext'), 'subjectAltName=DNS:other.example\n');
  execFileSync(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      f('leaf.csr'),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f('leaf.pem'),
      '-days',
      '2',
      '-extfile',
      f('ext'),
    ],
    { stdio: 'ignore' },
  );
  const rightPin = createHash('sha256')
    .update(new X509Certificate(readFileSync(f('leaf.pem'))).raw)
    .digest('hex');

  const child = startChild(
    await bundle('gateway-agent/test/helpers/wt-pin-child.ts'),
    [f('leaf.pem'), f('leaf.key'), rightPin],
    {
      NODE_EXTRA_CA_CERTS: f('ca.pem'),
    },
  );
  try {
    const result = async (name: string) =>
      JSON.parse(await child.waitFor((l) => l.includes(`"case":"${name}"`), 30_000)).outcome as string;
    // The flaw this guards against (if a library upgrade fixes it, this line tells us the guard may go).
    expect(await result('library, wrong pin')).toBe('open');
    expect(await result('gateway, wrong pin')).toMatch(/^close /);
    expect(await result('gateway, right pin')).toBe('open');
    expect(await child.exited).toBe(0);
  } finally {
    child.kill('SIGKILL');
    await child.exited;
  }
}, 60_000);
