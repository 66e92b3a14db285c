/**
 * Runs the relay's protocol test suites again over WebTransport (HTTP/2 transport of
 * `@fails-components/webtransport`): SCANRELAY_TEST_TRANSPORT=webtransport makes helpers/relay-fixture.ts start
 * every node with a WebTransport listener (this file's certificate, pinned by hash) and makes fixture URLs
 * https://…, which helpers/client.ts opens with `webTransportSocketClass`. One wrapper per suite
 * (on-webtransport/*.test.ts), so each suite's top-level hooks stay its own. Wire-level WebSocket cases with no
 * WebTransport counterpart are not registered there (see `onWebTransport()` in the suites); their WebTransport
 * equivalents are in on-webtransport/transport-equivalents.test.ts.
 */
import { afterAll } from 'vitest';
import { removeCertificate, testCertificate } from './test-transport.js';

export async function registerOnWebTransport(suite: () => Promise<unknown>): Promise<void> {
  process.env.SCANRELAY_TEST_TRANSPORT = 'webtransport';
  testCertificate();
  afterAll(removeCertificate);
  await suite();
}
