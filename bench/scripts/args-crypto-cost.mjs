// Issue 17: CPU cost of encrypted command args, same process, same keys, clear vs encrypted.
// Manage app: mint (sign) vs encrypt + sign. Gateway: verify vs verify + decrypt. Relay: pre-check cost is
// the same JWS verify either way (it never touches the JWE), measured as verify of each token's JWS only.
// Run after `npm run build`:  node bench/scripts/args-crypto-cost.mjs [iterations]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jwtVerify } from 'jose';
import { PinnedKeys } from '../../gateway-agent/dist/commands/pinned-keys.js';
import { CommandVerifier } from '../../gateway-agent/dist/commands/verifier.js';
import { loadOrCreateEncryptionKey } from '../../gateway-agent/dist/keys/encryption-key.js';
import { silentLogger } from '../../gateway-agent/dist/log.js';
import { GatewayKeyPins } from '../../web-client/dist/demo/gateway-keys.js';
import { Signer } from '../../web-client/dist/demo/signer.js';

const N = Number(process.argv[2] ?? 300);
const dir = await mkdtemp(join(tmpdir(), 'args-cost-'));
const signer = await Signer.open({ dataDir: dir, issuer: 'https://manage.test' });
const jwksPath = join(dir, 'jwks.json');
const gwKey = await loadOrCreateEncryptionKey(join(dir, 'gw'));
const pins = new GatewayKeyPins();
await pins.offer('gw-1', gwKey.publicJwk);
pins.confirm('gw-1', gwKey.thumbprint);
const keys = await PinnedKeys.open(jwksPath, silentLogger());
const args = {
  accession: 'ACC1',
  patientId: '9434765919',
  patientName: 'SMITH^JANE',
  birthDate: '19700101',
  sex: 'F',
  stationAet: 'MG1',
  scheduledAt: '2026-11-24T09:00:00Z',
};
const verifier = new CommandVerifier({
  keys,
  issuer: 'https://manage.test',
  gatewayId: 'gw-1',
  site: 'site-a',
  encryptionKey: gwKey,
});
const base = { sub: 'u', gateway: 'gw-1', site: 'site-a', cmd: 'worklist.add', args };

async function cpu(fn) {
  await fn(); // warm
  const t0 = process.cpuUsage();
  for (let i = 0; i < N; i++) await fn();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / N; // µs per op
}
const out = {};
out.manageMintClearUs = await cpu(() => signer.command(base));
out.manageMintEncryptedUs = await cpu(() => signer.command({ ...base, encryptTo: pins }));
const clear = [];
const enc = [];
for (let i = 0; i < N + 1; i++) {
  clear.push((await signer.command(base)).token);
  enc.push((await signer.command({ ...base, encryptTo: pins })).token);
}
let i = 0;
out.gatewayVerifyClearUs = await cpu(() => verifier.verify(clear[i++ % clear.length]));
i = 0;
out.gatewayVerifyDecryptUs = await cpu(() => verifier.verify(enc[i++ % enc.length]));
const { decodeProtectedHeader } = await import('jose');
const manageKey = (await keys.resolve(decodeProtectedHeader(clear[0]).kid, 'ES256')).key;
if (manageKey) {
  i = 0;
  out.relayJwsVerifyClearUs = await cpu(() => jwtVerify(clear[i++ % clear.length], manageKey));
  i = 0;
  out.relayJwsVerifyEncryptedUs = await cpu(() => jwtVerify(enc[i++ % enc.length], manageKey));
}
out.tokenCharsClear = clear[0].length;
out.tokenCharsEncrypted = enc[0].length;
out.iterations = N;
out.node = process.version;
console.log(JSON.stringify(out, null, 1));
await rm(dir, { recursive: true, force: true });
