/**
 * The manage app's pins of each gateway's encryption key. A key arrives through the relay (which the manage
 * app does not trust for this), so it stays *offered* until a site administrator confirms the thumbprint the
 * installer read from `scanrelay-gateway status` at the site; only a *confirmed* key is ever encrypted to.
 * A relay that swaps in its own key therefore gets nothing: its key's thumbprint is not the one confirmed.
 *
 * Rotation: the gateway makes a new key (delete `gateway-enc-key.jwk` and restart, or re-activate); the new key
 * is offered, and commands are refused (`encryption_key_unconfirmed`) until it is confirmed — the old pin is
 * dropped on confirmation. Revocation: `revoke(gateway)` drops the pin.
 */
import {
  ARGS_JWE_ALG,
  ARGS_JWE_CTY,
  ARGS_JWE_ENC,
  type CommandArgs,
  type CommandName,
  type EncryptedArgs,
} from '@scanrelay/protocol';
import { CompactEncrypt, calculateJwkThumbprint, importJWK, type JWK } from 'jose';

/** Stable codes of the manage app's refusals. */
export type GatewayKeyErrorCode = 'encryption_key_unconfirmed' | 'thumbprint_mismatch' | 'bad_key';

export class GatewayKeyError extends Error {
  constructor(
    readonly code: GatewayKeyErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'GatewayKeyError';
  }
}

interface Pin {
  offered?: { jwk: JWK; thumbprint: string };
  confirmed?: { jwk: JWK; thumbprint: string };
}

export class GatewayKeyPins {
  private readonly pins = new Map<string, Pin>();

  /** Record a key a gateway (or something claiming to be it) published. Never trusted by itself. */
  async offer(gateway: string, jwk: JWK): Promise<string> {
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || !jwk.x || !jwk.y || jwk.d !== undefined)
      throw new GatewayKeyError('bad_key', 'a gateway encryption key must be a public P-256 EC key');
    const clean = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
    const thumbprint = await calculateJwkThumbprint(clean, 'sha256');
    const pin = this.pins.get(gateway) ?? {};
    pin.offered = { jwk: clean, thumbprint };
    this.pins.set(gateway, pin);
    return thumbprint;
  }

  /** The thumbprint awaiting confirmation, and the confirmed one, for the admin page. */
  state(gateway: string): { offered?: string; confirmed?: string } {
    const pin = this.pins.get(gateway);
    return { offered: pin?.offered?.thumbprint, confirmed: pin?.confirmed?.thumbprint };
  }

  /** A site administrator confirms the thumbprint read at the site (spaces ignored). */
  confirm(gateway: string, thumbprint: string): void {
    const pin = this.pins.get(gateway);
    const typed = thumbprint.replace(/\s+/g, '');
    if (!pin?.offered || pin.offered.thumbprint !== typed)
      throw new GatewayKeyError(
        'thumbprint_mismatch',
        'the thumbprint does not match the key offered for this gateway: do not confirm; check the site console',
      );
    pin.confirmed = pin.offered;
  }

  revoke(gateway: string): void {
    this.pins.delete(gateway);
  }

  /** Encrypt a command's args to the gateway's confirmed key; refuses when none is confirmed. */
  async encryptArgs<C extends CommandName>(gateway: string, args: CommandArgs[C]): Promise<EncryptedArgs> {
    const confirmed = this.pins.get(gateway)?.confirmed;
    if (!confirmed)
      throw new GatewayKeyError(
        'encryption_key_unconfirmed',
        `no confirmed encryption key for gateway ${gateway}: confirm its thumbprint on the admin page first`,
      );
    const key = await importJWK(confirmed.jwk, ARGS_JWE_ALG);
    const jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(args)))
      .setProtectedHeader({ alg: ARGS_JWE_ALG, enc: ARGS_JWE_ENC, kid: confirmed.thumbprint, cty: ARGS_JWE_CTY })
      .encrypt(key);
    return { jwe };
  }
}
