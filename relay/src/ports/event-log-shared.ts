/** Checks shared by the EventLog implementations. */
import { KIND_PATTERN, MAX_SUBJECT_LENGTH } from '@scanrelay/protocol';
import { PortError } from './errors.js';
import type { EventLogLimits, NewEvent } from './event-log.js';
import { assertId } from './ids.js';

/** Defaults used when the relay's configuration does not set them. */
export const DEFAULT_EVENT_LOG_LIMITS: EventLogLimits = Object.freeze({
  maxEvents: 10_000,
  maxAgeMs: 24 * 60 * 60 * 1000,
  maxSubjects: 5_000,
});

export function validateLimits(limits: EventLogLimits): void {
  for (const key of ['maxEvents', 'maxAgeMs', 'maxSubjects'] as const) {
    const value = limits[key];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new TypeError(`eventLog.${key} must be a positive integer (got ${String(value)})`);
    }
  }
}

export function validateNewEvent(event: NewEvent): void {
  assertId(event.site, 'event site');
  assertId(event.gateway, 'event gateway');
  if (!Number.isSafeInteger(event.seq) || event.seq < 0) {
    throw new PortError('invalid_id', 'event seq must be a non-negative integer');
  }
  if (typeof event.kind !== 'string' || !KIND_PATTERN.test(event.kind)) {
    throw new PortError('invalid_id', 'event kind is not a valid kind');
  }
  if (
    event.subject !== undefined &&
    (typeof event.subject !== 'string' || event.subject.length === 0 || event.subject.length > MAX_SUBJECT_LENGTH)
  ) {
    throw new PortError('invalid_id', `event subject must be a string of 1–${MAX_SUBJECT_LENGTH} characters`);
  }
}
