/**
 * The demo manage app: a small node:http server standing in for the screening management system.
 *
 * It holds the signing key (Signer), serves the JWKS, signs in demo users (a cookie naming a server-side
 * login), renders today's clinic, and mints tokens on demand for the page:
 *
 * ```
 *  POST /login            form user=…            → cookie (HttpOnly, SameSite=Strict), 303 /
 *  GET  /api/clinic                              → user, sites with participants, relay URL
 *  POST /api/token        {}                     → { token, expiresAt }   session token (aud = relay)
 *  POST /api/command      { accession }          → { token, expiresAt, command }   worklist.add for that
 *                                                  participant, aud = the site's gateway, ≤ 5 min
 *  GET  /.well-known/jwks.json                   → public keys
 * ```
 *
 * Every POST must come from the page itself (Origin one of ours, `Sec-Fetch-Site: same-origin` when sent, JSON
 * bodies for the APIs), so another site cannot mint tokens with the user's cookie. Tokens never appear in a URL.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { bundlePage } from './bundle.js';
import { formatNhsNumber, type Participant, type SiteInfo, todaysClinic, worklistArgs } from './clinic.js';
import { CSS, clinicPage, loginPage } from './html.js';
import { Signer } from './signer.js';

export interface DemoUser {
  id: string;
  name: string;
  sites: string[];
}

export const DEFAULT_USERS: readonly DemoUser[] = [
  { id: 'clinician-a', name: 'Dr A. Clinician (site A)', sites: ['site-a'] },
  { id: 'clinician-b', name: 'Dr B. Clinician (site B)', sites: ['site-b'] },
  { id: 'admin', name: 'Programme admin (all sites)', sites: ['site-a', 'site-b'] },
];

export const DEFAULT_SITES: readonly SiteInfo[] = [
  { site: 'site-a', code: 'A', stationAet: 'HOLOGIC1' },
  { site: 'site-b', code: 'B', stationAet: 'HOLOGIC2' },
];

export const DEMO_ISSUER = 'https://manage.scanrelay.demo';

export interface DemoServerOptions {
  /** Key and JWKS live here. */
  dataDir: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default `https://manage.scanrelay.demo`. */
  issuer?: string;
  /** Session token lifetime, s. Default 600 (renewed in-band by the page). */
  sessionTtlSeconds?: number;
  /** Command token lifetime, s (≤ 300). Default 120. */
  commandTtlSeconds?: number;
  users?: readonly DemoUser[];
  sites?: readonly SiteInfo[];
  /** Extra origins the page is served from, e.g. `https://localhost:8443` behind a TLS proxy (deploy/compose). */
  publicOrigins?: readonly string[];
  logger: Logger;
  now?: () => number;
}

/** The relay's WebTransport listener as the page is told about it. */
export interface DemoWebTransport {
  /** `https://127.0.0.1:<port>` */
  url: string;
  /** SHA-256 of the listener's self-signed certificate, hex; omitted for a CA-issued one. */
  certSha256?: string;
}

interface Login {
  user: DemoUser;
  /** The `sid` claim: one per sign-in. */
  sid: string;
}

const MAX_BODY = 4096;
const COOKIE = 'scanrelay_demo';

export class DemoServer {
  readonly signer: Signer;
  readonly #opts: DemoServerOptions;
  readonly #server: Server;
  readonly #logins = new Map<string, Login>();
  readonly #gateways = new Map<string, string>();
  readonly #clinic: Participant[];
  #relayUrl = '';
  #webTransport: DemoWebTransport | undefined;
  #script = '';
  #port = 0;

  private constructor(opts: DemoServerOptions, signer: Signer) {
    this.#opts = opts;
    this.signer = signer;
    this.#clinic = todaysClinic(opts.sites ?? DEFAULT_SITES);
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        opts.logger.error({ err: (err as Error).name, path: req.url?.split('?')[0] }, 'demo request failed');
        if (!res.headersSent)
          json(res, 500, { code: 'internal', message: 'the demo server hit an error; see its log' });
        else res.destroy();
      });
    });
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 15_000;
  }

  /** Open the key, bundle the page, listen. */
  static async start(opts: DemoServerOptions): Promise<DemoServer> {
    const signer = await Signer.open({
      dataDir: opts.dataDir,
      issuer: opts.issuer ?? DEMO_ISSUER,
      ...(opts.now ? { now: opts.now } : {}),
    });
    const server = new DemoServer(opts, signer);
    server.#script = await bundlePage();
    await new Promise<void>((resolve, reject) => {
      server.#server.once('error', reject);
      server.#server.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', () => resolve());
    });
    server.#port = (server.#server.address() as AddressInfo).port;
    return server;
  }

  get port(): number {
    return this.#port;
  }
  /** The page's URL. */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }
  /** Origins the page can have (the relay must allow them on /v1/browser). */
  get origins(): string[] {
    return [`http://127.0.0.1:${this.#port}`, `http://localhost:${this.#port}`, ...(this.#opts.publicOrigins ?? [])];
  }
  get clinic(): readonly Participant[] {
    return this.#clinic;
  }

  /** Where the page connects (the relay's base URL, e.g. ws://127.0.0.1:7070). */
  setRelayUrl(url: string): void {
    this.#relayUrl = url;
  }

  /**
   * Offer the relay's WebTransport listener to the page (tried first, WebSocket as fallback). `certSha256` pins a
   * self-signed certificate (browsers accept that only for ECDSA and ≤ 14 days). Undefined: WebSocket only.
   */
  setWebTransport(wt: DemoWebTransport | undefined): void {
    this.#webTransport = wt;
  }

  /** The gateway serving `site` (known once it is enrolled). Commands for a site without one get 503. */
  setGateway(site: string, gateway: string): void {
    this.#gateways.set(site, gateway);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    this.#securityHeaders(res);
    const method = req.method ?? 'GET';
    if (method === 'GET') {
      if (path === '/healthz') return json(res, 200, { ok: true });
      if (path === '/favicon.ico') {
        res.writeHead(204).end();
        return;
      }
      if (path === '/app.js') return send(res, 200, 'text/javascript; charset=utf-8', this.#script);
      if (path === '/app.css') return send(res, 200, 'text/css; charset=utf-8', CSS);
      if (path === '/.well-known/jwks.json') return json(res, 200, this.signer.jwks);
      if (path === '/') {
        const login = this.#login(req);
        const users = this.#opts.users ?? DEFAULT_USERS;
        return send(res, 200, 'text/html; charset=utf-8', login ? clinicPage(login.user) : loginPage(users));
      }
      if (path === '/api/clinic') return this.#clinicApi(req, res);
      return json(res, 404, { code: 'not_found', message: 'no such page' });
    }
    if (method !== 'POST') return json(res, 405, { code: 'method_not_allowed', message: 'use GET or POST' });
    if (!this.#sameOrigin(req))
      return json(res, 403, { code: 'forbidden', message: 'requests must come from the demo page itself' });
    const body = await readBody(req);
    if (body === undefined) {
      res.setHeader('connection', 'close');
      return json(res, 413, { code: 'too_large', message: `bodies are limited to ${MAX_BODY} bytes` });
    }
    if (path === '/login') return this.#signIn(req, res, body);
    if (path === '/logout') {
      const id = cookieOf(req);
      if (id) this.#logins.delete(id);
      res.setHeader('set-cookie', `${COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
      res.writeHead(303, { location: '/' }).end();
      return;
    }
    if (!(req.headers['content-type'] ?? '').startsWith('application/json'))
      return json(res, 415, { code: 'bad_request', message: 'send JSON (content-type: application/json)' });
    const login = this.#login(req);
    if (!login) return json(res, 401, { code: 'unauthenticated', message: 'sign in again' });
    let input: Record<string, unknown>;
    try {
      const parsed = JSON.parse(body || '{}') as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      input = parsed as Record<string, unknown>;
    } catch {
      return json(res, 400, { code: 'bad_request', message: 'the body must be a JSON object' });
    }
    if (path === '/api/token') {
      const minted = await this.signer.session(
        login.user.id,
        login.sid,
        login.user.sites,
        this.#opts.sessionTtlSeconds ?? 600,
      );
      return json(res, 200, { token: minted.token, expiresAt: minted.expiresAt });
    }
    if (path === '/api/command') return this.#commandApi(res, login, input);
    return json(res, 404, { code: 'not_found', message: 'no such endpoint' });
  }

  #clinicApi(req: IncomingMessage, res: ServerResponse): void {
    const login = this.#login(req);
    if (!login) {
      json(res, 401, { code: 'unauthenticated', message: 'sign in again' });
      return;
    }
    const sites = login.user.sites.map((site) => ({
      site,
      participants: this.#clinic
        .filter((p) => p.site === site)
        .map((p) => ({
          accession: p.accession,
          name: `${p.given} ${p.family.charAt(0)}${p.family.slice(1).toLowerCase()}`,
          nhsNumber: formatNhsNumber(p.nhsNumber),
          appointment: p.appointment,
          stationAet: p.stationAet,
        })),
    }));
    json(res, 200, {
      user: { id: login.user.id, name: login.user.name },
      relayUrl: this.#relayUrl,
      ...(this.#webTransport ? { webTransport: this.#webTransport } : {}),
      sites,
    });
  }

  async #commandApi(res: ServerResponse, login: Login, input: Record<string, unknown>): Promise<void> {
    const accession = input.accession;
    const participant = typeof accession === 'string' ? this.#clinic.find((p) => p.accession === accession) : undefined;
    // Same answer for "no such participant" and "not your site": do not reveal other sites' lists.
    if (!participant || !login.user.sites.includes(participant.site))
      return json(res, 404, { code: 'not_found', message: 'no such participant in your clinics' });
    const gateway = this.#gateways.get(participant.site);
    if (!gateway)
      return json(res, 503, { code: 'gateway_unknown', message: `no gateway is enrolled for ${participant.site} yet` });
    const minted = await this.signer.command({
      sub: login.user.id,
      gateway,
      site: participant.site,
      cmd: 'worklist.add',
      args: worklistArgs(participant),
      ttlSeconds: this.#opts.commandTtlSeconds ?? 120,
    });
    this.#opts.logger.info({ user: login.user.id, site: participant.site, jti: minted.jti }, 'command token minted');
    json(res, 200, { token: minted.token, expiresAt: minted.expiresAt, command: minted.jti });
  }

  #signIn(req: IncomingMessage, res: ServerResponse, body: string): void {
    const userId = new URLSearchParams(body).get('user');
    const user = (this.#opts.users ?? DEFAULT_USERS).find((u) => u.id === userId);
    if (!user) {
      json(res, 400, { code: 'bad_request', message: 'unknown demo user' });
      return;
    }
    const old = cookieOf(req);
    if (old) this.#logins.delete(old);
    const id = randomBytes(24).toString('base64url');
    this.#logins.set(id, { user, sid: randomUUID() });
    this.#opts.logger.info({ user: user.id }, 'demo user signed in');
    res.setHeader('set-cookie', `${COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict`);
    res.writeHead(303, { location: '/' }).end();
  }

  #login(req: IncomingMessage): Login | undefined {
    const id = cookieOf(req);
    return id ? this.#logins.get(id) : undefined;
  }

  #sameOrigin(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (typeof origin !== 'string' || !this.origins.includes(origin)) return false;
    const site = req.headers['sec-fetch-site'];
    return site === undefined || site === 'same-origin';
  }

  #securityHeaders(res: ServerResponse): void {
    const relay = [this.#relayUrl, this.#webTransport?.url]
      .filter((u): u is string => !!u)
      .map((u) => ` ${relayOrigins(u).join(' ')}`)
      .join('');
    res.setHeader(
      'content-security-policy',
      `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'${relay}; ` +
        `form-action 'self'; base-uri 'none'; frame-ancestors 'none'`,
    );
    res.setHeader('x-content-type-options', 'nosniff');
    // Not `no-referrer`: with it Chrome sends `Origin: null` on form posts, and the same-origin check needs it.
    res.setHeader('referrer-policy', 'same-origin');
    res.setHeader('cache-control', 'no-store');
  }
}

/** ws://127.0.0.1:p also as ws://localhost:p, so the page works from either host name. */
function relayOrigins(url: string): string[] {
  const u = new URL(url);
  const base = `${u.protocol}//${u.host}`;
  if (u.hostname === '127.0.0.1') return [base, `${u.protocol}//localhost:${u.port}`];
  return [base];
}

function cookieOf(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, v] = part.trim().split('=');
    if (k === COOKIE && v) return v;
  }
  return undefined;
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        // Stop keeping it but let the rest drain, so the client can still read the 413.
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(body));
}
