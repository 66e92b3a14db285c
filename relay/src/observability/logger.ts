/**
 * pino JSON logger for the relay. Tokens never reach a log line: every field that can carry one is redacted
 * by path, and the core only ever logs ids (jti, sub, site, gateway), never message payloads, so no patient
 * data (names, ids, birth dates) is written either.
 */
import { type Logger, pino } from 'pino';
import type { LogLevel } from '../config.js';

/** Paths censored in every log line, whatever code logs them. */
export const REDACT_PATHS = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'activationCode',
  '*.activationCode',
  'proof',
  '*.proof',
  'args',
  '*.args',
  'data',
  '*.data',
  'detail',
  '*.detail',
];

export function createLogger(level: LogLevel, nodeId: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'scanrelay-relay', node: nodeId },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
