/**
 * The admin HTTP API over a real server: bearer admin tokens, create/list/revoke gateways, revoke sessions,
 * and the generic HTTP rules (paths it does not own, methods, content type, body cap, JSON errors).
 */
import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { gatewayActivation, mintAdmin, mintGatewayAssertion, mintSession } from '../helpers/tokens.js';
import { authFailure } from './fixture.js';
import { type ApiFixture, apiFixture } from './http-fixture.js';

let f: ApiFixture;
beforeEach(async () => {
  f = await apiFixture();
});
afterEach(async () => {
  await f.close();
});

describe('admin authentication', () => {
  it('requires a valid admin bearer token on every admin endpoint', async () => {
    const session = await mintSession(f.manage, { now: f.clock.now() });
    const wrongScope = await mintAdmin(f.manage, { now: f.clock.now(), claims: { scope: 'user' } });
    const cases: [Record<string, string>, number][] = [
      [{}, 401],
      [{ authorization: 'Basic YWRtaW46YWRtaW4=' }, 401],
      [{ authorization: `Bearer ${session}` }, 401],
      [{ authorization: `Bearer ${wrongScope}` }, 403],
    ];
    for (const [headers, status] of cases) {
      for (const [method, path] of [
        ['GET', '/v1/admin/gateways'],
        ['POST', '/v1/admin/gateways'],
        ['DELETE', '/v1/admin/gateways/gw-1'],
        ['POST', '/v1/admin/sessions/sid-1/revoke'],
      ] as const) {
        const r = await f.call(method, path, {
          headers,
          body: method === 'POST' ? { site: 'site-a', name: 'x' } : undefined,
        });
        expect([method, path, r.status]).toEqual([method, path, status]);
        expect(typeof r.body.code).toBe('string');
        expect(typeof r.body.message).toBe('string');
      }
    }
    expect(await f.registry.listGateways()).toEqual([]);
    expect(f.hooks.sessionsRevoked).toEqual([]);
  });

  it('never reads a token from the query string', async () => {
    const token = await mintAdmin(f.manage, { now: f.clock.now() });
    const r = await f.call('GET', `/v1/admin/gateways?access_token=${token}`);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('answers 401 token_expired for an expired admin token', async () => {
    const token = await mintAdmin(f.manage, { now: f.clock.now(), ttlSeconds: 60 });
    f.clock.advance(120_000);
    const r = await f.call('GET', '/v1/admin/gateways', { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(401);
    expect(r.body.code).toBe('token_expired');
  });
});

describe('fleet view', () => {
  it('lists each gateway with presence, agent, outbox, peers and clock skew; filters by site and online; 404 unknown', async () => {
    const a = await f.issue('site-a');
    const b = await f.issue('site-b');
    const now = f.clock.now();
    await f.presence.claim(
      { gateway: a.gateway, site: 'site-a', node: 'node-1', connection: 'c1', since: now },
      45_000,
    );
    const report = {
      agent: { version: '0.1.0', transport: 'ws', startedAt: now - 60_000 },
      outbox: { pending: 0, oldestAt: null },
      peers: [{ aet: 'MG1', online: true, checkedAt: now - 1000 }],
      clockSkewMs: 120,
      reportedAt: now,
    };
    await f.presence.saveReport(a.gateway, report);

    const list = await f.call('GET', '/v1/admin/gateways', { admin: true });
    const byId = new Map((list.body.gateways as { id: string }[]).map((g) => [g.id, g]));
    expect(byId.get(a.gateway)).toMatchObject({
      site: 'site-a',
      presence: { online: true, since: now, node: 'node-1', lastTrafficAt: now },
      agent: report.agent,
      outbox: report.outbox,
      peers: report.peers,
      clockSkewMs: 120,
      reportedAt: now,
    });
    expect(byId.get(b.gateway)).toMatchObject({
      status: 'pending',
      presence: { online: false, since: null, node: null, lastTrafficAt: null },
      agent: null,
      outbox: null,
      peers: null,
      clockSkewMs: null,
    });
    const ids = async (query: string) => {
      const r = await f.call('GET', `/v1/admin/gateways${query}`, { admin: true });
      expect(r.status).toBe(200);
      return (r.body.gateways as { id: string }[]).map((g) => g.id);
    };
    expect(await ids('?online=true')).toEqual([a.gateway]);
    expect(await ids('?online=false')).toEqual([b.gateway]);
    expect(await ids('?site=site-b')).toEqual([b.gateway]);
    expect(await ids('?site=site-b&online=true')).toEqual([]);
    for (const bad of ['?online=yes', '?site=..%2F', '?status=active']) {
      const r = await f.call('GET', `/v1/admin/gateways${bad}`, { admin: true });
      expect([bad, r.status, r.body.code]).toEqual([bad, 400, 'bad_message']);
    }

    const one = await f.call('GET', `/v1/admin/gateways/${a.gateway}`, { admin: true });
    expect(one.status).toBe(200);
    expect(one.body).toEqual(byId.get(a.gateway));
    f.clock.advance(45_001);
    const lapsed = await f.call('GET', `/v1/admin/gateways/${a.gateway}`, { admin: true });
    expect(lapsed.body.presence).toEqual({ online: false, since: now + 45_000, node: null, lastTrafficAt: now });
    for (const id of ['gw-unknown', 'GW%20X']) {
      const r = await f.call('GET', `/v1/admin/gateways/${id}`, { admin: true });
      expect([id, r.status, r.body.code]).toEqual([id, 404, 'not_found']);
    }
    expect((await f.call('GET', `/v1/admin/gateways/${a.gateway}`)).status).toBe(401);
  });
});

describe('gateways', () => {
  it('creates, lists and revokes, telling the core about each revocation', async () => {
    const created = await f.call('POST', '/v1/admin/gateways', {
      admin: true,
      body: { site: 'site-a', name: 'Room 1' },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ site: 'site-a' });
    expect(created.body.gateway).toMatch(/^gw-[a-z0-9]{16}$/);
    expect(created.body.activationCode).toMatch(/^([0-9A-Z]{4}-){4}[0-9A-Z]{4}$/);
    const id = created.body.gateway as string;

    const { key, body } = await gatewayActivation(created.body.activationCode as string);
    expect((await f.call('POST', '/v1/activate', { body })).status).toBe(200);

    const list = await f.call('GET', '/v1/admin/gateways', { admin: true });
    expect(list.status).toBe(200);
    const gateways = list.body.gateways as Record<string, unknown>[];
    expect(gateways).toHaveLength(1);
    expect(gateways[0]).toMatchObject({
      id,
      site: 'site-a',
      name: 'Room 1',
      status: 'active',
      thumbprint: key.thumbprint,
    });
    expect(JSON.stringify(list.body)).not.toMatch(/"hash"|"salt"|activationCode/);

    const revoked = await f.call('DELETE', `/v1/admin/gateways/${id}`, { admin: true });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ id, site: 'site-a', status: 'revoked' });
    expect(f.hooks.gatewaysRevoked).toEqual([id]);
    // Reconnect refused (case 27).
    const assertion = await mintGatewayAssertion(key, { gateway: id, now: f.clock.now() });
    expect((await authFailure(f.auth.verifyGatewayAssertion(assertion))).code).toBe('revoked');
  });

  it('answers 404 for an unknown or impossible gateway id', async () => {
    for (const id of ['gw-unknown', 'GW-UPPER', '%2e%2e', 'a'.repeat(70)]) {
      const r = await f.call('DELETE', `/v1/admin/gateways/${id}`, { admin: true });
      expect([id, r.status, r.body.code]).toEqual([id, 404, 'not_found']);
    }
    expect(f.hooks.gatewaysRevoked).toEqual([]);
  });

  it('validates the create body: site id, name, unknown fields', async () => {
    const bodies = [
      { site: 'Site A', name: 'x' },
      { site: 'site-a' },
      { site: 'site-a', name: '' },
      { site: 'site-a', name: 'x'.repeat(129) },
      { site: 'site-a', name: 'bad\u0000name' },
      { site: 'site-a', name: 'x', status: 'active' },
      [],
    ];
    for (const body of bodies) {
      const r = await f.call('POST', '/v1/admin/gateways', { admin: true, body });
      expect([body, r.status, r.body.code]).toEqual([body, 400, 'bad_message']);
    }
    expect(await f.registry.listGateways()).toEqual([]);
  });
});

describe('sessions', () => {
  it('revokes a session id: its tokens are refused and the core is told', async () => {
    const token = await mintSession(f.manage, { now: f.clock.now(), claims: { sid: 'sid-logout' } });
    await f.auth.verifySession(token);
    const r = await f.call('POST', '/v1/admin/sessions/sid-logout/revoke', { admin: true });
    expect(r.status).toBe(200);
    expect(r.body.sid).toBe('sid-logout');
    expect(f.hooks.sessionsRevoked).toEqual(['sid-logout']);
    expect((await authFailure(f.auth.verifySession(token))).code).toBe('revoked');
    const bad = await f.call('POST', '/v1/admin/sessions/has%20space/revoke', { admin: true });
    expect(bad.status).toBe(400);
  });
});

describe('HTTP rules', () => {
  it('leaves paths it does not own to the caller', async () => {
    for (const path of ['/healthz', '/v1/browser', '/v1/activated', '/v1/administrator']) {
      expect((await f.call('GET', path)).status).toBe(418);
    }
    expect((await f.call('GET', '/v1/admin/nothing', { admin: true })).status).toBe(404);
  });

  it('answers 405 with Allow for a wrong method', async () => {
    const r = await f.call('GET', '/v1/activate');
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('POST');
    expect((await f.call('PUT', '/v1/admin/gateways', { admin: true })).status).toBe(405);
  });

  it('answers 415 for a body that is not JSON and 400 for malformed JSON', async () => {
    const form = await f.call('POST', '/v1/activate', { body: 'code=x', headers: { 'content-type': 'text/plain' } });
    expect(form.status).toBe(415);
    expect(form.body.code).toBe('unsupported_media_type');
    const broken = await f.call('POST', '/v1/activate', { body: '{"code":' });
    expect(broken.status).toBe(400);
    expect(broken.body.code).toBe('bad_message');
  });

  it('answers 413 for a body over 16 KiB, declared or streamed, before parsing it', async () => {
    const declared = await f.call('POST', '/v1/activate', { body: { code: 'x'.repeat(20_000) } });
    expect(declared.status).toBe(413);
    expect(declared.body.code).toBe('too_large');
    // Chunked (no Content-Length): the cap applies while reading.
    const streamed = await new Promise<number>((resolve, reject) => {
      const req = request(`${f.base}/v1/activate`, { method: 'POST', headers: { 'content-type': 'application/json' } });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(`{"code":"${'x'.repeat(10_000)}`);
      req.write('y'.repeat(10_000));
      req.end('"}');
    });
    expect(streamed).toBe(413);
  });

  it('sends JSON errors with no-store caching', async () => {
    const r = await f.call('GET', '/v1/admin/gateways');
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.headers.get('cache-control')).toBe('no-store');
  });
});
