/**
 * Regression (issue 5, web-client restart tests): a relay node restarted on the same port sometimes failed with
 * EADDRINUSE, as if the old listener had not let go. Once `relay.close()` has resolved, the port must be free:
 * with browsers and a gateway connected, an idle HTTP keep-alive connection held open, and the WebTransport
 * listener on a fixed port too — a new node binds both at once, with no retry.
 *
 * The ws transport passes (close() awaits the server's 'close' after closeAllConnections()). Under
 * SCANRELAY_TEST_TRANSPORT=uws this fails today: the uWS transport's close() leaves idle HTTP keep-alive
 * connections open, and they hold the port (reported to the lead; CI runs this file on ws only).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture } from '../helpers/relay-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'relay-restart-'));
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=127.0.0.1',
  ],
  { stdio: 'ignore' },
);

let fx: Fixture;
afterEach(async () => {
  await fx.close();
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** GET /healthz on a keep-alive connection and leave that connection open and idle. */
function idleKeepAlive(port: number): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', headers: { connection: 'keep-alive' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(() => req.socket?.destroy()));
    });
    req.on('error', reject);
    req.end();
  });
}

it('a node restarted on the same ports binds them at once after close() resolved, five times over', async () => {
  fx = await createFixture();
  const tls = { webTransportCert: join(dir, 'cert.pem'), webTransportKey: join(dir, 'key.pem') };
  let relay = await fx.start({ ...tls, webTransportPort: 0 });
  const port = relay.port!;
  const wtPort = relay.webTransportPort!;
  const held: Array<() => void> = [];
  try {
    for (let round = 0; round < 5; round++) {
      await fx.browser(relay);
      await fx.browser(relay);
      await fx.gateway(relay, 'gw-1');
      held.push(await idleKeepAlive(port));
      await relay.close();
      // No retry: the old listeners are gone once close() resolved.
      relay = await fx.start({ ...tls, port, webTransportPort: wtPort });
      expect([relay.port, relay.webTransportPort]).toEqual([port, wtPort]);
    }
  } finally {
    for (const destroy of held) destroy();
  }
});
