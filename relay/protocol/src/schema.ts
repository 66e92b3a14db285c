/**
 * Strict schemas for every protocol v1 message, in each direction. A validator either returns the message
 * typed or throws a `ProtocolError('bad_message')` whose text names the offending field. Unknown fields are
 * rejected; free-form objects (`data`, `detail`, snapshots) must be plain JSON with bounded depth.
 *
 * Hand-written rather than a schema library: the rules are few, the hot path is every inbound frame, and the
 * package must stay dependency-light for the browser bundle.
 */
import { isErrorCode, ProtocolError } from './codes.js';
import {
  COMMAND_ID_PATTERN,
  ID_PATTERN,
  KIND_PATTERN,
  MAX_COMMAND_ID_LENGTH,
  MAX_JSON_DEPTH,
  MAX_JSON_STRING,
  MAX_REF_LENGTH,
  MAX_SUBJECT_LENGTH,
  MAX_TOKEN_LENGTH,
  POSITION_PATTERN,
} from './limits.js';
import { COMMAND_STATES, type Direction, type DirectionMessages, type JsonObject } from './messages.js';

type Check = (value: unknown, path: string) => void;

interface FieldSpec {
  check: Check;
  optional?: boolean;
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function fail(path: string, what: string): never {
  throw new ProtocolError('bad_message', `field "${path}" ${what}`, path);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

const str =
  (max: number, pattern?: RegExp, min = 1): Check =>
  (v, p) => {
    if (typeof v !== 'string') fail(p, 'must be a string');
    if (v.length < min) fail(p, 'must not be empty');
    if (v.length > max) fail(p, `must be at most ${max} characters`);
    if (pattern && !pattern.test(v)) fail(p, `has an invalid format (expected ${pattern.source})`);
  };

const int =
  (min: number, max = Number.MAX_SAFE_INTEGER): Check =>
  (v, p) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(p, 'must be an integer');
    if (v < min || v > max) fail(p, `must be between ${min} and ${max}`);
  };

const bool: Check = (v, p) => {
  if (typeof v !== 'boolean') fail(p, 'must be true or false');
};

const oneOf =
  (values: readonly string[]): Check =>
  (v, p) => {
    if (typeof v !== 'string' || !values.includes(v)) fail(p, `must be one of ${values.join(', ')}`);
  };

const literal =
  (value: string): Check =>
  (v, p) => {
    if (v !== value) fail(p, `must be "${value}"`);
  };

/** Checks a free-form JSON value: plain objects, arrays, strings, finite numbers, booleans, null. */
export function checkJson(value: unknown, path: string, depth = 0): void {
  if (depth > MAX_JSON_DEPTH) fail(path, `nests deeper than ${MAX_JSON_DEPTH} levels`);
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) fail(path, 'must be a finite number');
    return;
  }
  if (typeof value === 'string') {
    if (value.length > MAX_JSON_STRING) fail(path, `must be at most ${MAX_JSON_STRING} characters`);
    return;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkJson(value[i], `${path}.${i}`, depth + 1);
    return;
  }
  if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) fail(`${path}.${key}`, 'is a reserved name');
      checkJson(value[key], `${path}.${key}`, depth + 1);
    }
    return;
  }
  fail(path, 'must be plain JSON (no binary, dates, maps, sets or extension types)');
}

const jsonObject: Check = (v, p) => {
  if (!isPlainObject(v)) fail(p, 'must be an object');
  checkJson(v, p);
};

const object =
  (fields: Record<string, FieldSpec>): Check =>
  (v, p) => {
    checkFields(v, fields, p);
  };

const arrayOf =
  (item: Check, max: number): Check =>
  (v, p) => {
    if (!Array.isArray(v)) fail(p, 'must be an array');
    if (v.length > max) fail(p, `must have at most ${max} entries`);
    for (let i = 0; i < v.length; i++) item(v[i], `${p}.${i}`);
  };

function checkFields(value: unknown, fields: Record<string, FieldSpec>, path: string): void {
  if (!isPlainObject(value)) fail(path || 'message', 'must be an object');
  const prefix = path ? `${path}.` : '';
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(fields, key)) fail(prefix + key, 'is not part of this message');
  }
  for (const [key, spec] of Object.entries(fields)) {
    const v = value[key];
    if (v === undefined) {
      if (!spec.optional) fail(prefix + key, 'is required');
      continue;
    }
    spec.check(v, prefix + key);
  }
}

const req = (check: Check): FieldSpec => ({ check });
const opt = (check: Check): FieldSpec => ({ check, optional: true });

// Shared field checks.
const token = str(MAX_TOKEN_LENGTH);
const ref = str(MAX_REF_LENGTH);
const id = str(64, ID_PATTERN);
const position = str(64, POSITION_PATTERN);
const epochMs = int(0);
const commandId = str(MAX_COMMAND_ID_LENGTH, COMMAND_ID_PATTERN);
const subject = str(MAX_SUBJECT_LENGTH);
const kind = str(64, KIND_PATTERN);
const progress = object({ done: req(int(0)), total: req(int(0)) });
const state = oneOf(COMMAND_STATES);

const snapshotEntry = object({
  subject: req(subject),
  gateway: req(id),
  seq: req(int(1)),
  position: req(position),
  kind: req(kind),
  at: req(epochMs),
  data: req(jsonObject),
});
const presenceEntry = object({ gateway: req(id), online: req(bool), since: req(epochMs) });
const errorCode: Check = (v, p) => {
  if (!isErrorCode(v)) fail(p, 'must be a known error code');
};

type Schemas = Record<string, Record<string, FieldSpec>>;

const hello = { token: req(token) };
const ping = { ref: opt(ref) };
const pong = { ref: opt(ref) };
const error = { code: req(errorCode), message: req(str(1024)), ref: opt(ref) };

/** Field specs per message type, per direction (the `type` field is implied). */
export const SCHEMAS: Readonly<Record<Direction, Schemas>> = {
  'browser→relay': {
    hello,
    auth: { token: req(token), ref: opt(ref) },
    subscribe: { site: req(id), since: opt(position), ref: opt(ref) },
    unsubscribe: { site: req(id), ref: opt(ref) },
    command: { ref: req(ref), token: req(token) },
    ping,
  },
  'gateway→relay': {
    hello,
    'command.status': {
      command: req(commandId),
      state: req(state),
      detail: opt(jsonObject),
      progress: opt(progress),
    },
    event: {
      seq: req(int(1)),
      kind: req(kind),
      subject: opt(subject),
      at: req(epochMs),
      data: req(jsonObject),
    },
    'gateway.report': {
      at: req(epochMs),
      agent: req(object({ version: req(str(64)), transport: req(str(32)), startedAt: req(epochMs) })),
      outbox: req(object({ pending: req(int(0)), oldestAt: opt(epochMs) })),
      peers: req(arrayOf(object({ aet: req(str(16)), online: req(bool), checkedAt: opt(epochMs) }), 64)),
    },
    ping,
  },
  'relay→browser': {
    welcome: {
      session: req(str(128)),
      node: req(str(128)),
      expiresAt: req(epochMs),
      limits: req(
        object({
          maxMessageBytes: req(int(1)),
          maxSubscriptions: req(int(1)),
          messagesPerSecond: req(int(1)),
          pingIntervalMs: req(int(1)),
        }),
      ),
    },
    'auth.ok': { expiresAt: req(epochMs), ref: opt(ref) },
    'auth.expiring': { expiresAt: req(epochMs) },
    subscribed: {
      site: req(id),
      position: req(position),
      snapshot: req(arrayOf(snapshotEntry, 100_000)),
      presence: req(arrayOf(presenceEntry, 10_000)),
      ref: opt(ref),
    },
    resync: {
      site: req(id),
      position: req(position),
      snapshot: req(arrayOf(snapshotEntry, 100_000)),
      ref: opt(ref),
    },
    unsubscribed: { site: req(id), ref: opt(ref) },
    'command.status': {
      ref: req(ref),
      command: req(commandId),
      state: req(state),
      detail: opt(jsonObject),
      progress: opt(progress),
    },
    event: {
      site: req(id),
      position: req(position),
      gateway: req(id),
      // 0 for the relay's own events on a site's channel (command.status, gateway.online/offline).
      seq: req(int(0)),
      kind: req(kind),
      subject: opt(subject),
      at: req(epochMs),
      data: req(jsonObject),
    },
    presence: { site: req(id), gateway: req(id), online: req(bool), since: req(epochMs) },
    pong,
    error,
  },
  'relay→gateway': {
    welcome: { gateway: req(id), site: req(id), node: req(str(128)), acked: req(int(0)) },
    command: {
      command: req(commandId),
      token: req(token),
      from: req(object({ sub: req(str(256)), session: req(str(128)) })),
    },
    'event.ack': { seq: req(int(1)) },
    pong,
    error,
  },
};

/**
 * Validate a decoded value as a message travelling in `direction`. Returns it typed, or throws
 * `ProtocolError('bad_message')` naming the field.
 */
export function validateMessage<D extends Direction>(direction: D, value: unknown): DirectionMessages[D] {
  if (!isPlainObject(value)) fail('message', 'must be an object with a string "type"');
  const type = value.type;
  if (typeof type !== 'string') fail('type', 'must be a string');
  const schemas = WITH_TYPE[direction];
  const fields = schemas.get(type);
  if (!fields) fail('type', `"${type.slice(0, 32)}" is not a message a ${direction.split('→')[0]} may send`);
  checkFields(value, fields, '');
  return value as unknown as DirectionMessages[D];
}

/** SCHEMAS with the `type` field added, built once. */
const WITH_TYPE = Object.fromEntries(
  Object.entries(SCHEMAS).map(([direction, schemas]) => [
    direction,
    new Map(Object.entries(schemas).map(([type, fields]) => [type, { type: req(literal(type)), ...fields }])),
  ]),
) as unknown as Record<Direction, Map<string, Record<string, FieldSpec>>>;

/** True when `value` is a plain JSON object within the free-form limits (used for command args). */
export function isJsonObject(value: unknown): value is JsonObject {
  try {
    jsonObject(value, 'value');
    return true;
  } catch {
    return false;
  }
}
