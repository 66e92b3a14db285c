/**
 * The HTTP API on a real node:http server (127.0.0.1, port 0) over the auth fixture, with recording admin
 * hooks and a counting scrypt hasher (cheap parameters; the count proves when hashing did or did not run).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type EnrolmentOptions, scryptHasher } from '../../src/auth/activation.js';
import { createHttpApi } from '../../src/auth/http-api.js';
import { MemoryPresence } from '../../src/ports/presence-memory.js';
import { mintAdmin, TEST_AUDIENCE } from '../helpers/tokens.js';
import { type AuthFixture, authFixture } from './fixture.js';

export interface ApiFixture extends AuthFixture {
  base: string;
  hooks: { gatewaysRevoked: string[]; sessionsRevoked: string[] };
  /** The presence the fleet view reads (memory, on the fixture's clock). */
  presence: MemoryPresence;
  /** How many times the secret hasher ran. */
  hashes(): number;
  /** Call the API; `admin: true` adds a valid admin bearer token. */
  call(
    method: string,
    path: string,
    opts?: { body?: unknown; admin?: boolean; headers?: Record<string, string> },
  ): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }>;
  /** Create a gateway through the admin API; returns the 201 body. */
  issue(site?: string): Promise<{ gateway: string; site: string; activationCode: string; expiresAt: number }>;
}

export async function apiFixture(
  activation: Omit<EnrolmentOptions, 'registry' | 'clock' | 'logger'> = {},
  opts: { trustProxy?: boolean } = {},
): Promise<ApiFixture> {
  const fx = await authFixture();
  const hooks = { gatewaysRevoked: [] as string[], sessionsRevoked: [] as string[] };
  let hashCount = 0;
  const fast = scryptHasher({ N: 1024, r: 8, p: 1 });
  const presence = new MemoryPresence(fx.clock);
  const handler = createHttpApi({
    auth: fx.auth,
    registry: fx.registry,
    presence,
    clock: fx.clock,
    logger: fx.log.logger,
    audience: TEST_AUDIENCE,
    hooks: {
      gatewayRevoked: async (id) => {
        hooks.gatewaysRevoked.push(id);
      },
      sessionRevoked: async (sid) => {
        hooks.sessionsRevoked.push(sid);
      },
    },
    activation: {
      hashSecret: (secret, salt) => {
        hashCount++;
        return fast(secret, salt);
      },
      ...activation,
    },
    ...opts,
  });
  const server: Server = createServer((req, res) => {
    if (!handler(req, res)) {
      res.writeHead(418, { 'content-type': 'text/plain' });
      res.end('not the API');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const call: ApiFixture['call'] = async (method, path, o = {}) => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.admin) headers.authorization = `Bearer ${await mintAdmin(fx.manage, { now: fx.clock.now() })}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      parsed = { text };
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };

  return {
    ...fx,
    presence,
    base,
    hooks,
    hashes: () => hashCount,
    call,
    async issue(site = 'site-a') {
      const r = await call('POST', '/v1/admin/gateways', { admin: true, body: { site, name: `gateway at ${site}` } });
      if (r.status !== 201) throw new Error(`test set-up: issue failed ${r.status} ${JSON.stringify(r.body)}`);
      return r.body as { gateway: string; site: string; activationCode: string; expiresAt: number };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fx.close();
    },
  };
}
