/**
 * Relay configuration: one defaults object → merge (file, then environment; env wins) → validate, failing
 * fast with a message that names the setting and the fix. Every limit is on by default.
 *
 * ```ts
 * const config = resolveConfig({ manageJwks: '/etc/scanrelay/jwks.json', manageIssuer: 'https://manage.example' });
 * const config2 = await loadConfig(process.env, ['--config', 'relay.json']);   // what the binary does
 * ```
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { DEFAULT_AUDIENCE, DEFAULT_MAX_MESSAGE_BYTES } from '@scanrelay/protocol';
import type { TransportKind } from './core/transport.js';

/** Limits enforced per connection and per node. All have defaults; see README "Limits". */
export interface RelayLimits {
  /** Largest inbound frame, bytes (→ close 1009). Default 65,536. */
  maxMessageBytes: number;
  /** Time allowed between the upgrade and `hello`, ms (→ close 4501). Default 10,000. */
  helloTimeoutMs: number;
  /** Sustained inbound messages per second per connection. Default 50. */
  messagesPerSecond: number;
  /** Burst allowance of the per-connection token bucket. Default 100. */
  messageBurst: number;
  /** Sustained inbound messages per second per gateway connection (outbox flushes after a reconnect). Default 500. */
  gatewayMessagesPerSecond: number;
  /** Burst allowance for a gateway connection. Default 2,000. */
  gatewayMessageBurst: number;
  /** Messages refused for rate after which the connection is closed (4001). Default 20. */
  rateLimitStrikes: number;
  /** Sites one browser connection may subscribe to. Default 64. */
  maxSubscriptions: number;
  /** Open sockets per client IP, authenticated or not (→ HTTP 429). Default 200. */
  maxConnectionsPerIp: number;
  /** Open browser sockets per user (`sub`) on this node (→ close 4001). Default 20. */
  maxConnectionsPerUser: number;
  /** Send buffer per connection, bytes (→ close 4002 `slow_consumer`). Default 1 MiB. */
  sendBufferBytes: number;
  /** Invalid messages tolerated per connection (→ close 4500). Default 10. */
  maxBadMessages: number;
  /** Messages received but not yet handled per browser connection (→ `rate_limited`). Default 32. */
  maxPendingMessages: number;
  /** Same for a gateway connection, which is closed (4001) rather than have an event skipped. Default 1,024. */
  gatewayMaxPendingMessages: number;
  /** Commands held per gateway (→ error `gateway_offline`). Default 100. */
  maxHeldCommandsPerGateway: number;
  /** Events sent to a resuming browser before it is told to resync instead. Default 5,000. */
  maxCatchUpEvents: number;
}

/** Liveness and periodic work. */
export interface RelayTimings {
  /** WebSocket ping frame interval, ms; also `welcome.limits.pingIntervalMs`. Default 15,000. */
  pingIntervalMs: number;
  /** A socket with no traffic and no pong for this long is terminated, ms. Default 30,000 (offline ≤ 45 s). */
  livenessTimeoutMs: number;
  /** Presence lease TTL, ms: bounds how long a dead node's gateways stay online. Default 45,000. */
  presenceTtlMs: number;
  /** How early `auth.expiring` is sent, ms (at most 10 % of the token's lifetime). Default 60,000. */
  expiryWarningMs: number;
  /** Re-check of revocations against the Registry, ms. Default 30,000. */
  revocationSweepMs: number;
  /** Expired presence leases and held commands are reaped, and held commands re-delivered, every …ms. Default 2,000. */
  maintenanceIntervalMs: number;
  /**
   * A gateway must report some status (normally `verified`, within milliseconds) for a command delivered to
   * it within this time, or its link is presumed dead: terminated, and the command held for redelivery. ms.
   * Default 15,000.
   */
  commandAckTimeoutMs: number;
  /**
   * A command with no final outcome by its token's `exp` plus this grace ends `timed_out` (the one terminal
   * state for "the relay never learned how it went"). Covers a long run that outlives its token, and a
   * surviving node asking the gateway again after a node death. ms. Default 60,000.
   */
  commandOutcomeGraceMs: number;
  /** How long `close()` waits for clients to close after 1001 before terminating them, ms. Default 5,000. */
  shutdownGraceMs: number;
  /** Node http `headersTimeout`, ms. Default 10,000. */
  headersTimeoutMs: number;
  /** Node http `requestTimeout`, ms. Default 15,000. */
  requestTimeoutMs: number;
}

/** History kept per site (passed to the EventLog). */
export interface HistoryConfig {
  /** Most events kept per site. Default 10,000. */
  maxEvents: number;
  /** Oldest event kept, ms. Default 24 h. */
  maxAgeMs: number;
  /** Most subjects in a site's snapshot. Default 5,000. */
  maxSubjects: number;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** The whole, validated relay configuration. */
export interface RelayConfig {
  /** Interface to listen on. Default `0.0.0.0`. */
  host: string;
  /** TCP port; 0 picks a free one. Default 8080. */
  port: number;
  /** Redis URL for many nodes; unset = embedded single node (memory ports + file registry). */
  redisUrl: string | undefined;
  /** Manage app public keys: a JWKS file path or an https URL. Required. */
  manageJwks: string;
  /** Exact `iss` of manage-app tokens. Required. */
  manageIssuer: string;
  /** This relay's `aud` for session, admin and gateway tokens. Default `scanrelay`. */
  audience: string;
  /** Exact Origins allowed on `/v1/browser` (e.g. `https://manage.example.org`). Default none. */
  allowedOrigins: string[];
  /** Directory for the file registry (embedded mode). Default `./data`. */
  dataDir: string;
  /** This node's id (Bus channel `node:<id>`, presence). Default `<hostname>-<pid>`. */
  nodeId: string;
  /** WebSocket transport. Default `ws`. */
  transport: TransportKind;
  /** pino level. Default `info`. */
  logLevel: LogLevel;
  /**
   * Behind our own proxy (HAProxy, ingress): take the client address from the last `X-Forwarded-For` hop for
   * the per-IP caps (and the admin API's limits). Never enable when clients can reach the relay directly.
   * Default false.
   */
  trustProxy: boolean;
  /**
   * Refuse command tokens whose `args` are not encrypted to the gateway (`{ jwe }`, issue 17), so patient
   * data in commands can never pass through this relay in clear. Events are not covered yet. Default false.
   */
  requireEncryptedPayloads: boolean;
  /**
   * Also serve WebTransport (HTTP/2, and HTTP/3 when its native module loads) on this port, beside the
   * WebSocket listener. Needs `webTransportCert` and `webTransportKey`. Default unset (off).
   */
  webTransportPort: number | undefined;
  /** PEM certificate chain file for the WebTransport listener. */
  webTransportCert: string | undefined;
  /** PEM private key file for the WebTransport listener. */
  webTransportKey: string | undefined;
  /**
   * Path of the Go HTTP/3 sidecar binary (`relay/wt-sidecar/bin/wt-sidecar`). When set, `webTransportPort`
   * is served as WebTransport over HTTP/3 (UDP) by the sidecar, which browsers use; with no cert/key the
   * sidecar makes a 13-day ECDSA P-256 development certificate and /version advertises its hash.
   * Default unset (HTTP/2 WebTransport through the npm library).
   */
  webTransportSidecar: string | undefined;
  limits: RelayLimits;
  timings: RelayTimings;
  history: HistoryConfig;
}

/** A partial configuration, as written in a `--config` file or passed to `createRelay`. */
export type RelayConfigInput = Partial<Omit<RelayConfig, 'limits' | 'timings' | 'history'>> & {
  limits?: Partial<RelayLimits>;
  timings?: Partial<RelayTimings>;
  history?: Partial<HistoryConfig>;
};

export const DEFAULT_LIMITS: Readonly<RelayLimits> = Object.freeze({
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  helloTimeoutMs: 10_000,
  messagesPerSecond: 50,
  messageBurst: 100,
  gatewayMessagesPerSecond: 500,
  gatewayMessageBurst: 2_000,
  rateLimitStrikes: 20,
  maxSubscriptions: 64,
  maxConnectionsPerIp: 200,
  maxConnectionsPerUser: 20,
  sendBufferBytes: 1024 * 1024,
  maxBadMessages: 10,
  maxPendingMessages: 32,
  gatewayMaxPendingMessages: 1_024,
  maxHeldCommandsPerGateway: 100,
  maxCatchUpEvents: 5_000,
});

export const DEFAULT_TIMINGS: Readonly<RelayTimings> = Object.freeze({
  pingIntervalMs: 15_000,
  livenessTimeoutMs: 30_000,
  presenceTtlMs: 45_000,
  expiryWarningMs: 60_000,
  revocationSweepMs: 30_000,
  maintenanceIntervalMs: 2_000,
  commandAckTimeoutMs: 15_000,
  commandOutcomeGraceMs: 60_000,
  shutdownGraceMs: 5_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
});

export const DEFAULT_HISTORY: Readonly<HistoryConfig> = Object.freeze({
  maxEvents: 10_000,
  maxAgeMs: 24 * 60 * 60 * 1000,
  maxSubjects: 5_000,
});

/** A configuration problem. `setting` names the env var (or file key) to fix. */
export class ConfigError extends Error {
  readonly code = 'invalid_config' as const;
  readonly setting: string;
  constructor(setting: string, message: string) {
    super(`${setting}: ${message}`);
    this.name = 'ConfigError';
    this.setting = setting;
  }
}

/** Environment variable → config path, for the limit settings (all integers). */
export const LIMIT_ENV: Readonly<Record<string, [section: 'limits' | 'timings' | 'history', key: string]>> = {
  SCANRELAY_MAX_MESSAGE_BYTES: ['limits', 'maxMessageBytes'],
  SCANRELAY_HELLO_TIMEOUT_MS: ['limits', 'helloTimeoutMs'],
  SCANRELAY_MESSAGES_PER_SECOND: ['limits', 'messagesPerSecond'],
  SCANRELAY_MESSAGE_BURST: ['limits', 'messageBurst'],
  SCANRELAY_GATEWAY_MESSAGES_PER_SECOND: ['limits', 'gatewayMessagesPerSecond'],
  SCANRELAY_GATEWAY_MESSAGE_BURST: ['limits', 'gatewayMessageBurst'],
  SCANRELAY_GATEWAY_MAX_PENDING_MESSAGES: ['limits', 'gatewayMaxPendingMessages'],
  SCANRELAY_RATE_LIMIT_STRIKES: ['limits', 'rateLimitStrikes'],
  SCANRELAY_MAX_SUBSCRIPTIONS: ['limits', 'maxSubscriptions'],
  SCANRELAY_MAX_CONNECTIONS_PER_IP: ['limits', 'maxConnectionsPerIp'],
  SCANRELAY_MAX_CONNECTIONS_PER_USER: ['limits', 'maxConnectionsPerUser'],
  SCANRELAY_SEND_BUFFER_BYTES: ['limits', 'sendBufferBytes'],
  SCANRELAY_MAX_BAD_MESSAGES: ['limits', 'maxBadMessages'],
  SCANRELAY_MAX_PENDING_MESSAGES: ['limits', 'maxPendingMessages'],
  SCANRELAY_MAX_HELD_COMMANDS: ['limits', 'maxHeldCommandsPerGateway'],
  SCANRELAY_MAX_CATCH_UP_EVENTS: ['limits', 'maxCatchUpEvents'],
  SCANRELAY_PING_INTERVAL_MS: ['timings', 'pingIntervalMs'],
  SCANRELAY_LIVENESS_TIMEOUT_MS: ['timings', 'livenessTimeoutMs'],
  SCANRELAY_PRESENCE_TTL_MS: ['timings', 'presenceTtlMs'],
  SCANRELAY_EXPIRY_WARNING_MS: ['timings', 'expiryWarningMs'],
  SCANRELAY_REVOCATION_SWEEP_MS: ['timings', 'revocationSweepMs'],
  SCANRELAY_MAINTENANCE_INTERVAL_MS: ['timings', 'maintenanceIntervalMs'],
  SCANRELAY_COMMAND_ACK_TIMEOUT_MS: ['timings', 'commandAckTimeoutMs'],
  SCANRELAY_COMMAND_OUTCOME_GRACE_MS: ['timings', 'commandOutcomeGraceMs'],
  SCANRELAY_SHUTDOWN_GRACE_MS: ['timings', 'shutdownGraceMs'],
  SCANRELAY_HEADERS_TIMEOUT_MS: ['timings', 'headersTimeoutMs'],
  SCANRELAY_REQUEST_TIMEOUT_MS: ['timings', 'requestTimeoutMs'],
  SCANRELAY_HISTORY_MAX_EVENTS: ['history', 'maxEvents'],
  SCANRELAY_HISTORY_MAX_AGE_MS: ['history', 'maxAgeMs'],
  SCANRELAY_HISTORY_MAX_SUBJECTS: ['history', 'maxSubjects'],
};

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const NODE_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

/** Env var name of a config key, for messages (file users see the key in parentheses). */
function settingName(section: string | undefined, key: string): string {
  if (section) {
    const env = Object.entries(LIMIT_ENV).find(([, [s, k]]) => s === section && k === key)?.[0];
    return env ? `${env} (${section}.${key})` : `${section}.${key}`;
  }
  const env = `SCANRELAY_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
  return `${env} (${key})`;
}

function defaultNodeId(): string {
  const host = hostname()
    .toLowerCase()
    .replace(/[^a-z0-9._-]/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 48);
  return `${host || 'relay'}-${process.pid}`;
}

/** Merge `input` over the defaults and validate. Throws ConfigError naming the first bad setting. */
export function resolveConfig(input: RelayConfigInput): RelayConfig {
  const config: RelayConfig = {
    host: input.host ?? '0.0.0.0',
    port: input.port ?? 8080,
    redisUrl: input.redisUrl || undefined,
    manageJwks: input.manageJwks ?? '',
    manageIssuer: input.manageIssuer ?? '',
    audience: input.audience ?? DEFAULT_AUDIENCE,
    allowedOrigins: input.allowedOrigins ?? [],
    dataDir: input.dataDir ?? './data',
    nodeId: input.nodeId ?? defaultNodeId(),
    transport: input.transport ?? 'ws',
    logLevel: input.logLevel ?? 'info',
    trustProxy: input.trustProxy ?? false,
    requireEncryptedPayloads: input.requireEncryptedPayloads ?? false,
    webTransportPort: input.webTransportPort,
    webTransportCert: input.webTransportCert,
    webTransportKey: input.webTransportKey,
    webTransportSidecar: input.webTransportSidecar,
    limits: { ...DEFAULT_LIMITS, ...input.limits },
    timings: { ...DEFAULT_TIMINGS, ...input.timings },
    history: { ...DEFAULT_HISTORY, ...input.history },
  };
  validate(config);
  return config;
}

function validate(c: RelayConfig): void {
  if (typeof c.host !== 'string' || c.host.length === 0)
    throw new ConfigError(settingName(undefined, 'host'), 'must be an interface address, e.g. 0.0.0.0 or 127.0.0.1');
  if (!Number.isInteger(c.port) || c.port < 0 || c.port > 65535)
    throw new ConfigError(settingName(undefined, 'port'), `must be a TCP port 0–65535 (got ${String(c.port)})`);
  if (c.redisUrl !== undefined && !/^rediss?:\/\//.test(c.redisUrl))
    throw new ConfigError(
      'SCANRELAY_REDIS_URL (redisUrl)',
      'must start with redis:// or rediss://; leave it unset for the embedded single node',
    );
  if (!c.manageJwks)
    throw new ConfigError(
      'SCANRELAY_MANAGE_JWKS (manageJwks)',
      'is required: set it to the manage app JWKS file path or its https:// URL',
    );
  if (/^http:\/\//i.test(c.manageJwks))
    throw new ConfigError('SCANRELAY_MANAGE_JWKS (manageJwks)', 'must be a file path or an https:// URL, not http://');
  if (!c.manageIssuer)
    throw new ConfigError(
      'SCANRELAY_MANAGE_ISSUER (manageIssuer)',
      'is required: set it to the exact `iss` the manage app puts in its tokens',
    );
  if (typeof c.audience !== 'string' || c.audience.length === 0 || c.audience.length > 256)
    throw new ConfigError('SCANRELAY_AUDIENCE (audience)', 'must be a non-empty string (default scanrelay)');
  if (!Array.isArray(c.allowedOrigins))
    throw new ConfigError('SCANRELAY_ALLOWED_ORIGINS (allowedOrigins)', 'must be a list of origins');
  c.allowedOrigins = c.allowedOrigins.map((o) => normaliseOrigin(o));
  if (typeof c.dataDir !== 'string' || c.dataDir.length === 0)
    throw new ConfigError('SCANRELAY_DATA_DIR (dataDir)', 'must be a writable directory path');
  if (typeof c.nodeId !== 'string' || !NODE_ID.test(c.nodeId))
    throw new ConfigError(
      'SCANRELAY_NODE_ID (nodeId)',
      `must match ${NODE_ID.source} (letters, digits, . _ -; at most 64)`,
    );
  if (c.transport !== 'ws' && c.transport !== 'uws')
    throw new ConfigError('SCANRELAY_TRANSPORT (transport)', `must be ws or uws (got ${String(c.transport)})`);
  if (typeof c.requireEncryptedPayloads !== 'boolean')
    throw new ConfigError('SCANRELAY_REQUIRE_ENCRYPTED_PAYLOADS (requireEncryptedPayloads)', 'must be true or false');
  if (typeof c.trustProxy !== 'boolean')
    throw new ConfigError('SCANRELAY_TRUST_PROXY (trustProxy)', 'must be true or false');
  if (c.webTransportPort !== undefined) {
    if (!Number.isInteger(c.webTransportPort) || c.webTransportPort < 0 || c.webTransportPort > 65535)
      throw new ConfigError('SCANRELAY_WEBTRANSPORT_PORT (webTransportPort)', 'must be a port 0–65535, or unset');
    if (
      c.webTransportSidecar === undefined
        ? !c.webTransportCert || !c.webTransportKey
        : !c.webTransportCert !== !c.webTransportKey
    )
      throw new ConfigError(
        'SCANRELAY_WEBTRANSPORT_CERT / SCANRELAY_WEBTRANSPORT_KEY',
        'WebTransport needs TLS: set both to PEM files (certificate chain and private key)',
      );
  }
  if (!LOG_LEVELS.includes(c.logLevel))
    throw new ConfigError('SCANRELAY_LOG_LEVEL (logLevel)', `must be one of ${LOG_LEVELS.join(', ')}`);
  for (const section of ['limits', 'timings', 'history'] as const) {
    for (const [key, value] of Object.entries(c[section])) {
      if (!Number.isSafeInteger(value) || (value as number) < 1)
        throw new ConfigError(settingName(section, key), `must be a positive integer (got ${String(value)})`);
    }
  }
  const t = c.timings;
  if (t.livenessTimeoutMs <= t.pingIntervalMs)
    throw new ConfigError(
      settingName('timings', 'livenessTimeoutMs'),
      'must be larger than SCANRELAY_PING_INTERVAL_MS, or every socket would be cut between two pings',
    );
  if (t.presenceTtlMs <= t.pingIntervalMs)
    throw new ConfigError(
      settingName('timings', 'presenceTtlMs'),
      'must be larger than SCANRELAY_PING_INTERVAL_MS, or live gateways would flap offline',
    );
  if (c.limits.maxMessageBytes < 1024)
    throw new ConfigError(settingName('limits', 'maxMessageBytes'), 'must be at least 1024 (a hello carries a token)');
  if (c.limits.sendBufferBytes < c.limits.maxMessageBytes)
    throw new ConfigError(settingName('limits', 'sendBufferBytes'), 'must be at least SCANRELAY_MAX_MESSAGE_BYTES');
}

/** Canonical form of an Origin (`scheme://host[:port]`, lower case, no path). Throws for anything else. */
export function normaliseOrigin(origin: string): string {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new ConfigError(
      'SCANRELAY_ALLOWED_ORIGINS (allowedOrigins)',
      `"${origin}" is not an origin; write e.g. https://manage.example.org`,
    );
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.pathname !== '/' || url.search || url.hash)
    throw new ConfigError(
      'SCANRELAY_ALLOWED_ORIGINS (allowedOrigins)',
      `"${origin}" must be scheme://host[:port] with no path, e.g. https://manage.example.org`,
    );
  return url.origin;
}

/** Read the settings named by DESIGN.md from an environment (unset variables are left out). */
export function configFromEnv(env: NodeJS.ProcessEnv): RelayConfigInput {
  const out: RelayConfigInput = {};
  const str = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const int = (name: string): number | undefined => {
    const v = str(name);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new ConfigError(name, `must be a whole number (got "${v.slice(0, 40)}")`);
    return Number(v);
  };
  const set = <K extends keyof RelayConfigInput>(key: K, value: RelayConfigInput[K] | undefined): void => {
    if (value !== undefined) out[key] = value;
  };
  set('host', str('SCANRELAY_HOST'));
  set('port', int('SCANRELAY_PORT'));
  set('redisUrl', str('SCANRELAY_REDIS_URL'));
  set('manageJwks', str('SCANRELAY_MANAGE_JWKS'));
  set('manageIssuer', str('SCANRELAY_MANAGE_ISSUER'));
  set('audience', str('SCANRELAY_AUDIENCE'));
  const origins = str('SCANRELAY_ALLOWED_ORIGINS');
  if (origins !== undefined)
    out.allowedOrigins = origins
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean);
  set('dataDir', str('SCANRELAY_DATA_DIR'));
  set('nodeId', str('SCANRELAY_NODE_ID'));
  set('transport', str('SCANRELAY_TRANSPORT') as TransportKind | undefined);
  set('logLevel', str('SCANRELAY_LOG_LEVEL') as LogLevel | undefined);
  set('webTransportPort', int('SCANRELAY_WEBTRANSPORT_PORT'));
  set('webTransportCert', str('SCANRELAY_WEBTRANSPORT_CERT'));
  set('webTransportKey', str('SCANRELAY_WEBTRANSPORT_KEY'));
  set('webTransportSidecar', str('SCANRELAY_WEBTRANSPORT_SIDECAR'));
  const trust = str('SCANRELAY_TRUST_PROXY');
  if (trust !== undefined) {
    if (!/^(true|false|1|0|yes|no)$/i.test(trust))
      throw new ConfigError('SCANRELAY_TRUST_PROXY', `must be true or false (got "${trust.slice(0, 20)}")`);
    out.trustProxy = /^(true|1|yes)$/i.test(trust);
  }
  const requireEnc = str('SCANRELAY_REQUIRE_ENCRYPTED_PAYLOADS');
  if (requireEnc !== undefined) {
    if (!/^(true|false|1|0|yes|no)$/i.test(requireEnc))
      throw new ConfigError(
        'SCANRELAY_REQUIRE_ENCRYPTED_PAYLOADS',
        `must be true or false (got "${requireEnc.slice(0, 20)}")`,
      );
    out.requireEncryptedPayloads = /^(true|1|yes)$/i.test(requireEnc);
  }
  for (const [name, [section, key]] of Object.entries(LIMIT_ENV)) {
    const v = int(name);
    if (v === undefined) continue;
    const target = (out[section] ?? {}) as Record<string, number>;
    target[key] = v;
    out[section] = target;
  }
  return out;
}

/** Overlay `over` on `base`, section by section. */
export function mergeConfig(base: RelayConfigInput, over: RelayConfigInput): RelayConfigInput {
  return {
    ...base,
    ...over,
    limits: { ...base.limits, ...over.limits },
    timings: { ...base.timings, ...over.timings },
    history: { ...base.history, ...over.history },
  };
}

/**
 * What `scanrelay-relay` does: defaults ← `--config <file.json>` (if given) ← environment; then validate.
 */
export async function loadConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): Promise<RelayConfig> {
  let fromFile: RelayConfigInput = {};
  const i = argv.indexOf('--config');
  if (i >= 0) {
    const path = argv[i + 1];
    if (!path) throw new ConfigError('--config', 'needs a file path: --config /etc/scanrelay/relay.json');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new ConfigError('--config', `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      fromFile = parsed as RelayConfigInput;
    } catch {
      throw new ConfigError('--config', `${path} must hold one JSON object with the settings (see README)`);
    }
  }
  return resolveConfig(mergeConfig(fromFile, configFromEnv(env)));
}
