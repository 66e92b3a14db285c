/**
 * Token verification for the relay: session tokens, command pre-checks and admin tokens against the manage
 * app's pinned keys, and gateway assertions against the key each gateway registered at activation.
 *
 * Every check runs in this order, and nothing is parsed before the size cap:
 *
 *   length ≤ MAX_TOKEN_LENGTH → jose jwtVerify { explicit algorithms, key by (issuer, kid) from a Map,
 *   exact issuer, audience, typ, requiredClaims, maxTokenAge, clockTolerance, currentDate = injected clock }
 *   → aud is ONE string (jose accepts an array holding it) → the kind's own claims → registry re-checks.
 *
 * Failures become `AuthError`s: `code` is what the client is told, `reason` feeds
 * `auth_rejections_total{reason}`. Messages never contain the token or a claim value taken from it.
 */

import {
  type AdminClaims,
  CLOCK_TOLERANCE_S,
  type CommandClaims,
  GATEWAY_ALGORITHMS,
  isCommandName,
  isEncryptedArgs,
  isId,
  MANAGE_ALGORITHMS,
  MAX_COMMAND_LIFETIME_S,
  MAX_GATEWAY_ASSERTION_LIFETIME_S,
  MAX_TOKEN_LENGTH,
  REQUIRED_CLAIMS,
  type SessionClaims,
  TOKEN_TYP,
  type TokenKind,
} from '@scanrelay/protocol';
import { type CryptoKey, decodeJwt, importJWK, type JWTPayload, jwtVerify } from 'jose';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { isTokenIdOk } from '../ports/ids.js';
import type { GatewayRecord, Registry } from '../ports/registry.js';
import { gatewayJwkAlgorithm } from './activation.js';
import { AuthConfigError, ManageKeys, type ManageKeysOptions } from './jwks.js';
import { ReplayGuard } from './replay.js';
import {
  AuthError,
  type Authenticator,
  type VerifiedCommand,
  type VerifiedGateway,
  type VerifiedSession,
} from './types.js';

/** Longest accepted session token lifetime and age (exp − iat, now − iat), seconds. Renewal is in-band. */
export const MAX_SESSION_LIFETIME_S = 24 * 3600;
/** Longest accepted admin token lifetime and age, seconds. */
export const MAX_ADMIN_LIFETIME_S = 3600;

export interface AuthenticatorOptions {
  /** File path or https URL of the manage app's JWKS (`SCANRELAY_MANAGE_JWKS`). */
  manageJwks: string;
  /** Exact `iss` of manage-app tokens (`SCANRELAY_MANAGE_ISSUER`). */
  manageIssuer: string;
  /** The relay's id: `aud` of session, admin and gateway-assertion tokens (`SCANRELAY_AUDIENCE`). */
  audience: string;
  /** Refuse command tokens whose args are not `{ jwe }` (SCANRELAY_REQUIRE_ENCRYPTED_PAYLOADS). Default false. */
  requireEncryptedArgs?: boolean;
  registry: Registry;
  clock: Clock;
  logger: Logger;
  /** Used to fetch an https JWKS (injectable for tests). */
  fetch?: typeof fetch;
  /** JWKS reload tuning; defaults documented on ManageKeysOptions. */
  jwks?: Pick<ManageKeysOptions, 'refreshMs' | 'minRefreshMs' | 'fileCheckMs' | 'timeoutMs'>;
}

/** The Authenticator plus its lifecycle. */
export interface RelayAuthenticator extends Authenticator {
  /** Reload the manage app's keys now (rotation); resolves with the number of pinned keys. */
  refreshKeys(): Promise<number>;
  /** Stop the JWKS reload timer. */
  close(): void;
}

const LABEL: Record<TokenKind, string> = {
  session: 'session token',
  command: 'command token',
  gateway: 'gateway assertion',
  admin: 'admin token',
};

/** Thrown from key resolution; mapped to `unauthenticated` with its reason. */
class KeyLookupError extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

function refuse(kind: TokenKind, reason: string, what: string): AuthError {
  return new AuthError('unauthenticated', reason, `${LABEL[kind]} refused: ${what}`);
}

/** Map a jose (or key lookup) failure to an AuthError without echoing anything from the token. */
function toAuthError(kind: TokenKind, err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof KeyLookupError) {
    const what: Record<string, string> = {
      missing_kid: 'its header has no kid, so no pinned key can be chosen',
      unknown_kid: 'its kid names no key the relay has pinned (rotated out, or never published)',
      alg_mismatch: 'its alg is not the algorithm its key is bound to',
      unknown_gateway: 'it names no gateway registered here',
      gateway_pending: 'that gateway has not been activated',
    };
    return refuse(kind, err.reason, what[err.reason] ?? 'no usable key');
  }
  const e = err as { code?: unknown; claim?: unknown; reason?: unknown };
  switch (e.code) {
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return refuse(kind, 'bad_signature', 'signature does not verify with the pinned key');
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return refuse(kind, 'alg_not_allowed', 'its algorithm is not on the allowlist');
    case 'ERR_JWT_EXPIRED':
      return new AuthError(
        'token_expired',
        e.claim === 'iat' ? 'too_old' : 'expired',
        `${LABEL[kind]} ${e.claim === 'iat' ? 'is older than allowed' : 'has expired'}: get a fresh one`,
      );
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const claim = String(e.claim);
      if (e.reason === 'missing') return refuse(kind, 'missing_claim', `required claim "${claim}" is missing`);
      if (claim === 'typ') return refuse(kind, 'wrong_typ', `its typ header is not ${TOKEN_TYP[kind]}`);
      if (claim === 'aud') return refuse(kind, 'wrong_aud', 'its audience is not this relay');
      if (claim === 'iss') return refuse(kind, 'wrong_iss', 'its issuer is not the one configured');
      if (claim === 'sub') return refuse(kind, 'wrong_sub', 'its sub does not equal its iss');
      if ((claim === 'nbf' || claim === 'iat') && e.reason === 'check_failed') {
        return refuse(kind, 'not_yet_valid', `its "${claim}" is in the future (check the issuer's clock)`);
      }
      return refuse(kind, 'bad_claim', `claim "${claim}" is not valid`);
    }
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
    case 'ERR_JWK_INVALID':
      return refuse(kind, 'malformed', 'it is not a well-formed signed JWT');
    default:
      return new AuthError('internal', 'internal', `${LABEL[kind]} could not be checked (internal error); retry`);
  }
}

function isBoundedString(v: unknown, max = 256): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= max;
}

/** Checks common to every kind after jose: aud is a single string, sub and jti are usable. */
function checkBase(kind: TokenKind, p: JWTPayload): void {
  if (typeof p.aud !== 'string') {
    throw refuse(kind, 'wrong_aud', 'its audience must be a single string, not an array');
  }
  if (!isBoundedString(p.sub)) throw refuse(kind, 'bad_claim', 'claim "sub" must be a non-empty string');
  if (!isTokenIdOk(p.jti)) throw refuse(kind, 'bad_claim', 'claim "jti" must be a short URL-safe string');
}

/** exp − iat ≤ limit: a token minted to live longer than policy allows is refused even while fresh. */
function checkLifetime(kind: TokenKind, p: JWTPayload, maxS: number): void {
  if ((p.exp as number) - (p.iat as number) > maxS) {
    throw refuse(kind, 'lifetime_too_long', `it lives longer than ${maxS} s (exp − iat)`);
  }
}

/**
 * Create the relay's Authenticator. Loads the manage app's keys first and throws `AuthConfigError` (naming
 * SCANRELAY_MANAGE_JWKS) if none are usable.
 */
export async function createAuthenticator(opts: AuthenticatorOptions): Promise<RelayAuthenticator> {
  const { manageIssuer: issuer, audience, registry, clock } = opts;
  const log = opts.logger.child({ component: 'auth' });
  if (!isBoundedString(issuer, 1024)) {
    throw new AuthConfigError(
      'SCANRELAY_MANAGE_ISSUER is empty: set it to the exact "iss" of the manage app\'s tokens',
    );
  }
  if (!isBoundedString(audience, 1024)) {
    throw new AuthConfigError('SCANRELAY_AUDIENCE is empty: set it to this relay\'s id (default "scanrelay")');
  }
  const keys = await ManageKeys.open({
    source: opts.manageJwks,
    issuer,
    clock,
    logger: opts.logger,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    ...opts.jwks,
  });
  const replay = new ReplayGuard();
  /** thumbprint → imported gateway key (bounded; keys are immutable, so a cache needs no invalidation). */
  const gatewayKeys = new Map<string, { alg: string; key: CryptoKey }>();

  const manageKey = async (header: { alg?: string; kid?: string }): Promise<CryptoKey> => {
    if (typeof header.kid !== 'string') throw new KeyLookupError('missing_kid');
    const pinned = await keys.resolve(issuer, header.kid);
    if (!pinned) throw new KeyLookupError('unknown_kid');
    if (pinned.alg !== header.alg) throw new KeyLookupError('alg_mismatch');
    return pinned.key;
  };

  const capped = (kind: TokenKind, token: unknown): string => {
    if (typeof token !== 'string' || token.length === 0) throw refuse(kind, 'malformed', 'no token given');
    if (token.length > MAX_TOKEN_LENGTH) {
      throw refuse(kind, 'too_large', `it is longer than ${MAX_TOKEN_LENGTH} characters`);
    }
    return token;
  };

  const verifyManage = async (kind: 'session' | 'command' | 'admin', token: unknown, maxAgeS: number) => {
    const jwt = capped(kind, token);
    try {
      const { payload } = await jwtVerify(jwt, manageKey, {
        algorithms: [...MANAGE_ALGORITHMS],
        issuer,
        ...(kind === 'command' ? {} : { audience }),
        typ: TOKEN_TYP[kind],
        requiredClaims: [...REQUIRED_CLAIMS[kind]],
        maxTokenAge: maxAgeS,
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(clock.now()),
      });
      checkBase(kind, payload);
      checkLifetime(kind, payload, maxAgeS);
      return payload;
    } catch (err) {
      throw mapped(kind, err);
    }
  };

  /** toAuthError, logging the unexpected (by name and code only: a message could quote the token). */
  const mapped = (kind: TokenKind, err: unknown): AuthError => {
    const e = toAuthError(kind, err);
    if (e.reason === 'internal') {
      const { name, code } = (err ?? {}) as { name?: unknown; code?: unknown };
      log.error({ errName: name, errCode: code }, `unexpected failure while verifying a ${LABEL[kind]}; refused it`);
    }
    return e;
  };

  const failClosed = (kind: TokenKind, what: string, err: unknown): AuthError => {
    log.error({ err: (err as Error).message }, `${what} failed while checking a ${LABEL[kind]}; refusing it`);
    return new AuthError('internal', 'backend_error', `${LABEL[kind]} could not be checked right now; retry`);
  };

  async function verifySession(token: string): Promise<VerifiedSession> {
    const p = await verifyManage('session', token, MAX_SESSION_LIFETIME_S);
    if (!isTokenIdOk(p.sid)) throw refuse('session', 'bad_claim', 'claim "sid" must be a short URL-safe string');
    const sites = p.sites;
    if (!Array.isArray(sites) || sites.length > 1000 || !sites.every(isId)) {
      throw refuse('session', 'bad_claim', 'claim "sites" must be an array of site ids');
    }
    let revoked: boolean;
    try {
      revoked = await registry.isSessionRevoked(p.sid, clock.now());
    } catch (err) {
      throw failClosed('session', 'the registry', err);
    }
    if (revoked)
      throw new AuthError('revoked', 'session_revoked', 'this session was revoked (logged out); sign in again');
    return { claims: p as unknown as SessionClaims, expiresAt: (p.exp as number) * 1000 };
  }

  async function verifyCommand(token: string): Promise<VerifiedCommand> {
    const p = await verifyManage('command', token, MAX_COMMAND_LIFETIME_S);
    if (!isId(p.aud)) throw refuse('command', 'wrong_aud', 'its audience must be one gateway id');
    if (!isId(p.site)) throw refuse('command', 'bad_claim', 'claim "site" must be a site id');
    if (!isCommandName(p.cmd)) {
      throw new AuthError('forbidden', 'unknown_cmd', 'command token refused: its cmd is not a v1 gateway command');
    }
    if (typeof p.args !== 'object' || p.args === null || Array.isArray(p.args)) {
      throw refuse('command', 'bad_claim', 'claim "args" must be an object');
    }
    // Shape only: the relay has no key for the JWE and never decodes it.
    if (opts.requireEncryptedArgs && !isEncryptedArgs(p.args)) {
      throw new AuthError(
        'forbidden',
        'args_not_encrypted',
        'command token refused: this relay accepts only args encrypted to the gateway (SCANRELAY_REQUIRE_ENCRYPTED_PAYLOADS)',
      );
    }
    let gateway: GatewayRecord | undefined;
    try {
      gateway = await registry.getGateway(p.aud);
    } catch (err) {
      throw failClosed('command', 'the registry', err);
    }
    if (!gateway) {
      throw new AuthError('unknown_site', 'unknown_gateway', 'command token refused: its gateway is not registered');
    }
    if (gateway.status !== 'active') {
      throw new AuthError('forbidden', 'gateway_inactive', `command token refused: its gateway is ${gateway.status}`);
    }
    if (gateway.site !== p.site) {
      throw new AuthError('forbidden', 'site_mismatch', "command token refused: its site is not its gateway's site");
    }
    return { claims: p as unknown as CommandClaims, expiresAt: (p.exp as number) * 1000, gateway };
  }

  async function verifyAdmin(token: string): Promise<AdminClaims> {
    const p = await verifyManage('admin', token, MAX_ADMIN_LIFETIME_S);
    if (p.scope !== 'admin') throw new AuthError('forbidden', 'wrong_scope', 'admin token refused: scope is not admin');
    return p as unknown as AdminClaims;
  }

  async function gatewayKey(record: GatewayRecord, alg: string | undefined): Promise<CryptoKey> {
    if (!record.publicKey || !record.thumbprint) throw new KeyLookupError('gateway_pending');
    let entry = gatewayKeys.get(record.thumbprint);
    if (!entry) {
      const keyAlg = gatewayJwkAlgorithm(record.publicKey);
      if (!keyAlg) throw new KeyLookupError('gateway_pending');
      entry = { alg: keyAlg, key: (await importJWK(record.publicKey, keyAlg)) as CryptoKey };
      if (gatewayKeys.size >= 10_000) gatewayKeys.delete(gatewayKeys.keys().next().value as string);
      gatewayKeys.set(record.thumbprint, entry);
    }
    if (entry.alg !== alg) throw new KeyLookupError('alg_mismatch');
    return entry.key;
  }

  async function verifyGatewayAssertion(token: string): Promise<VerifiedGateway> {
    const jwt = capped('gateway', token);
    let id: unknown;
    try {
      id = decodeJwt(jwt).iss;
    } catch {
      throw refuse('gateway', 'malformed', 'it is not a well-formed JWT');
    }
    if (!isId(id)) throw refuse('gateway', 'wrong_iss', 'its iss must be a gateway id');
    const lookup = async (): Promise<GatewayRecord | undefined> => {
      try {
        return await registry.getGateway(id);
      } catch (err) {
        throw failClosed('gateway', 'the registry', err);
      }
    };
    const record = await lookup();
    if (!record) throw toAuthError('gateway', new KeyLookupError('unknown_gateway'));
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(jwt, (header) => gatewayKey(record, header.alg), {
        algorithms: [...GATEWAY_ALGORITHMS],
        issuer: id,
        subject: id,
        audience,
        typ: TOKEN_TYP.gateway,
        requiredClaims: [...REQUIRED_CLAIMS.gateway],
        maxTokenAge: MAX_GATEWAY_ASSERTION_LIFETIME_S,
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(clock.now()),
      }));
      checkBase('gateway', payload);
      checkLifetime('gateway', payload, MAX_GATEWAY_ASSERTION_LIFETIME_S);
    } catch (err) {
      throw mapped('gateway', err);
    }
    // Re-read after the (async) signature check: a revocation that landed meanwhile must win.
    const current = await lookup();
    if (!current || current.status === 'revoked') {
      throw new AuthError('revoked', 'gateway_revoked', 'this gateway was revoked; enrol it again with a new code');
    }
    if (current.status !== 'active' || current.thumbprint !== record.thumbprint) {
      throw refuse('gateway', 'gateway_pending', 'that gateway has not been activated with this key');
    }
    const now = clock.now();
    const expiresAt = (payload.exp as number) * 1000;
    const claim = replay.claim(`${id}\u0000${payload.jti}`, expiresAt + CLOCK_TOLERANCE_S * 1000, now);
    if (claim === 'replayed') throw refuse('gateway', 'replayed', 'its jti was already used; sign a fresh one');
    if (claim === 'full') {
      log.error({ entries: replay.size }, 'gateway assertion replay guard is full; refusing new assertions');
      throw new AuthError('rate_limited', 'replay_guard_full', 'too many gateway logins right now; retry shortly');
    }
    return { gateway: current, expiresAt };
  }

  return {
    verifySession,
    verifyCommand,
    verifyAdmin,
    verifyGatewayAssertion,
    async isGatewayActive(gatewayId: string): Promise<boolean> {
      if (!isId(gatewayId)) return false;
      return (await registry.getGateway(gatewayId))?.status === 'active';
    },
    async isSessionActive(sid: string): Promise<boolean> {
      if (!isTokenIdOk(sid)) return false;
      return !(await registry.isSessionRevoked(sid, clock.now()));
    },
    refreshKeys: () => keys.refresh(),
    close: () => keys.close(),
  };
}
