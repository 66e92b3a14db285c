/**
 * The demo manage app on its own (node:http on port 0): sign-in, tokens minted on demand with the right claims,
 * the same-origin rule on every POST, security headers, and a key that survives a restart.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_COMMAND_LIFETIME_S, TOKEN_TYP, validateCommandArgs } from '@scanrelay/protocol';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_ISSUER, DemoServer } from '../../demo/server.js';

describe('demo manage app', () => {
  let dir: string;
  let server: DemoServer;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanrelay-demo-test-'));
    server = await DemoServer.start({ dataDir: dir, port: 0, logger: pino({ level: 'silent' }) });
    server.setRelayUrl('ws://127.0.0.1:7070');
    server.setGateway('site-a', 'gw-a');
  });

  afterEach(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function signIn(user: string): Promise<string> {
    const res = await fetch(`${server.url}/login`, {
      method: 'POST',
      headers: { origin: server.url, 'content-type': 'application/x-www-form-urlencoded' },
      body: `user=${user}`,
      redirect: 'manual',
    });
    expect(res.status).toBe(303);
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    return cookie.split(';')[0]!;
  }

  const api = (path: string, cookie: string, body: object, headers: Record<string, string> = {}) =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { origin: server.url, 'content-type': 'application/json', cookie, ...headers },
      body: JSON.stringify(body),
    });

  it('mints a session token listing only the user’s sites, verifiable with the published JWKS', async () => {
    const cookie = await signIn('clinician-a');
    const res = await api('/api/token', cookie, {});
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    const jwks = (await (await fetch(`${server.url}/.well-known/jwks.json`)).json()) as { keys: object[] };
    expect(JSON.stringify(jwks)).not.toContain('"d"');
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks as never), {
      issuer: DEMO_ISSUER,
      audience: 'scanrelay',
      algorithms: ['ES256'],
      typ: TOKEN_TYP.session,
    });
    expect(protectedHeader.typ).toBe(TOKEN_TYP.session);
    expect(payload).toMatchObject({ sub: 'clinician-a', sites: ['site-a'] });
    expect(payload.sid).toEqual(expect.any(String));
  });

  it('mints a worklist.add command on demand: aud = the site’s gateway, ≤ 5 min, DICOM-valid args', async () => {
    const cookie = await signIn('clinician-a');
    const participant = server.clinic.find((p) => p.site === 'site-a')!;
    const res = await api('/api/command', cookie, { accession: participant.accession });
    expect(res.status).toBe(200);
    const { token, command } = (await res.json()) as { token: string; command: string };
    const { payload } = await jwtVerify(token, createLocalJWKSet(server.signer.jwks as never), {
      issuer: DEMO_ISSUER,
      audience: 'gw-a',
      typ: TOKEN_TYP.command,
    });
    expect(payload).toMatchObject({ sub: 'clinician-a', site: 'site-a', cmd: 'worklist.add', jti: command });
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(MAX_COMMAND_LIFETIME_S);
    expect(validateCommandArgs('worklist.add', payload.args)).toMatchObject({ accession: participant.accession });
  });

  it('will not mint for another site’s participant, nor for a site without a gateway', async () => {
    const cookie = await signIn('clinician-a');
    const other = server.clinic.find((p) => p.site === 'site-b')!;
    expect((await api('/api/command', cookie, { accession: other.accession })).status).toBe(404);
    const admin = await signIn('admin');
    expect((await api('/api/command', admin, { accession: other.accession })).status).toBe(503);
  });

  it.each([
    ['no Origin', { origin: '' }],
    ['another origin', { origin: 'https://evil.test' }],
    ['a look-alike origin', { origin: `${'http://127.0.0.1'}.evil.test` }],
    ['a cross-site fetch', { 'sec-fetch-site': 'cross-site' }],
  ])('refuses a POST with %s (403)', async (_name, headers) => {
    const cookie = await signIn('clinician-a');
    const res = await api('/api/token', cookie, {}, headers as Record<string, string>);
    expect(res.status).toBe(403);
  });

  it('refuses without a sign-in (401), a non-JSON body (415) and an oversized one (413)', async () => {
    expect((await api('/api/token', '', {})).status).toBe(401);
    const cookie = await signIn('clinician-a');
    expect((await api('/api/token', cookie, {}, { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await api('/api/command', cookie, { accession: 'x'.repeat(5000) })).status).toBe(413);
  });

  it('serves the page with a strict CSP and no inline script; the relay is the only other connect-src', async () => {
    const cookie = await signIn('clinician-a');
    const res = await fetch(`${server.url}/`, { headers: { cookie } });
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self' ws://127.0.0.1:7070 ws://localhost:7070");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await res.text();
    expect(html).toContain('<script type="module" src="/app.js"></script>');
    expect(html).not.toMatch(/<script>(?!<)/);
    expect(html).not.toMatch(/eyJ/); // no token in the page
    const script = await fetch(`${server.url}/app.js`);
    expect(script.headers.get('content-type')).toContain('javascript');
  });

  it('offers the relay’s WebTransport listener to the page: its pin in /api/clinic, its origin in connect-src', async () => {
    const cookie = await signIn('clinician-a');
    const before = (await (await fetch(`${server.url}/api/clinic`, { headers: { cookie } })).json()) as Record<
      string,
      unknown
    >;
    expect(before.webTransport).toBeUndefined();
    server.setWebTransport({ url: 'https://127.0.0.1:7443', certSha256: 'ab'.repeat(32) });
    const info = (await (await fetch(`${server.url}/api/clinic`, { headers: { cookie } })).json()) as Record<
      string,
      unknown
    >;
    expect(info.webTransport).toEqual({ url: 'https://127.0.0.1:7443', certSha256: 'ab'.repeat(32) });
    const csp = (await fetch(`${server.url}/`, { headers: { cookie } })).headers.get('content-security-policy')!;
    expect(csp).toContain(
      "connect-src 'self' ws://127.0.0.1:7070 ws://localhost:7070 https://127.0.0.1:7443 https://localhost:7443;",
    );
  });

  it('keeps its signing key private (0600) and the same across restarts', async () => {
    expect((await stat(join(dir, 'manage-key.json'))).mode & 0o777).toBe(0o600);
    const kid = server.signer.jwks.keys[0]!.kid;
    await server.close();
    server = await DemoServer.start({ dataDir: dir, port: 0, logger: pino({ level: 'silent' }) });
    expect(server.signer.jwks.keys[0]!.kid).toBe(kid);
  });
});
