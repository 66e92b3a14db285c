/**
 * The relay's HTTP API for administration and gateway enrolment (see relay/openapi.yaml):
 *
 * | method + path                          | auth          | answer                                            |
 * |----------------------------------------|---------------|---------------------------------------------------|
 * | POST   /v1/admin/gateways {site,name}  | admin token   | 201 {gateway, site, activationCode, expiresAt}    |
 * | GET    /v1/admin/gateways[?site=&online=] | admin token | 200 {gateways: [...]} with the fleet view      |
 * | GET    /v1/admin/gateways/{id}         | admin token   | 200 one gateway with the fleet view; 404          |
 * | DELETE /v1/admin/gateways/{id}         | admin token   | 200 {id, site, status: "revoked", revokedAt}; 404 |
 * | POST   /v1/admin/sessions/{sid}/revoke | admin token   | 200 {sid, revokedUntil}                           |
 * | POST   /v1/activate                    | code + proof  | 200 {gateway, site} (format: activation.ts)       |
 *
 * Admin token: `Authorization: Bearer <JWT>` with typ `scanrelay-admin+jwt` and `scope: "admin"`, signed by the
 * manage app. Never a query parameter. Request bodies: `application/json`, at most 16 KiB. Errors: JSON
 * `{code, message}` with 400/401/403/404/405/409/413/415/429/500.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isId } from '@scanrelay/protocol';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { isTokenIdOk } from '../ports/ids.js';
import type { FleetPresence, Presence } from '../ports/presence.js';
import type { GatewayRecord, Registry } from '../ports/registry.js';
import { Enrolment, type EnrolmentOptions } from './activation.js';
import { ApiError } from './api-error.js';
import { type AdminHooks, AuthError, type Authenticator, type HttpApiHandler } from './types.js';
import { MAX_SESSION_LIFETIME_S } from './verify.js';

export const MAX_BODY_BYTES = 16 * 1024;

export interface HttpApiOptions {
  auth: Authenticator;
  registry: Registry;
  /** Live presence and the gateways' reports, for the fleet view. */
  presence: Presence;
  clock: Clock;
  hooks: AdminHooks;
  logger: Logger;
  /** The relay's id (`SCANRELAY_AUDIENCE`); admin tokens are checked against it by `auth`. */
  audience: string;
  /** Activation code policy; see EnrolmentOptions for defaults. */
  activation?: Omit<EnrolmentOptions, 'registry' | 'clock' | 'logger'>;
  /** Take the client address for per-IP limits from the last `X-Forwarded-For` hop (only behind our proxy). */
  trustProxy?: boolean;
}

const GATEWAY_PATH = /^\/v1\/admin\/gateways\/([^/]+)$/;
const SESSION_REVOKE_PATH = /^\/v1\/admin\/sessions\/([^/]+)\/revoke$/;

function authStatus(err: AuthError): number {
  if (err.code === 'forbidden' || err.code === 'revoked') return 403;
  if (err.code === 'rate_limited') return 429;
  if (err.code === 'internal') return 500;
  return 401;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.writableEnded) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

function publicView(g: GatewayRecord): Record<string, unknown> {
  return {
    id: g.id,
    site: g.site,
    name: g.name,
    status: g.status,
    createdAt: g.createdAt,
    ...(g.activatedAt !== undefined ? { activatedAt: g.activatedAt } : {}),
    ...(g.revokedAt !== undefined ? { revokedAt: g.revokedAt } : {}),
    ...(g.thumbprint !== undefined ? { thumbprint: g.thumbprint } : {}),
  };
}

/** A gateway record with its fleet view (fields documented in relay/protocol/README.md, "Fleet view"). */
function fleetView(g: GatewayRecord, f: FleetPresence): Record<string, unknown> {
  return {
    ...publicView(g),
    presence: { online: f.online, since: f.since, node: f.node, lastTrafficAt: f.lastTrafficAt },
    agent: f.report?.agent ?? null,
    outbox: f.report?.outbox ?? null,
    peers: f.report?.peers ?? null,
    clockSkewMs: f.report?.clockSkewMs ?? null,
    reportedAt: f.report?.reportedAt ?? null,
  };
}

/** `?site=&online=true|false` of the fleet list; anything else is refused so a typo never widens the list. */
function fleetFilter(query: string): { site?: string; online?: boolean } {
  const params = new URLSearchParams(query);
  const out: { site?: string; online?: boolean } = {};
  for (const [key, value] of params) {
    if (key === 'site') {
      if (!isId(value)) throw new ApiError(400, 'bad_message', 'site must be a site id ([a-z0-9-], 1 to 64)');
      out.site = value;
    } else if (key === 'online') {
      if (value !== 'true' && value !== 'false') throw new ApiError(400, 'bad_message', 'online must be true or false');
      out.online = value === 'true';
    } else {
      throw new ApiError(400, 'bad_message', `unknown query parameter "${key.slice(0, 32)}" (use site, online)`);
    }
  }
  return out;
}

/** Read a JSON object body: content type, size cap (declared and actual), parse, plain object. */
async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new ApiError(415, 'unsupported_media_type', 'send the body as Content-Type: application/json');
  }
  const tooLarge = () => new ApiError(413, 'too_large', `request body is larger than ${MAX_BODY_BYTES} bytes`);
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (err) {
        // Stop reading: the answer goes out with `Connection: close`, so the rest is never drained.
        req.pause();
        reject(err);
      } else resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > MAX_BODY_BYTES) finish(tooLarge());
      else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish());
    req.once('error', (err) => finish(err));
    req.once('close', () => finish(new Error('client went away before sending the whole body')));
  });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ApiError(400, 'bad_message', 'request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ApiError(400, 'bad_message', 'request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function onlyFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const field of Object.keys(body)) {
    if (!allowed.includes(field)) throw new ApiError(400, 'bad_message', `unknown field "${field.slice(0, 40)}"`);
  }
}

/** Create the `(req, res) => boolean` handler the relay's HTTP server calls first for every request. */
export function createHttpApi(opts: HttpApiOptions): HttpApiHandler {
  const { auth, registry, presence, clock, hooks } = opts;
  const log = opts.logger.child({ component: 'http-api' });
  const enrolment = new Enrolment({ registry, clock, logger: opts.logger, ...opts.activation });

  const clientIp = (req: IncomingMessage): string => {
    if (opts.trustProxy) {
      const xff = req.headers['x-forwarded-for'];
      const last = (Array.isArray(xff) ? xff.join(',') : (xff ?? '')).split(',').pop()?.trim();
      if (last) return last.slice(0, 64);
    }
    return req.socket.remoteAddress ?? 'unknown';
  };

  const requireAdmin = async (req: IncomingMessage): Promise<string> => {
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer +([^\s]+) *$/i.exec(header) : null;
    if (!match) {
      throw new ApiError(401, 'unauthenticated', 'send an admin token as "Authorization: Bearer <token>"');
    }
    try {
      return (await auth.verifyAdmin(match[1]!)).sub;
    } catch (err) {
      if (err instanceof AuthError) throw new ApiError(authStatus(err), err.code, err.message, { reason: err.reason });
      throw err;
    }
  };

  const methodNotAllowed = (allow: string) =>
    new ApiError(405, 'method_not_allowed', `use ${allow} on this path`, { headers: { allow } });

  async function listFleet(query: string): Promise<Record<string, unknown>[]> {
    const filter = fleetFilter(query);
    let records = await registry.listGateways();
    if (filter.site !== undefined) records = records.filter((g) => g.site === filter.site);
    const views = await presence.fleet(records.map((g) => g.id));
    const out: Record<string, unknown>[] = [];
    for (let i = 0; i < records.length; i++) {
      if (filter.online !== undefined && views[i]!.online !== filter.online) continue;
      out.push(fleetView(records[i]!, views[i]!));
    }
    return out;
  }

  async function route(req: IncomingMessage, res: ServerResponse, path: string, query: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (path === '/v1/activate') {
      if (method !== 'POST') throw methodNotAllowed('POST');
      const body = await readJson(req);
      send(res, 200, await enrolment.activate(body, clientIp(req)));
      return;
    }
    if (path === '/v1/admin/gateways') {
      if (method !== 'GET' && method !== 'POST') throw methodNotAllowed('GET, POST');
      const sub = await requireAdmin(req);
      if (method === 'GET') {
        send(res, 200, { gateways: await listFleet(query) });
        return;
      }
      const body = await readJson(req);
      onlyFields(body, ['site', 'name']);
      send(res, 201, await enrolment.issue(body.site, body.name, sub));
      return;
    }
    const gw = GATEWAY_PATH.exec(path);
    if (gw) {
      if (method !== 'DELETE' && method !== 'GET') throw methodNotAllowed('GET, DELETE');
      const sub = await requireAdmin(req);
      const id = gw[1]!;
      const notFound = new ApiError(404, 'not_found', 'no gateway with this id');
      // Ids are [a-z0-9-] only, so a percent-encoded path segment can never name one.
      if (!isId(id)) throw notFound;
      if (method === 'GET') {
        const record = await registry.getGateway(id);
        if (!record) throw notFound;
        const [view] = await presence.fleet([id]);
        send(res, 200, fleetView(record, view!));
        return;
      }
      const record = await registry.revoke(id, clock.now());
      if (!record) throw notFound;
      log.info({ gateway: id, site: record.site, by: sub }, 'gateway revoked');
      await notify(() => hooks.gatewayRevoked(id), `gateway ${id}`);
      send(res, 200, { id, site: record.site, status: record.status, revokedAt: record.revokedAt });
      return;
    }
    const ses = SESSION_REVOKE_PATH.exec(path);
    if (ses) {
      if (method !== 'POST') throw methodNotAllowed('POST');
      const sub = await requireAdmin(req);
      const sid = safeDecode(ses[1]!);
      if (!isTokenIdOk(sid)) throw new ApiError(400, 'bad_message', 'session id has characters a sid cannot have');
      // The session's tokens live at most MAX_SESSION_LIFETIME_S, so revoking for that long outlives them all.
      const revokedUntil = clock.now() + MAX_SESSION_LIFETIME_S * 1000;
      await registry.revokeSession(sid, revokedUntil);
      log.info({ sid, by: sub }, 'session revoked');
      await notify(() => hooks.sessionRevoked(sid), `session ${sid}`);
      send(res, 200, { sid, revokedUntil });
      return;
    }
    throw new ApiError(404, 'not_found', 'no such endpoint');
  }

  /** The registry already holds the revocation; a failed broadcast is caught by the core's periodic sweep. */
  async function notify(fn: () => Promise<void>, what: string): Promise<void> {
    try {
      await fn();
    } catch (err) {
      log.error(
        { err: (err as Error).message },
        `revoked ${what} but could not tell every node at once; the periodic revocation sweep will close its sockets`,
      );
    }
  }

  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path !== '/v1/activate' && path !== '/v1/admin' && !path.startsWith('/v1/admin/')) return false;
    route(req, res, path, q === -1 ? '' : url.slice(q + 1)).catch((err: unknown) => {
      if (err instanceof ApiError) {
        const headers: Record<string, string> = { ...err.headers };
        if (err.retryAfterS !== undefined) headers['retry-after'] = String(err.retryAfterS);
        if (err.status === 401) headers['www-authenticate'] = 'Bearer';
        // An unread body would otherwise be left on a keep-alive connection.
        if (err.status === 413 || err.status === 415) headers.connection = 'close';
        send(res, err.status, { code: err.code, message: err.message }, headers);
        if (err.status >= 400 && err.status < 500 && path.startsWith('/v1/admin')) {
          log.warn({ status: err.status, reason: err.reason, path: path.slice(0, 80) }, 'admin request refused');
        }
        return;
      }
      log.error({ err: (err as Error)?.message, path: path.slice(0, 80) }, 'HTTP API request failed');
      send(res, 500, { code: 'internal', message: 'internal error; see the relay log' });
    });
    return true;
  };
}
