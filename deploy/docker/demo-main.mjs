#!/usr/bin/env node
/**
 * The demo manage app as its own process, for deploy/compose (the one-process `npm start` stack runs its own
 * relay; here the relays are separate nodes behind HAProxy). Configured by environment:
 *
 *   SCANRELAY_DEMO_PORT          listen port (default 8080)
 *   SCANRELAY_DEMO_HOST          listen address (default 0.0.0.0: inside a container)
 *   SCANRELAY_DEMO_DATA_DIR      where the signing key and JWKS live (default /var/lib/scanrelay-demo)
 *   SCANRELAY_DEMO_SIGNING_KEY   private JWK (ES256) to use, copied into the data dir on first start; the relays'
 *                                and gateways' JWKS must hold its public half (make-dev-secrets.sh writes both)
 *   SCANRELAY_MANAGE_ISSUER      `iss` of every token (the relays' SCANRELAY_MANAGE_ISSUER)
 *   SCANRELAY_DEMO_PUBLIC_ORIGIN origin the page is served from through the proxy, e.g. https://localhost:8443
 *   SCANRELAY_DEMO_RELAY_URL     relay base URL the page connects to, e.g. wss://localhost:8443
 *   SCANRELAY_DEMO_GATEWAYS      site=gateway pairs, comma separated, once the sites' gateways are enrolled
 *   SCANRELAY_LOG_LEVEL          pino level (default info)
 *
 *   node demo-main.mjs               serve the page
 *   node demo-main.mjs admin-token   print a 5-minute admin token for the relay's admin API (enrolment)
 */
import { copyFile, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { DemoServer } from '../../web-client/dist/demo/server.js';
import { Signer } from '../../web-client/dist/demo/signer.js';

const env = process.env;
const fail = (setting, message) => {
  process.stderr.write(`scanrelay-demo: ${setting}: ${message}\n`);
  process.exit(78);
};

const dataDir = env.SCANRELAY_DEMO_DATA_DIR || '/var/lib/scanrelay-demo';
const issuer = env.SCANRELAY_MANAGE_ISSUER || fail('SCANRELAY_MANAGE_ISSUER', "set it to the relays' manage issuer");
const portText = env.SCANRELAY_DEMO_PORT || '8080';
if (!/^\d+$/.test(portText) || Number(portText) > 65535) fail('SCANRELAY_DEMO_PORT', 'must be a TCP port');

// Signer keeps its key at <dataDir>/manage-key.json (mode 0600, which it enforces): start from a copy of the
// mounted key, never the mounted file itself.
await mkdir(dataDir, { recursive: true, mode: 0o700 });
const keyPath = join(dataDir, 'manage-key.json');
if (env.SCANRELAY_DEMO_SIGNING_KEY && !(await stat(keyPath).catch(() => undefined))) {
  await copyFile(env.SCANRELAY_DEMO_SIGNING_KEY, keyPath);
}

if (process.argv[2] === 'admin-token') {
  const signer = await Signer.open({ dataDir, issuer, audience: env.SCANRELAY_AUDIENCE || undefined });
  process.stdout.write(`${(await signer.admin('compose-operator', 300)).token}\n`);
  process.exit(0);
}

const logger = pino({ level: env.SCANRELAY_LOG_LEVEL || 'info', base: { app: 'scanrelay-demo' } });
const demo = await DemoServer.start({
  dataDir,
  issuer,
  port: Number(portText),
  host: env.SCANRELAY_DEMO_HOST || '0.0.0.0',
  publicOrigins: env.SCANRELAY_DEMO_PUBLIC_ORIGIN ? [env.SCANRELAY_DEMO_PUBLIC_ORIGIN] : [],
  logger,
});
if (env.SCANRELAY_DEMO_RELAY_URL) demo.setRelayUrl(env.SCANRELAY_DEMO_RELAY_URL);
for (const pair of (env.SCANRELAY_DEMO_GATEWAYS || '').split(',').filter(Boolean)) {
  const [site, gateway] = pair.split('=').map((s) => s.trim());
  if (!site || !gateway) fail('SCANRELAY_DEMO_GATEWAYS', `"${pair}" must be site=gateway`);
  demo.setGateway(site, gateway);
}
logger.info({ port: demo.port, kid: demo.signer.jwks.keys[0]?.kid }, 'demo manage app listening');

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  demo.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
