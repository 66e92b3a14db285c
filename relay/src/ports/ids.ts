/**
 * Checks applied before any value becomes part of a Redis key, a channel name, a file name or a Map key that
 * is later serialised. Site, gateway and node ids follow the protocol's ID_PATTERN; token ids (`jti`, `sid`)
 * and activation lookups come from signed tokens or from us, but are still bounded and restricted so a
 * crafted value cannot create hash-tag collisions, glob patterns or huge keys.
 */
import { COMMAND_ID_PATTERN, ID_PATTERN, isCommandId } from '@scanrelay/protocol';
import { PortError } from './errors.js';

/** Token ids (`jti`, `sid`) and activation lookups: URL-safe printable characters, no braces or globs. */
export const TOKEN_ID_PATTERN = /^[A-Za-z0-9._~:+/=-]{1,200}$/;

/** Node ids: like ID_PATTERN, also allowing `.` and `_` (host names, pod names). */
export const NODE_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

/** Throw `invalid_id` unless `value` is a site or gateway id. `what` names it in the message. */
export function assertId(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || !ID_PATTERN.test(value)) {
    throw new PortError('invalid_id', `${what} is not a valid id (expected ${ID_PATTERN.source})`);
  }
}

/** Throw `invalid_id` unless `value` is an acceptable token id or activation lookup. */
export function assertTokenId(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || !TOKEN_ID_PATTERN.test(value)) {
    throw new PortError('invalid_id', `${what} is not a valid token id (expected ${TOKEN_ID_PATTERN.source})`);
  }
}

/** Throw `invalid_id` unless `value` is a command id (the protocol's {@link COMMAND_ID_PATTERN}). */
export function assertCommandId(value: unknown, what: string): asserts value is string {
  if (!isCommandId(value)) {
    throw new PortError('invalid_id', `${what} is not a valid command id (expected ${COMMAND_ID_PATTERN.source})`);
  }
}

/** Throw `invalid_id` unless `value` is an acceptable node id. */
export function assertNodeId(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || !NODE_ID_PATTERN.test(value)) {
    throw new PortError('invalid_id', `${what} is not a valid node id (expected ${NODE_ID_PATTERN.source})`);
  }
}

/**
 * Bus channels the core may use: `site:<id>`, `node:<node id>`, `gateway:<id>`, `control`. Anything else is
 * refused, so raw input can never reach a subscription (and never a pattern subscription: none are used).
 */
export const CHANNEL_PATTERN =
  /^(control|site:[a-z0-9][a-z0-9-]{0,63}|gateway:[a-z0-9][a-z0-9-]{0,63}|node:[A-Za-z0-9][A-Za-z0-9._-]{0,63})$/;

export function assertChannel(value: unknown): asserts value is string {
  if (typeof value !== 'string' || !CHANNEL_PATTERN.test(value)) {
    throw new PortError('invalid_id', `bus channel ${JSON.stringify(String(value).slice(0, 80))} is not allowed`);
  }
}

/** Split a position `<epoch>-<rest>` into its epoch and the backend's part; undefined if malformed. */
export function splitPosition(position: string): { epoch: string; rest: string } | undefined {
  const dash = position.indexOf('-');
  if (dash <= 0 || dash === position.length - 1) return undefined;
  return { epoch: position.slice(0, dash), rest: position.slice(dash + 1) };
}

/** Boolean form of assertTokenId, for parsers. */
export function isTokenIdOk(value: unknown): value is string {
  return typeof value === 'string' && TOKEN_ID_PATTERN.test(value);
}
