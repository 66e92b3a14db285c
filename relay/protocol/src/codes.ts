/**
 * The one table of ScanRelay error codes.
 *
 * Every `error` message and every close the relay makes carries one of these codes. The close code tells a
 * client what to do next without parsing text:
 *
 * ```
 *   1001        node shutting down        reconnect at once (to another node), no backoff needed
 *   1009        frame too large           do not resend that frame; fix the client
 *   4000–4499   transient                 reconnect after full-jitter backoff
 *   4500–4999   permanent                 do NOT reconnect until credentials or the client are fixed
 * ```
 *
 * Tests assert every row (relay/protocol/test/codes.test.ts), so a change here is a protocol change.
 */

/** Stable error codes, as they appear in `error.code` and in close reasons. */
export const ERROR_CODES = [
  'bad_message',
  'too_large',
  'unauthenticated',
  'token_expired',
  'forbidden',
  'unknown_site',
  'rate_limited',
  'gateway_offline',
  'replaced',
  'revoked',
  'slow_consumer',
  'shutting_down',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** What a client should do after a close carrying this code. */
export type CloseAction = 'reconnect' | 'stop';

export interface CodeInfo {
  /** Human message sent with the code when no more specific one is given. Safe to show to an operator. */
  readonly message: string;
  /** WebSocket close code used when this error ends the connection. */
  readonly closeCode: number;
  /** Whether a client may reconnect (with backoff) after such a close. */
  readonly action: CloseAction;
  /** Whether the relay ever closes a connection with this code (some are only ever `error` replies). */
  readonly closes: boolean;
}

export const CODES: Readonly<Record<ErrorCode, CodeInfo>> = Object.freeze({
  bad_message: {
    message: 'The message does not match protocol v1; see the field named in the message.',
    closeCode: 4500,
    action: 'stop',
    closes: true,
  },
  too_large: {
    message: 'The frame is larger than the relay accepts (see welcome.limits.maxMessageBytes).',
    closeCode: 1009,
    action: 'stop',
    closes: true,
  },
  unauthenticated: {
    message: 'The connection is not authenticated: send hello with a valid token first.',
    closeCode: 4501,
    action: 'stop',
    closes: true,
  },
  token_expired: {
    message: 'The token has expired: obtain a fresh one and renew with auth, or reconnect with it.',
    closeCode: 4502,
    action: 'stop',
    closes: true,
  },
  forbidden: {
    message: 'The token does not allow this action or site.',
    closeCode: 4503,
    action: 'stop',
    closes: true,
  },
  unknown_site: {
    message: 'No such site is known to the relay.',
    closeCode: 4504,
    action: 'stop',
    closes: false,
  },
  replaced: {
    message: 'A newer connection for the same gateway replaced this one.',
    closeCode: 4505,
    action: 'stop',
    closes: true,
  },
  revoked: {
    message: 'The credentials were revoked: enrol again or sign in again.',
    closeCode: 4506,
    action: 'stop',
    closes: true,
  },
  internal: {
    message: 'The relay hit an internal error; retry shortly.',
    closeCode: 4000,
    action: 'reconnect',
    closes: true,
  },
  rate_limited: {
    message: 'Too many messages or connections; slow down and retry later.',
    closeCode: 4001,
    action: 'reconnect',
    closes: true,
  },
  slow_consumer: {
    message: 'The connection fell too far behind reading; reconnect and resume.',
    closeCode: 4002,
    action: 'reconnect',
    closes: true,
  },
  gateway_offline: {
    message: 'The gateway is offline and the command could not be held for it.',
    closeCode: 4003,
    action: 'reconnect',
    closes: false,
  },
  shutting_down: {
    message: 'This relay node is shutting down; reconnect to continue on another node.',
    closeCode: 1001,
    action: 'reconnect',
    closes: true,
  },
});

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/**
 * Decide what to do after a close. Unknown close codes follow the ranges; 1000 (normal) and anything
 * below 4000 other than 1008/1009 reconnect, since those come from networks, proxies and restarts.
 */
export function closeAction(closeCode: number): CloseAction {
  if (closeCode >= 4500 && closeCode <= 4999) return 'stop';
  if (closeCode >= 4000 && closeCode <= 4499) return 'reconnect';
  if (closeCode === 1008 || closeCode === 1009 || closeCode === 1002 || closeCode === 1003 || closeCode === 1007)
    return 'stop';
  return 'reconnect';
}

/** The error code a close code stands for, when it is one of ours. */
export function codeForClose(closeCode: number): ErrorCode | undefined {
  for (const code of ERROR_CODES) if (CODES[code].closeCode === closeCode) return code;
  return undefined;
}

/**
 * A protocol error with a stable code. Thrown by decoders and validators; the relay turns it into an
 * `error` message (and, for closing codes, a close).
 */
export class ProtocolError extends Error {
  readonly code: ErrorCode;
  /** Dotted path of the offending field, when there is one (e.g. `data.images`). */
  readonly field: string | undefined;
  constructor(code: ErrorCode, message?: string, field?: string) {
    super(message ?? CODES[code].message);
    this.name = 'ProtocolError';
    this.code = code;
    this.field = field;
  }
}
