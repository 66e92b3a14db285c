/**
 * The agent's logger: pino JSON on stderr. Logs never carry a token or patient data; command args are never
 * logged, only the command id (the token's `jti`), its `cmd` and the outcome.
 */
import { type Logger, pino } from 'pino';

export type { Logger };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export function createLogger(level: LogLevel = 'info'): Logger {
  return pino(
    {
      level,
      base: { service: 'scanrelay-gateway' },
      // Belt and braces: even if a caller passes one by mistake, these never reach the log.
      redact: { paths: ['token', '*.token', 'args', '*.args', 'patientName', '*.patientName'], censor: '[redacted]' },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}

/** A logger that drops everything (tests, library use without logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
