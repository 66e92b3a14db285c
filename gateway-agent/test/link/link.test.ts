/**
 * The link state machine against a protocol-speaking fake relay on port 0: assertion per connection, backoff
 * and reconnect, several URLs in turn, close codes (revoked → stop), heartbeats and half-open detection.
 */

import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { TOKEN_TYP } from '@scanrelay/protocol';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import type { GatewayKey } from '../../../relay/test/helpers/tokens.js';
import { gatewayEndpoint } from '../../src/config.js';
import { type LoadedIdentity, loadIdentity, signAssertion } from '../../src/keys/identity.js';
import { GatewayLink, type LinkOptions } from '../../src/link/link.js';
import type { LinkState } from '../../src/link/types.js';
import { silentLogger } from '../../src/log.js';
import { FakeRelay, TcpProxy } from '../helpers/fake-relay.js';
import { makeGatewayState } from '../helpers/gateway-state.js';

const logger = silentLogger();
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function setup(
  urls: (relay: FakeRelay) => string[],
  tuning: Partial<LinkOptions> = {},
): Promise<{ relay: FakeRelay; link: GatewayLink; states: LinkState[]; key: GatewayKey; identity: LoadedIdentity }> {
  const relay = await FakeRelay.start();
  cleanups.push(() => relay.stop());
  const state = await makeGatewayState();
  cleanups.push(() => rm(state.dir, { recursive: true, force: true }));
  const identity = await loadIdentity(state.dir);
  const link = new GatewayLink({
    urls: urls(relay).map(gatewayEndpoint),
    gatewayId: identity.gateway,
    site: identity.site,
    assertion: () => signAssertion(identity, 'scanrelay'),
    logger,
    backoff: { baseMs: 20, maxMs: 100 },
    pingIntervalMs: 100,
    deadAfterMs: 600,
    helloTimeoutMs: 1000,
    ...tuning,
  });
  cleanups.push(() => link.stop());
  const states: LinkState[] = [];
  link.on('state', (s) => states.push(s));
  return { relay, link, states, key: state.key, identity };
}

function onlineOnce(link: GatewayLink): Promise<void> {
  return new Promise((resolve) => link.once('online', () => resolve()));
}

describe('gateway link', () => {
  it('connects, authenticates with a fresh, short-lived gateway assertion, and goes online', async () => {
    const { relay, link, states, key } = await setup((r) => [r.url]);
    const online = onlineOnce(link);
    link.start();
    await online;
    expect(states).toEqual(['connecting', 'authenticating', 'online']);
    const token = await relay.last.token;
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', typ: TOKEN_TYP.gateway });
    const { payload } = await jwtVerify(token, key.publicKey, {
      audience: 'scanrelay',
      issuer: 'gw-1',
      subject: 'gw-1',
      typ: TOKEN_TYP.gateway,
      requiredClaims: ['iat', 'exp', 'jti'],
    });
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(60);
    expect(relay.last.codec).toBe('msgpack');
  });

  it('reconnects after a transient close, with a new assertion each time', async () => {
    const { relay, link, states } = await setup((r) => [r.url]);
    link.start();
    await onlineOnce(link);
    const again = onlineOnce(link);
    relay.last.close(4000, 'internal');
    await again;
    expect(relay.connections).toHaveLength(2);
    expect(await relay.connections[0]!.token).not.toBe(await relay.connections[1]!.token);
    expect(states).toEqual([
      'connecting',
      'authenticating',
      'online',
      'backoff',
      'connecting',
      'authenticating',
      'online',
    ]);
  });

  it('tries the relay URLs in turn when one is down', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadPort = (dead.address() as { port: number }).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const { relay, link } = await setup((r) => [`http://127.0.0.1:${deadPort}`, r.url]);
    link.start();
    await onlineOnce(link);
    expect(link.url).toBe(gatewayEndpoint(relay.url));
  });

  it('stops for good when the relay closes with "revoked", and says why', async () => {
    const { relay, link } = await setup((r) => [r.url]);
    relay.refuseNext = { code: 'revoked', closeCode: 4506 };
    link.start();
    const info = await link.stopped;
    expect(info).toMatchObject({ reason: 'revoked', closeCode: 4506 });
    expect(link.state).toBe('stopped');
    // No further attempt is made.
    await new Promise((r) => setTimeout(r, 300));
    expect(relay.connections).toHaveLength(1);
  });

  it('keeps retrying after a transient refusal (internal, 4000) and then gets in', async () => {
    const { relay, link } = await setup((r) => [r.url]);
    relay.refuseNext = { code: 'internal', closeCode: 4000 };
    link.start();
    await onlineOnce(link);
    expect(relay.connections).toHaveLength(2);
  });

  it('sends heartbeats that expect answers while online', async () => {
    const { relay, link } = await setup((r) => [r.url]);
    link.start();
    await onlineOnce(link);
    await relay.until(() => relay.pings >= 3, 5000, 'three pings');
    expect(link.state).toBe('online');
  });

  it('replaces a half-open socket: no traffic within the bound → terminate and reconnect', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.stop());
    const proxy = await TcpProxy.start(relay.port);
    cleanups.push(() => proxy.stop());
    const { link } = await setup(() => [proxy.url]);
    link.start();
    await onlineOnce(link);
    const replaced = new Promise<void>((resolve) => link.once('offline', () => resolve()));
    proxy.blackhole();
    await replaced;
    await onlineOnce(link);
    expect(relay.connections.length).toBe(2);
  });

  it('gives up on a relay that never answers hello, and tries again', async () => {
    const { relay, link } = await setup((r) => [r.url], { helloTimeoutMs: 200 });
    relay.answerHello = false;
    link.start();
    await relay.until(() => relay.connections.length >= 2, 5000, 'a second attempt');
    relay.answerHello = true;
    await onlineOnce(link);
  });

  it('an oversized frame from the relay makes the gateway reconnect, not stop for good', async () => {
    const { relay, link } = await setup((r) => [r.url]);
    link.start();
    await onlineOnce(link);
    const again = onlineOnce(link);
    relay.last.ws.send(Buffer.alloc(70 * 1024), { binary: true });
    await again;
    expect(relay.connections).toHaveLength(2);
    expect(link.state).toBe('online');
  });

  it('speaks JSON when configured to', async () => {
    const { relay, link } = await setup((r) => [r.url], { codec: 'json' });
    link.start();
    await onlineOnce(link);
    expect(relay.last.codec).toBe('json');
  });
});
