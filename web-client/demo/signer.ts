/**
 * The demo manage app's signing key and token minting. The key (ES256) is generated on first start into the
 * data directory (0600) and reused afterwards; its public half is published as a JWKS (served over HTTP and
 * written to a file the relay and gateway are pointed at). Only this process ever holds the private key.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type AdminClaims,
  type CommandArgs,
  type CommandName,
  DEFAULT_AUDIENCE,
  MAX_COMMAND_LIFETIME_S,
  TOKEN_TYP,
  type TokenKind,
  validateCommandArgs,
} from '@scanrelay/protocol';
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import type { GatewayKeyPins } from './gateway-keys.js';

export interface SignerOptions {
  /** Directory for `manage-key.json` (private, 0600) and `jwks.json` (public). */
  dataDir: string;
  /** `iss` of every token. */
  issuer: string;
  /** The relay's id (`aud` of session and admin tokens). Default `scanrelay`. */
  audience?: string;
  now?: () => number;
}

export interface MintedToken {
  token: string;
  /** ms epoch */
  expiresAt: number;
  jti: string;
}

export class Signer {
  readonly issuer: string;
  readonly audience: string;
  /** Path of the public JWKS file (`SCANRELAY_MANAGE_JWKS`, `SCANRELAY_GATEWAY_MANAGE_JWKS`). */
  readonly jwksPath: string;
  readonly jwks: { keys: JWK[] };
  readonly #key: CryptoKey;
  readonly #kid: string;
  readonly #now: () => number;

  private constructor(opts: SignerOptions, key: CryptoKey, publicJwk: JWK, kid: string) {
    this.issuer = opts.issuer;
    this.audience = opts.audience ?? DEFAULT_AUDIENCE;
    this.jwksPath = join(opts.dataDir, 'jwks.json');
    this.jwks = { keys: [publicJwk] };
    this.#key = key;
    this.#kid = kid;
    this.#now = opts.now ?? Date.now;
  }

  /** Load the key from `dataDir`, or make one on first start; (re)write the public JWKS file. */
  static async open(opts: SignerOptions): Promise<Signer> {
    await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
    const keyPath = join(opts.dataDir, 'manage-key.json');
    let privateJwk: JWK;
    try {
      privateJwk = JSON.parse(await readFile(keyPath, 'utf8')) as JWK;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      const pair = await generateKeyPair('ES256', { extractable: true });
      privateJwk = await exportJWK(pair.privateKey);
      const tmp = `${keyPath}.tmp`;
      await writeFile(tmp, JSON.stringify(privateJwk), { mode: 0o600 });
      await rename(tmp, keyPath);
    }
    await chmod(keyPath, 0o600);
    const { d: _private, ...pub } = privateJwk;
    const kid = await calculateJwkThumbprint(pub);
    const publicJwk: JWK = { ...pub, kid, alg: 'ES256', use: 'sig' };
    const key = (await importJWK(privateJwk, 'ES256')) as CryptoKey;
    const signer = new Signer(opts, key, publicJwk, kid);
    const tmp = `${signer.jwksPath}.tmp`;
    await writeFile(tmp, JSON.stringify(signer.jwks));
    await rename(tmp, signer.jwksPath);
    return signer;
  }

  /** A session token for `sub`, listing `sites`. */
  session(sub: string, sid: string, sites: readonly string[], ttlSeconds: number): Promise<MintedToken> {
    return this.#sign('session', { sub, sid, sites: [...sites] }, this.audience, ttlSeconds);
  }

  /** An admin token (enrolment API). */
  admin(sub: string, ttlSeconds = 60): Promise<MintedToken> {
    const claims: Pick<AdminClaims, 'sub' | 'scope'> = { sub, scope: 'admin' };
    return this.#sign('admin', claims, this.audience, ttlSeconds);
  }

  /**
   * A command token for one gateway; `args` are validated first, so a bad one never gets signed. With
   * `encryptTo`, the args are encrypted to the gateway's confirmed key (refused if none is confirmed) and the
   * signature covers the ciphertext, so the relay can pre-check the token without reading them.
   */
  async command<C extends CommandName>(opts: {
    sub: string;
    gateway: string;
    site: string;
    cmd: C;
    args: CommandArgs[C];
    ttlSeconds?: number;
    encryptTo?: GatewayKeyPins;
  }): Promise<MintedToken> {
    const clear = validateCommandArgs(opts.cmd, opts.args);
    const args = opts.encryptTo ? await opts.encryptTo.encryptArgs(opts.gateway, clear) : clear;
    const ttl = Math.min(opts.ttlSeconds ?? 120, MAX_COMMAND_LIFETIME_S);
    return this.#sign('command', { sub: opts.sub, site: opts.site, cmd: opts.cmd, args }, opts.gateway, ttl);
  }

  async #sign(kind: TokenKind, claims: object, aud: string, ttlSeconds: number): Promise<MintedToken> {
    const iat = Math.floor(this.#now() / 1000);
    const exp = iat + ttlSeconds;
    const jti = randomUUID();
    const token = await new SignJWT({ ...claims } as Record<string, unknown>)
      .setProtectedHeader({ alg: 'ES256', kid: this.#kid, typ: TOKEN_TYP[kind] })
      .setIssuer(this.issuer)
      .setAudience(aud)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(this.#key);
    return { token, expiresAt: exp * 1000, jti };
  }
}
