/**
 * Errors raised by the client. `code` is either one of the protocol's stable error codes (as the relay sent it)
 * or one of the client's own codes below; branch on `code`, never on the message text.
 */
import { CODES, codeForClose, type ErrorCode, isErrorCode } from '@scanrelay/protocol';

/** Codes the client raises itself (never sent by the relay). */
export type LocalErrorCode =
  /** The client was closed (by `close()` or a permanent close) before the operation finished. */
  | 'closed'
  /** `getToken()` threw or returned something that is not a token. */
  | 'token_unavailable'
  /** The socket could not be opened, or opened but no `welcome` came in time. */
  | 'connect_failed'
  /** The relay sent a frame the protocol does not allow (it was ignored). */
  | 'protocol_violation';

export type ClientErrorCode = ErrorCode | LocalErrorCode;

export class ScanRelayError extends Error {
  /** Stable code: a protocol `ErrorCode` or a `LocalErrorCode`. */
  readonly code: ClientErrorCode;
  /** WebSocket close code, when the error came with a close. */
  readonly closeCode: number | undefined;
  /** The request `ref` the relay's `error` answered, if any. */
  readonly ref: string | undefined;
  constructor(
    code: ClientErrorCode,
    message: string,
    opts: { closeCode?: number; ref?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'ScanRelayError';
    this.code = code;
    this.closeCode = opts.closeCode;
    this.ref = opts.ref;
  }
}

/** The error a close stands for: the relay's own code when the close code is one of ours. */
export function errorForClose(closeCode: number, reason: string): ScanRelayError {
  const fromReason = isErrorCode(reason) ? reason : undefined;
  const code = fromReason ?? codeForClose(closeCode);
  if (code) return new ScanRelayError(code, CODES[code].message, { closeCode });
  return new ScanRelayError('connect_failed', `the connection closed (code ${closeCode})`, { closeCode });
}
