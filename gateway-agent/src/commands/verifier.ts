/**
 * Command-token verification. The gateway is the authority: the relay pre-checks commands, but only what
 * passes here runs.
 *
 * Checks, in order (each failure has a stable `reason`, shown to the browser):
 *  1. size ≤ MAX_TOKEN_LENGTH and compact-JWS shape — before any parsing or cryptography   `too_large`, `malformed`
 *  2. `alg` in MANAGE_ALGORITHMS (never `none`, never HMAC)                                  `bad_algorithm`
 *  3. key pinned for the header's `kid`, bound to that same `alg`; signature valid           `bad_signature`
 *  4. `typ` = scanrelay-command+jwt                                                          `wrong_type`
 *  5. required claims present (iss aud site sub cmd args iat exp jti)                         `missing_claim`
 *  6. `iss` exact                                                                              `wrong_issuer`
 *  7. `aud` = this gateway's id, as a single string (an array is refused even if it holds it)  `wrong_audience`
 *  8. `exp` (with clock tolerance), `nbf`, `iat` not in the future, age ≤ 300 s               `expired`, `not_yet_valid`
 *  9. `exp − iat` ≤ MAX_COMMAND_LIFETIME_S                                                     `lifetime_too_long`
 * 10. `site` = this gateway's site                                                             `wrong_site`
 * 11. `args` of the form `{ jwe }` decrypted with this gateway's encryption key (see args-decrypt.ts);
 *     clear args refused when `requireEncryptedArgs`      `args_not_encrypted`, `wrong_encryption_key`,
 *                                                          `encryption_refused`, `decryption_failed`, `too_large`
 * 12. `cmd` a v1 command; `args` valid for it                                               `unknown_command`, `bad_args`
 * The replay check (`replayed`) follows in the dispatcher, against the durable replay guard.
 */

import {
  type ArgsEncryptionReason,
  CLOCK_TOLERANCE_S,
  type CommandArgs,
  type CommandName,
  isCommandId,
  isCommandName,
  isEncryptedArgs,
  MANAGE_ALGORITHMS,
  MAX_COMMAND_LIFETIME_S,
  MAX_TOKEN_LENGTH,
  REQUIRED_CLAIMS,
  TOKEN_TYP,
  validateCommandArgs,
} from '@scanrelay/protocol';
import { type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import type { EncryptionKey } from '../keys/encryption-key.js';
import { decryptArgs } from './args-decrypt.js';
import { KeyLookupError, type PinnedKeys } from './pinned-keys.js';

/** Stable reasons a command is rejected, as sent in `command.status rejected {detail.reason}`. */
export type RejectReason =
  | 'too_large'
  | 'malformed'
  | 'bad_algorithm'
  | 'bad_signature'
  | 'wrong_type'
  | 'missing_claim'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'expired'
  | 'not_yet_valid'
  | 'lifetime_too_long'
  | 'wrong_site'
  | 'unknown_command'
  | 'bad_args'
  | 'mismatched_id'
  | 'keys_unavailable'
  | 'replayed'
  | 'conflict'
  | 'outbox_full'
  | 'busy'
  | ArgsEncryptionReason;

/** A command refused before it ran. `message` is human text safe to show (it never echoes the token). */
export class CommandRejected extends Error {
  constructor(
    readonly reason: RejectReason,
    message: string,
  ) {
    super(message);
    this.name = 'CommandRejected';
  }
}

/** A command that passed every check. */
export interface VerifiedCommand<C extends CommandName = CommandName> {
  jti: string;
  cmd: C;
  args: CommandArgs[C];
  /** The user who signed off the command (the manage app's `sub`). */
  sub: string;
  site: string;
  /** Token expiry, ms epoch. */
  expiresAt: number;
}

export interface VerifierOptions {
  keys: PinnedKeys;
  /** The manage app's issuer, exact. */
  issuer: string;
  /** This gateway's id: the only accepted `aud`. */
  gatewayId: string;
  /** This gateway's site: the only accepted `site`. */
  site: string;
  /** This gateway's current encryption key (args encrypted to any other key are refused). */
  encryptionKey?: EncryptionKey;
  /** Refuse commands whose args are not encrypted (default false while the manage app migrates). */
  requireEncryptedArgs?: boolean;
  /** Clock tolerance, seconds (default CLOCK_TOLERANCE_S). */
  clockToleranceS?: number;
  now?: () => number;
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export class CommandVerifier {
  private readonly now: () => number;
  private readonly tolerance: number;

  constructor(private readonly opts: VerifierOptions) {
    this.now = opts.now ?? Date.now;
    this.tolerance = opts.clockToleranceS ?? CLOCK_TOLERANCE_S;
  }

  /** Clock tolerance in seconds (the replay guard keeps a jti until exp plus this). */
  get clockToleranceS(): number {
    return this.tolerance;
  }

  /** Verify a command token. Resolves the verified command or throws CommandRejected. */
  async verify(token: unknown): Promise<VerifiedCommand> {
    if (typeof token !== 'string') throw new CommandRejected('malformed', 'the command token is not a string');
    if (token.length > MAX_TOKEN_LENGTH)
      throw new CommandRejected('too_large', `the command token is longer than ${MAX_TOKEN_LENGTH} characters`);
    if (!COMPACT_JWS.test(token)) throw new CommandRejected('malformed', 'the command token is not a compact JWS');

    let payload: JWTPayload;
    try {
      const result = await jwtVerify(
        token,
        async (header) => (await this.opts.keys.resolve(header.kid, header.alg)).key,
        {
          algorithms: [...MANAGE_ALGORITHMS],
          issuer: this.opts.issuer,
          audience: this.opts.gatewayId,
          typ: TOKEN_TYP.command,
          requiredClaims: [...REQUIRED_CLAIMS.command],
          maxTokenAge: MAX_COMMAND_LIFETIME_S,
          clockTolerance: this.tolerance,
          currentDate: new Date(this.now()),
        },
      );
      payload = result.payload;
    } catch (err) {
      throw mapJoseError(err);
    }

    // jose accepts an `aud` array that contains the expected value; a command names exactly one gateway.
    if (typeof payload.aud !== 'string' || payload.aud !== this.opts.gatewayId)
      throw new CommandRejected('wrong_audience', 'the command is not addressed to this gateway alone');
    const { iat, exp, jti } = payload;
    if (typeof iat !== 'number' || typeof exp !== 'number')
      throw new CommandRejected('missing_claim', 'the command token lacks numeric iat/exp');
    if (exp - iat > MAX_COMMAND_LIFETIME_S)
      throw new CommandRejected(
        'lifetime_too_long',
        `the command token lives longer than ${MAX_COMMAND_LIFETIME_S} s (exp − iat)`,
      );
    if (typeof jti !== 'string' || !isCommandId(jti))
      throw new CommandRejected('malformed', 'the command token has an unusable jti');
    if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 256)
      throw new CommandRejected('malformed', 'the command token has an unusable sub');
    if (payload.site !== this.opts.site)
      throw new CommandRejected('wrong_site', "the command is for another site than this gateway's");
    const cmd = payload.cmd;
    if (!isCommandName(cmd)) throw new CommandRejected('unknown_command', 'this gateway does not know that command');
    let clearArgs: unknown = payload.args;
    if (isEncryptedArgs(payload.args)) {
      if (!this.opts.encryptionKey)
        throw new CommandRejected('wrong_encryption_key', 'this gateway has no encryption key loaded');
      clearArgs = await decryptArgs(payload.args.jwe, this.opts.encryptionKey);
    } else if (this.opts.requireEncryptedArgs) {
      throw new CommandRejected('args_not_encrypted', 'this gateway accepts only args encrypted to its key');
    }
    let args: CommandArgs[typeof cmd];
    try {
      args = validateCommandArgs(cmd, clearArgs);
    } catch (err) {
      throw new CommandRejected('bad_args', (err as Error).message);
    }
    return { jti, cmd, args, sub: payload.sub, site: this.opts.site, expiresAt: exp * 1000 };
  }
}

function mapJoseError(err: unknown): CommandRejected {
  if (err instanceof CommandRejected) return err;
  if (err instanceof KeyLookupError) return new CommandRejected(err.reason, err.message);
  if (err instanceof joseErrors.JWTExpired)
    return new CommandRejected('expired', 'the command token has expired; ask for a fresh one');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.reason === 'missing')
      return new CommandRejected('missing_claim', `the command token lacks the "${err.claim}" claim`);
    switch (err.claim) {
      case 'typ':
        return new CommandRejected('wrong_type', 'the token is not a command token (typ)');
      case 'iss':
        return new CommandRejected('wrong_issuer', 'the command token was not issued by the pinned manage app');
      case 'aud':
        return new CommandRejected('wrong_audience', 'the command is not addressed to this gateway');
      case 'nbf':
        return new CommandRejected('not_yet_valid', 'the command token is not valid yet (check clocks)');
      case 'iat':
        return err.message.includes('in the past')
          ? new CommandRejected('not_yet_valid', 'the command token was issued in the future (check clocks)')
          : new CommandRejected('expired', 'the command token is too old');
      default:
        return new CommandRejected('malformed', `the command token's "${err.claim}" claim is invalid`);
    }
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported)
    return new CommandRejected('bad_algorithm', 'the command token uses an algorithm this gateway does not accept');
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return new CommandRejected('bad_signature', 'the command token signature does not verify');
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid)
    return new CommandRejected('malformed', 'the command token is malformed');
  return new CommandRejected('malformed', 'the command token could not be verified');
}
