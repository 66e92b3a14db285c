/**
 * Child of e2e/webtransport-pin.test.ts, run with NODE_EXTRA_CA_CERTS naming a test CA (Node reads it only at
 * start-up). argv: cert.pem key.pem (a certificate for another host name, signed by that CA) pinHex.
 * Starts the relay's WebTransport listener with it and prints one JSON line per connection attempt:
 * {case, outcome: 'open' | 'close <code>'}.
 */
import { webTransportSocketClass } from '@scanrelay/protocol';
import { createFixture } from '../../../relay/test/helpers/relay-fixture.js';
import { loadWebTransport, webTransportOpener } from '../../src/link/transport-webtransport.js';
import { silentLogger } from '../../src/log.js';

const [cert, key, rightPin] = process.argv.slice(2) as [string, string, string];
const wrongPin = 'ab'.repeat(32);
const fx = await createFixture();
const relay = await fx.start({ webTransportPort: 0, webTransportCert: cert, webTransportKey: key });
const url = `https://127.0.0.1:${relay.webTransportPort}/v1/gateway`;
const Impl = await loadWebTransport();

const outcome = (on: (done: (o: string) => void) => void) =>
  new Promise<string>((resolve) => {
    const t = setTimeout(() => resolve('timeout'), 10_000);
    on((o) => {
      clearTimeout(t);
      resolve(o);
    });
  });

// The library alone, pinned to a hash that does not match.
const Raw = webTransportSocketClass(Impl, {
  forceReliable: true,
  serverCertificateHashes: [{ algorithm: 'sha-256', value: Buffer.from(wrongPin, 'hex') }],
});
const raw = new Raw(url, ['scanrelay.v1.msgpack']);
const rawOutcome = await outcome((done) => {
  raw.onopen = () => done('open');
  raw.onclose = (e) => done(`close ${e.code}`);
});
raw.close(1000, '');
process.stdout.write(`${JSON.stringify({ case: 'library, wrong pin', outcome: rawOutcome })}\n`);

for (const [name, pin] of [
  ['gateway, wrong pin', wrongPin],
  ['gateway, right pin', rightPin],
] as const) {
  const open = webTransportOpener(Impl, { certSha256: pin, logger: silentLogger() });
  let sock: ReturnType<typeof open> | undefined;
  const o = await outcome((done) => {
    sock = open(url, 'scanrelay.v1.msgpack', {
      open: () => done('open'),
      message: () => undefined,
      traffic: () => undefined,
      error: () => undefined,
      close: (code) => done(`close ${code}`),
    });
  });
  sock?.close(1000, '');
  process.stdout.write(`${JSON.stringify({ case: name, outcome: o })}\n`);
}
await fx.close();
process.exit(0);
