/**
 * The settings the relay core reads, declared by the core itself. The core never sees the relay's
 * configuration type (relay/src/config.ts: defaults, env names, validation); the wiring
 * (relay/src/relay.ts `nodeSettings`) maps a validated `RelayConfig` onto these. Units are in the names;
 * defaults and operator-facing docs live with the configuration.
 */

/** Limits the core enforces per connection and per node. */
export interface CoreLimits {
  /** Largest inbound message, bytes (also told to clients in `welcome`). */
  maxMessageBytes: number;
  /** Time allowed between the upgrade and `hello`, ms. */
  helloTimeoutMs: number;
  /** Token bucket of a browser connection: sustained rate and burst. */
  messagesPerSecond: number;
  messageBurst: number;
  /** Token bucket of a gateway connection: sustained rate and burst. */
  gatewayMessagesPerSecond: number;
  gatewayMessageBurst: number;
  /** Messages refused for rate after which the connection is closed. */
  rateLimitStrikes: number;
  /** Sites one browser connection may subscribe to. */
  maxSubscriptions: number;
  /** Open sockets per client IP. */
  maxConnectionsPerIp: number;
  /** Open browser sockets per user on this node. */
  maxConnectionsPerUser: number;
  /** Send buffer per connection, bytes, before it is cut as a slow consumer. */
  sendBufferBytes: number;
  /** Invalid messages tolerated per connection. */
  maxBadMessages: number;
  /** Messages received but not yet handled, per browser / per gateway connection. */
  maxPendingMessages: number;
  gatewayMaxPendingMessages: number;
  /** Commands held per gateway. */
  maxHeldCommandsPerGateway: number;
  /** Events sent to a resuming browser before it is told to resync. */
  maxCatchUpEvents: number;
}

/** Liveness and periodic work the core schedules, all in ms. */
export interface CoreTimings {
  pingIntervalMs: number;
  livenessTimeoutMs: number;
  presenceTtlMs: number;
  expiryWarningMs: number;
  revocationSweepMs: number;
  maintenanceIntervalMs: number;
  commandAckTimeoutMs: number;
  /** No final outcome by token exp + this: the command ends `timed_out`. */
  commandOutcomeGraceMs: number;
  shutdownGraceMs: number;
}

/** Everything a {@link import('./node.js').RelayNode} needs to know about its node. */
export interface NodeSettings {
  /** This node's id (Bus channel `node:<id>`, presence, `welcome.node`). */
  nodeId: string;
  /** Exact Origins allowed on `/v1/browser`. */
  allowedOrigins: readonly string[];
  /** Take the client address from the last `X-Forwarded-For` hop (behind our own proxy only). */
  trustProxy: boolean;
  limits: CoreLimits;
  timings: CoreTimings;
}
