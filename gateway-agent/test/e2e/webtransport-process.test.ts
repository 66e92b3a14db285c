/**
 * `scanrelay-gateway run` (bundled from source, its own process) with SCANRELAY_GATEWAY_TRANSPORT=webtransport
 * against the REAL relay's WebTransport listener: it comes online, runs a command, and SIGTERM ends the
 * process with exit 0 — the WebTransport client leaves nothing behind that keeps Node alive.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createFixture, type Fixture } from '../../../relay/test/helpers/relay-fixture.js';
import { bundle, type Child, cleanupBundles, startChild } from '../helpers/child.js';
import { agentSettings, commandToken, type Enrolled, enrol, runCommand, subscribe, worklistArgs } from './stack.js';

const certDir = mkdtempSync(join(tmpdir(), 'gw-wtp-'));
let cli: string;
let fx: Fixture | undefined;
let gw: Enrolled | undefined;
const children: Child[] = [];

beforeAll(async () => {
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
      ...['-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem'), '-days', '2'],
      ...['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    ],
    { stdio: 'ignore' },
  );
  cli = await bundle('gateway-agent/src/cli.ts');
});
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill('SIGKILL');
    await c.exited;
  }
  await fx?.close();
  await gw?.cleanup();
});
afterAll(async () => {
  await cleanupBundles();
  rmSync(certDir, { recursive: true, force: true });
});

it('runs over WebTransport as a process and exits 0 on SIGTERM', async () => {
  fx = await createFixture();
  const relay = await fx.start({
    webTransportPort: 0,
    webTransportCert: join(certDir, 'cert.pem'),
    webTransportKey: join(certDir, 'key.pem'),
  });
  gw = await enrol(fx, relay);
  const pin = createHash('sha256')
    .update(new X509Certificate(readFileSync(join(certDir, 'cert.pem'))).raw)
    .digest('hex');
  const env = agentSettings(fx, relay, gw.stateDir, {
    SCANRELAY_GATEWAY_TRANSPORT: 'webtransport',
    SCANRELAY_GATEWAY_WEBTRANSPORT_URLS: `https://127.0.0.1:${relay.webTransportPort}`,
    SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256: pin,
    SCANRELAY_GATEWAY_LOG_LEVEL: 'info',
  });
  const { client: b } = await fx.browser(relay, { sites: ['site-a'] });
  await subscribe(b);
  const child = startChild(cli, ['run'], env as NodeJS.ProcessEnv);
  children.push(child);
  await b.next('presence', (m) => m.gateway === gw!.gateway && m.online === true, 15_000);
  const statuses = await runCommand(
    b,
    'p-1',
    await commandToken(fx, gw.gateway, 'worklist.add', worklistArgs('ACCWTP1')),
  );
  expect(statuses.at(-1)!.state).toBe('completed');
  expect(child.stderr()).toContain('relay link online over WebTransport');
  child.kill('SIGTERM');
  expect(await child.exited).toBe(0);
  await b.next('presence', (m) => m.gateway === gw!.gateway && m.online === false, 15_000);
  b.close();
}, 60_000);
