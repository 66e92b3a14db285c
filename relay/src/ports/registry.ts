/**
 * Registry — gateways, their public keys, activation codes and revocations. The source of truth for who may
 * connect: revocation is published on the Bus too, but every authentication, renewal and command routing
 * re-checks here, and a periodic sweep closes anything the Bus message missed.
 *
 * Embedded default: one JSON file written atomically (write temp, fsync, rename) in SCANRELAY_DATA_DIR.
 * Redis: hashes (with AOF persistence in production); activation is a Lua claim-once script.
 */
import type { JWK } from 'jose';

export type GatewayStatus = 'pending' | 'active' | 'revoked';

export interface GatewayRecord {
  id: string;
  site: string;
  name: string;
  status: GatewayStatus;
  createdAt: number;
  /** Public JWK bound at activation (P-256 or Ed25519, public part only). */
  publicKey?: JWK;
  /** RFC 7638 thumbprint of `publicKey`. */
  thumbprint?: string;
  activatedAt?: number;
  revokedAt?: number;
}

export interface ActivationRecord {
  /** Public lookup part of the code (not secret). */
  lookup: string;
  gateway: string;
  site: string;
  /** scrypt(secret) and its salt, base64url. The secret itself is never stored. */
  hash: string;
  salt: string;
  expiresAt: number;
  failures: number;
  used: boolean;
}

export type ActivateResult =
  | { ok: true; gateway: GatewayRecord }
  | { ok: false; reason: 'unknown' | 'used' | 'expired' | 'locked' | 'revoked' };

export interface Registry {
  /** Create a pending gateway with its activation record. Fails if the id exists. */
  createGateway(gateway: GatewayRecord, activation: ActivationRecord): Promise<void>;
  getGateway(id: string): Promise<GatewayRecord | undefined>;
  listGateways(): Promise<GatewayRecord[]>;
  getActivation(lookup: string): Promise<ActivationRecord | undefined>;
  /** Count a failed attempt; returns the new failure count. */
  recordFailure(lookup: string): Promise<number>;
  /**
   * Atomically: check the code is unused, unexpired and not locked (`failures < maxFailures`), mark it used,
   * and bind the public key to its gateway (status active). Exactly one of concurrent callers succeeds.
   */
  activate(
    lookup: string,
    key: { publicKey: JWK; thumbprint: string },
    now: number,
    maxFailures: number,
  ): Promise<ActivateResult>;
  /** Mark a gateway revoked (its key no longer authenticates). Returns the record, or undefined if unknown. */
  revoke(id: string, now: number): Promise<GatewayRecord | undefined>;
  /** Revoke a browser session id (logout) until `until` (its token's expiry). */
  revokeSession(sid: string, until: number): Promise<void>;
  isSessionRevoked(sid: string, now: number): Promise<boolean>;
  close(): Promise<void>;
}
