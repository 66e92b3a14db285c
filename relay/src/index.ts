/**
 * @scanrelay/relay — the ScanRelay relay server as a library.
 *
 * ```ts
 * import { createRelay } from '@scanrelay/relay';
 * const relay = await createRelay({ manageJwks, manageIssuer, host: '127.0.0.1', port: 0, dataDir });
 * const port = await relay.listen();
 * ```
 * The binary `scanrelay-relay` (main.ts) does the same from environment variables.
 */
export type { AdminHooks, Authenticator } from './auth/types.js';
export { type Clock, systemClock, type Timer } from './clock.js';
export {
  ConfigError,
  configFromEnv,
  DEFAULT_HISTORY,
  DEFAULT_LIMITS,
  DEFAULT_TIMINGS,
  type HistoryConfig,
  LIMIT_ENV,
  type LogLevel,
  loadConfig,
  type RelayConfig,
  type RelayConfigInput,
  type RelayLimits,
  type RelayTimings,
  resolveConfig,
} from './config.js';
export type { CreateTransport, TransportKind } from './core/transport.js';
export { RelayMetrics } from './observability/metrics.js';
export { MemoryHub } from './ports/create.js';
export type { Ports } from './ports/index.js';
export { createRelay, type Relay, type RelayDeps } from './relay.js';
