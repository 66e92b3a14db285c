/**
 * Token kinds of protocol v1: the `typ` header each must carry, the claims each must have, and the
 * algorithms any verifier may accept. Verification itself lives with each verifier (relay, gateway); these
 * constants are the shared contract so that a token minted by the manage app is checked the same way
 * everywhere.
 */
import type { JsonObject } from './messages.js';

/** JWS `typ` header per token kind. A token of one kind is never accepted as another. */
export const TOKEN_TYP = Object.freeze({
  session: 'scanrelay-session+jwt',
  command: 'scanrelay-command+jwt',
  gateway: 'scanrelay-gateway+jwt',
  admin: 'scanrelay-admin+jwt',
} as const);
export type TokenKind = keyof typeof TOKEN_TYP;

/** Algorithms accepted for tokens signed by the manage app (ES256/EdDSA keys; RS256/PS256 for RSA keys). */
export const MANAGE_ALGORITHMS = ['ES256', 'EdDSA', 'RS256', 'PS256'] as const;

/** Algorithms a gateway's own key may use (its key is P-256 or Ed25519, made at activation). */
export const GATEWAY_ALGORITHMS = ['ES256', 'EdDSA'] as const;

/** Default audience (`aud`) of session, admin and gateway-assertion tokens; `SCANRELAY_AUDIENCE` changes it. */
export const DEFAULT_AUDIENCE = 'scanrelay';

/** Longest a command token may live (exp − iat), seconds. */
export const MAX_COMMAND_LIFETIME_S = 300;

/** Longest a gateway assertion may live (exp − iat), seconds. */
export const MAX_GATEWAY_ASSERTION_LIFETIME_S = 60;

/** Clock tolerance every verifier allows, seconds. */
export const CLOCK_TOLERANCE_S = 30;

export interface BaseClaims {
  iss: string;
  aud: string;
  sub: string;
  iat: number;
  exp: number;
  jti: string;
  nbf?: number;
}

export interface SessionClaims extends BaseClaims {
  /** Session id chosen by the manage app (one login); revoking it closes every socket of that login. */
  sid: string;
  /** Sites this user may watch and act on. */
  sites: string[];
}

export interface CommandClaims extends BaseClaims {
  /** The gateway id this command is for (single string). */
  aud: string;
  site: string;
  cmd: string;
  args: JsonObject;
}

export interface AdminClaims extends BaseClaims {
  scope: 'admin';
}

/** Gateway assertion: iss = sub = gateway id, aud = the relay, exp at most 60 s after iat. */
export type GatewayAssertionClaims = BaseClaims;

/** Claims every token must carry, per kind (beyond signature, typ, iss and aud). */
export const REQUIRED_CLAIMS: Readonly<Record<TokenKind, readonly string[]>> = Object.freeze({
  session: ['iss', 'aud', 'sub', 'sid', 'sites', 'iat', 'exp', 'jti'],
  command: ['iss', 'aud', 'site', 'sub', 'cmd', 'args', 'iat', 'exp', 'jti'],
  gateway: ['iss', 'sub', 'aud', 'iat', 'exp', 'jti'],
  admin: ['iss', 'aud', 'sub', 'scope', 'iat', 'exp', 'jti'],
});
