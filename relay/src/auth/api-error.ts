/**
 * Errors of the relay's HTTP API (admin and activation). Each answers with `status` and the JSON body
 * `{ code, message }`; `code` is a protocol error code where one fits, else one of the HTTP-only codes below.
 */
import type { ErrorCode } from '@scanrelay/protocol';

/** Codes only the HTTP API uses (the WebSocket protocol has no equivalent). */
export type HttpOnlyCode = 'not_found' | 'conflict' | 'unsupported_media_type' | 'method_not_allowed';
export type ApiErrorCode = ErrorCode | HttpOnlyCode;

export class ApiError extends Error {
  readonly status: number;
  readonly code: ApiErrorCode;
  /** Seconds for a `Retry-After` header (429). */
  readonly retryAfterS: number | undefined;
  /** Short machine reason for logs and metrics (`bad_proof`, `locked`, …). */
  readonly reason: string;
  /** Extra response headers (e.g. `Allow` on 405). */
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    status: number,
    code: ApiErrorCode,
    message: string,
    opts: { reason?: string; retryAfterS?: number; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.reason = opts.reason ?? code;
    this.retryAfterS = opts.retryAfterS;
    this.headers = opts.headers ?? {};
  }
}
