/**
 * The contract between the relay core and its authentication layer (`relay/src/auth/`).
 *
 * The core calls these to authenticate sockets and pre-check commands; the auth layer owns jose, the manage
 * app's JWKS, gateway keys from the Registry, admin tokens and gateway enrolment (the HTTP API).
 * Every failure is an `AuthError` with a protocol error code, so the core can answer and close uniformly.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdminClaims, CommandClaims, ErrorCode, SessionClaims } from '@scanrelay/protocol';
import type { GatewayRecord } from '../ports/registry.js';

/** Why a token or request was refused. `code` is a protocol error code; `reason` is for metrics and logs. */
export class AuthError extends Error {
  readonly code: ErrorCode;
  /** Short machine reason for metrics (`auth_rejections_total{reason}`), e.g. `bad_signature`, `wrong_typ`. */
  readonly reason: string;
  constructor(code: ErrorCode, reason: string, message: string) {
    super(message);
    this.name = 'AuthError';
    this.code = code;
    this.reason = reason;
  }
}

export interface VerifiedSession {
  claims: SessionClaims;
  /** Token expiry, ms epoch. */
  expiresAt: number;
}

export interface VerifiedGateway {
  gateway: GatewayRecord;
  /** Assertion expiry, ms epoch (only bounds the hello; the connection then lives on heartbeats). */
  expiresAt: number;
}

export interface VerifiedCommand {
  claims: CommandClaims;
  /** Token expiry, ms epoch: the command is held at most until then. */
  expiresAt: number;
  /** The gateway record named by `aud` (active, same site as the `site` claim). */
  gateway: GatewayRecord;
}

export interface Authenticator {
  /**
   * Verify a session token (typ `scanrelay-session+jwt`) against the manage app's keys: algorithm allowlist,
   * exact issuer, single-string audience, required claims, max age, clock tolerance, size cap, and that its
   * `sid` is not revoked. Throws AuthError (`unauthenticated`, `token_expired`, `revoked`).
   */
  verifySession(token: string): Promise<VerifiedSession>;
  /**
   * Verify a gateway assertion (typ `scanrelay-gateway+jwt`, iss = sub = gateway id, exp ≤ 60 s after iat)
   * against the key that gateway registered. Unknown, pending or revoked gateways are refused
   * (`unauthenticated` / `revoked`). The assertion's jti is single-use.
   */
  verifyGatewayAssertion(token: string): Promise<VerifiedGateway>;
  /**
   * Pre-check a command token (typ `scanrelay-command+jwt`) as the relay can: signature by the manage app,
   * issuer, lifetime ≤ 5 min, required claims, `aud` a single string naming an active gateway whose site equals
   * the `site` claim. The gateway re-verifies everything itself. Throws AuthError (`forbidden`,
   * `unauthenticated`, `token_expired`, `unknown_site`).
   */
  verifyCommand(token: string): Promise<VerifiedCommand>;
  /** Verify an admin token (typ `scanrelay-admin+jwt`, scope `admin`) for the admin HTTP API. */
  verifyAdmin(token: string): Promise<AdminClaims>;
  /** Re-check (cheaply, from the Registry) that a gateway is still active. */
  isGatewayActive(gatewayId: string): Promise<boolean>;
  /** Re-check that a session id has not been revoked. */
  isSessionActive(sid: string): Promise<boolean>;
}

/** Events the HTTP API raises that the core must act on across the cluster. */
export interface AdminHooks {
  /** A gateway was revoked: close its sockets on every node, drop its held commands. */
  gatewayRevoked(gatewayId: string): Promise<void>;
  /** A session was revoked (logout): close its sockets on every node. */
  sessionRevoked(sid: string): Promise<void>;
}

/**
 * Handles `/v1/admin/*` and `/v1/activate`. Returns true if it took the request (and will answer it),
 * false if the path is not one of its own. Answers errors as JSON `{code, message}`.
 */
export type HttpApiHandler = (req: IncomingMessage, res: ServerResponse) => boolean;
