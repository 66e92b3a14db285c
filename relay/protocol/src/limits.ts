/**
 * Identifier formats and size limits that are part of protocol v1. Both sides check them; the relay also
 * checks them before an id becomes a key, channel or path anywhere.
 */

/** Site and gateway ids: lower-case letters, digits and `-`, 1–64 characters, not starting with `-`. */
export const ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** Opaque history position handed out by the relay (`subscribed.position`, `event.position`). */
export const POSITION_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

/** Event kinds: dotted lower-case words, e.g. `procedure.started`. */
export const KIND_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,3}$/;

/** Longest command id (`jti` of a command token, `command` in `command`/`command.status`). */
export const MAX_COMMAND_ID_LENGTH = 128;

/**
 * Command ids: the command token's `jti`, also the `command` field on the wire and the gateway's replay-guard
 * key. Letters, digits and `._:-`, 1–{@link MAX_COMMAND_ID_LENGTH} characters (a UUID or ULID fits). The one
 * definition the relay, the gateway and the schema check against.
 */
export const COMMAND_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** True when `value` is a well-formed command id ({@link COMMAND_ID_PATTERN}). */
export function isCommandId(value: unknown): value is string {
  return typeof value === 'string' && COMMAND_ID_PATTERN.test(value);
}

/** Longest `ref` a client may attach to a request. */
export const MAX_REF_LENGTH = 64;

/** Longest token accepted anywhere; longer ones are refused before any parsing or cryptography. */
export const MAX_TOKEN_LENGTH = 8192;

/** Longest `subject` (an accession number is SH, 16 characters; room is left for other subjects). */
export const MAX_SUBJECT_LENGTH = 64;

/** Nesting depth allowed inside free-form `data` / `detail` objects. */
export const MAX_JSON_DEPTH = 8;

/** Longest string inside free-form `data` / `detail` objects. */
export const MAX_JSON_STRING = 4096;

/** Default largest frame, in bytes, either direction (also `welcome.limits.maxMessageBytes`). */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024;

export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}
