/**
 * Typed errors of the gateway agent. Branch on `code`, never on `instanceof` across packages: each code is
 * stable and appears in logs, so an operator can search for it.
 */

/** Stable error codes raised by the gateway agent itself (not protocol codes, which live in the protocol). */
export type GatewayErrorCode =
  | 'config_invalid'
  | 'not_activated'
  | 'activation_failed'
  | 'state_dir_unsafe'
  | 'keys_invalid'
  | 'outbox_full'
  | 'outbox_io'
  | 'outbox_invalid_event'
  | 'replay_guard_full'
  | 'replay_guard_io'
  | 'link_stopped';

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}

/** True when `err` is a GatewayError with that code (works across module copies: checks the shape). */
export function hasCode(err: unknown, code: GatewayErrorCode): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
