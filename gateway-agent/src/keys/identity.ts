/**
 * The gateway's identity and private key, as stored in its state directory:
 *
 * - `gateway-key.jwk` — the private key (JWK, P-256), mode 0600, made at activation; never leaves the site.
 * - `identity.json`   — `{ gateway, site, relay, alg, thumbprint, activatedAt }`, mode 0600.
 *
 * The gateway assertion (one per connection) is signed with that key: typ `scanrelay-gateway+jwt`,
 * iss = sub = gateway id, aud = the relay's audience, exp = iat + 60 s at most, a random jti.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GATEWAY_ALGORITHMS, isId, MAX_GATEWAY_ASSERTION_LIFETIME_S, TOKEN_TYP } from '@scanrelay/protocol';
import { type CryptoKey, importJWK, type JWK, SignJWT } from 'jose';
import { GatewayError } from '../errors.js';

export type GatewayAlgorithm = (typeof GATEWAY_ALGORITHMS)[number];

export const KEY_FILE = 'gateway-key.jwk';
export const IDENTITY_FILE = 'identity.json';

/** What `activate` stored. */
export interface Identity {
  gateway: string;
  site: string;
  /** The relay base URL activation used (the default for SCANRELAY_GATEWAY_RELAY_URLS). */
  relay: string;
  alg: GatewayAlgorithm;
  /** RFC 7638 thumbprint of the public key, as the relay stores it. */
  thumbprint: string;
  activatedAt: number;
}

export interface LoadedIdentity extends Identity {
  privateKey: CryptoKey;
}

/** Load identity and key; GatewayError `not_activated` (with what to do) if either is missing or unusable. */
export async function loadIdentity(stateDir: string): Promise<LoadedIdentity> {
  let identity: Identity;
  let jwk: JWK;
  try {
    identity = JSON.parse(await readFile(join(stateDir, IDENTITY_FILE), 'utf8')) as Identity;
    jwk = JSON.parse(await readFile(join(stateDir, KEY_FILE), 'utf8')) as JWK;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new GatewayError(
      'not_activated',
      missing
        ? `this gateway is not activated (no identity in ${stateDir}): run ` +
            '`scanrelay-gateway activate --relay <url> --code <code>` with the code from the relay operator'
        : `the identity or key file in ${stateDir} is unreadable or corrupt: ${(err as Error).message}`,
    );
  }
  if (!isId(identity.gateway) || !isId(identity.site))
    throw new GatewayError('not_activated', `${join(stateDir, IDENTITY_FILE)} holds an invalid gateway or site id`);
  if (!(GATEWAY_ALGORITHMS as readonly string[]).includes(identity.alg))
    throw new GatewayError('not_activated', `${join(stateDir, IDENTITY_FILE)} names an unsupported key algorithm`);
  let privateKey: CryptoKey;
  try {
    privateKey = (await importJWK(jwk, identity.alg)) as CryptoKey;
  } catch (err) {
    throw new GatewayError('not_activated', `${join(stateDir, KEY_FILE)} is not a usable private key`, { cause: err });
  }
  return { ...identity, privateKey };
}

/**
 * Sign a gateway assertion for one connection.
 *
 * @param audience the relay's id (`SCANRELAY_AUDIENCE` on the relay; default `scanrelay`)
 * @param lifetimeS seconds until `exp`; at most 60
 */
export async function signAssertion(
  identity: LoadedIdentity,
  audience: string,
  now: number = Date.now(),
  lifetimeS = 30,
): Promise<string> {
  const iat = Math.floor(now / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: identity.alg, typ: TOKEN_TYP.gateway })
    .setIssuer(identity.gateway)
    .setSubject(identity.gateway)
    .setAudience(audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + Math.min(lifetimeS, MAX_GATEWAY_ASSERTION_LIFETIME_S))
    .setJti(randomUUID())
    .sign(identity.privateKey);
}
