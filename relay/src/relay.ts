/**
 * `createRelay` — wires one relay node: configuration → logger/clock → ports (memory or Redis, in one place)
 * → authenticator → core node → admin API → HTTP routes → transport.
 *
 * ```ts
 * const relay = await createRelay({ manageJwks: jwks.path, manageIssuer: ISS, host: '127.0.0.1', port: 0,
 *                                   allowedOrigins: ['https://manage.example.org'], dataDir });
 * const port = await relay.listen();          // real port when 0 was asked
 * // ws://127.0.0.1:<port>/v1/browser, /v1/gateway; http://127.0.0.1:<port>/healthz …
 * await relay.close();                       // 1001 to every client, then release everything
 * ```
 *
 * Several nodes in one process (tests) share a `MemoryHub` (`deps.memoryHub`) or injected `deps.ports`,
 * and behave like nodes sharing one Redis.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import {
  type AdminHooks,
  type Authenticator,
  createAuthenticator,
  createHttpApi,
  type HttpApiOptions,
} from './auth/index.js';
import { type Clock, systemClock } from './clock.js';
import { type RelayConfig, type RelayConfigInput, resolveConfig } from './config.js';
import { RelayNode } from './core/node.js';
import type { NodeSettings } from './core/settings.js';
import type { CreateTransport, TransportHooks, TransportOptions, TransportServer } from './core/transport.js';
import { createHttpHandler } from './http.js';
import { createLogger } from './observability/logger.js';
import { RelayMetrics } from './observability/metrics.js';
import { createPorts, type MemoryHub } from './ports/create.js';
import type { Ports } from './ports/index.js';
import { createWsTransport } from './transport/ws.js';

/** Optional collaborators; everything has a production default. */
export interface RelayDeps {
  /** Time source (tests inject a manual clock). Default: the system clock. */
  clock?: Clock;
  /** Logger. Default: pino JSON to stdout at `config.logLevel`. */
  logger?: Logger;
  /** Ready-made ports. The relay does NOT close injected ports on `close()`. Default: `createPorts(config)`. */
  ports?: Ports;
  /** Memory mode only: share the Bus and stores with other relays in this process (several nodes, no Redis). */
  memoryHub?: MemoryHub;
  /** Token verification. Default: `createAuthenticator` from relay/src/auth with the config's JWKS/issuer. */
  authenticator?: Authenticator;
  /** Transport constructor. Default: by `config.transport` (`ws`, or `uws` loaded on demand). */
  transport?: CreateTransport;
  /** `fetch` used for an https JWKS (tests). */
  fetch?: typeof fetch;
  /** Activation-code policy for the enrolment API (tests lower the scrypt cost). */
  activation?: HttpApiOptions['activation'];
  /** Collect prom-client's default process metrics. Default true. */
  defaultMetrics?: boolean;
}

/** A running (or ready to listen) relay node. */
export interface Relay {
  /** This node's id (`config.nodeId`). */
  readonly nodeId: string;
  /** The validated configuration. */
  readonly config: RelayConfig;
  /** Start listening; resolves with the bound port (the real one when `port` is 0). */
  listen(): Promise<number>;
  /** The bound port after `listen()`, else undefined. */
  readonly port: number | undefined;
  /** The WebTransport listener's bound port after `listen()`, when `webTransportPort` is configured. */
  readonly webTransportPort: number | undefined;
  /**
   * Graceful stop: refuse new connections, close every client with 1001 `shutting_down` (they reconnect to
   * another node), wait up to `timings.shutdownGraceMs`, release the ports (unless injected). Idempotent.
   */
  close(): Promise<void>;
  /** What the admin API calls on revocation; public so a co-located manage component can call it too. */
  readonly hooks: AdminHooks;
  /** Readiness as `/readyz` reports it. */
  readonly ready: boolean;

  // Test and operations hooks: public, documented, and safe to call at any time.
  /** The ports this node uses (tests read history, presence and queues through them). */
  readonly ports: Ports;
  /** The node's metrics (its own prom-client registry). */
  readonly metrics: RelayMetrics;
  /** Open WebSocket connections on this node, all roles. */
  readonly connectionCount: number;
  /** Ping every socket now and terminate those silent for `livenessTimeoutMs` (normally every `pingIntervalMs`). */
  sweepLiveness(): void;
  /** Reap lapsed presence and expired held commands, re-deliver held commands (normally every few seconds). */
  runMaintenance(): Promise<void>;
  /** Re-check local gateways and sessions against the Registry (normally every `revocationSweepMs`). */
  sweepRevocations(): Promise<void>;
}

function packageVersion(): string {
  try {
    const require = createRequire(import.meta.url);
    return (require('../package.json') as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function redisUrls(value: string): string | string[] {
  return value.includes(',')
    ? value
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean)
    : value;
}

/**
 * The core's own settings, mapped from the validated configuration (the core never sees `RelayConfig`).
 * `limits` is copied whole: every relay limit is one the core enforces, and the type checker holds the two
 * lists together (a limit the core declares in `CoreLimits` but the configuration lacks does not compile).
 */
export function nodeSettings(config: RelayConfig): NodeSettings {
  const t = config.timings;
  return {
    nodeId: config.nodeId,
    allowedOrigins: [...config.allowedOrigins],
    trustProxy: config.trustProxy,
    limits: { ...config.limits },
    timings: {
      pingIntervalMs: t.pingIntervalMs,
      livenessTimeoutMs: t.livenessTimeoutMs,
      presenceTtlMs: t.presenceTtlMs,
      expiryWarningMs: t.expiryWarningMs,
      revocationSweepMs: t.revocationSweepMs,
      maintenanceIntervalMs: t.maintenanceIntervalMs,
      commandAckTimeoutMs: t.commandAckTimeoutMs,
      commandOutcomeGraceMs: t.commandOutcomeGraceMs,
      shutdownGraceMs: t.shutdownGraceMs,
    },
  };
}

/** Limits every transport enforces itself, from the configuration. */
function transportOptions(config: RelayConfig, port: number, logger: Logger): TransportOptions {
  return {
    host: config.host,
    port,
    maxPayloadBytes: config.limits.maxMessageBytes,
    maxBufferedBytes: config.limits.sendBufferBytes,
    headersTimeoutMs: config.timings.headersTimeoutMs,
    requestTimeoutMs: config.timings.requestTimeoutMs,
    // Node's default is 2000; a WebSocket upgrade needs about ten.
    maxHeadersCount: 64,
    logger,
  };
}

/** The optional WebTransport listener beside the WebSocket one (loaded only when configured). */
async function webTransportFor(
  config: RelayConfig,
  hooks: Pick<TransportHooks, 'admit' | 'open'>,
  logger: Logger,
): Promise<(TransportServer & { readonly certHash?: string }) | undefined> {
  if (config.webTransportPort === undefined) return undefined;
  if (config.webTransportSidecar !== undefined) {
    const { createWebTransportTransport } = await import('./transport/webtransport.js');
    return createWebTransportTransport(
      {
        ...transportOptions(config, config.webTransportPort, logger),
        cert: '',
        key: '',
        sidecar: {
          binary: config.webTransportSidecar,
          listen: `${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.webTransportPort}`,
          origins: config.allowedOrigins,
          ...(config.webTransportCert ? { certFile: config.webTransportCert, keyFile: config.webTransportKey } : {}),
        },
      },
      hooks,
    );
  }
  const [cert, key, { createWebTransportTransport }] = await Promise.all([
    readFile(config.webTransportCert!, 'utf8'),
    readFile(config.webTransportKey!, 'utf8'),
    import('./transport/webtransport.js'),
  ]);
  return createWebTransportTransport(
    { ...transportOptions(config, config.webTransportPort, logger), cert, key },
    hooks,
  );
}

async function transportFor(config: RelayConfig): Promise<CreateTransport> {
  if (config.transport === 'ws') return createWsTransport;
  const { createUwsTransport } = await import('./transport/uws.js');
  return (options, hooks) => createUwsTransport(options, hooks);
}

/** Build a relay node from configuration (validated here; a bad setting throws ConfigError naming it). */
export async function createRelay(input: RelayConfigInput | RelayConfig, deps: RelayDeps = {}): Promise<Relay> {
  const config = resolveConfig(input);
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? createLogger(config.logLevel, config.nodeId);
  const metrics = new RelayMetrics({ defaultMetrics: deps.defaultMetrics ?? true });
  const ownPorts = deps.ports === undefined;
  const ports =
    deps.ports ??
    (await createPorts({
      // A comma list names Redis Cluster seed nodes.
      ...(config.redisUrl !== undefined ? { redisUrl: redisUrls(config.redisUrl) } : {}),
      dataDir: config.dataDir,
      nodeId: config.nodeId,
      clock,
      logger,
      eventLog: config.history,
      ...(deps.memoryHub ? { memoryHub: deps.memoryHub } : {}),
    }));
  let ownAuth: { close(): void } | undefined;
  let node: RelayNode | undefined;
  let transport: TransportServer | undefined;
  let extraTransport: TransportServer | undefined;
  let wtAdvert: { http3: boolean; port: number; certHash?: string } | undefined;
  try {
    let auth = deps.authenticator;
    if (!auth) {
      const created = await createAuthenticator({
        manageJwks: config.manageJwks,
        manageIssuer: config.manageIssuer,
        audience: config.audience,
        requireEncryptedArgs: config.requireEncryptedPayloads,
        registry: ports.registry,
        clock,
        logger,
        ...(deps.fetch ? { fetch: deps.fetch } : {}),
      });
      ownAuth = created;
      auth = created;
    }
    const relayNode = new RelayNode({ config: nodeSettings(config), ports, auth, clock, logger, metrics });
    node = relayNode;
    await relayNode.start();
    const hooks: AdminHooks = {
      gatewayRevoked: (gateway) => relayNode.gatewayRevoked(gateway),
      sessionRevoked: (sid) => relayNode.sessionRevoked(sid),
    };
    const api = createHttpApi({
      auth,
      registry: ports.registry,
      presence: ports.presence,
      clock,
      hooks,
      logger,
      audience: config.audience,
      trustProxy: config.trustProxy,
      ...(deps.activation ? { activation: deps.activation } : {}),
    });
    const http = createHttpHandler({
      metrics,
      logger,
      ready: () => relayNode.ready,
      version: {
        name: 'scanrelay-relay',
        version: packageVersion(),
        node: config.nodeId,
        transport: config.transport,
        // Read at each request: set once the WebTransport listener is live (clients prefer it when present).
        get webTransport() {
          return wtAdvert;
        },
      },
      api,
    });
    const hooks0: Pick<TransportHooks, 'admit' | 'open'> = {
      admit: (req) => relayNode.admit(req),
      open: (conn, decision) => relayNode.open(conn, decision),
    };
    const create = deps.transport ?? (await transportFor(config));
    const server = await create(transportOptions(config, config.port, logger), { ...hooks0, http });
    transport = server;
    const extra = await webTransportFor(config, hooks0, logger);
    extraTransport = extra;

    let port: number | undefined;
    let wtPort: number | undefined;
    let closing: Promise<void> | undefined;
    const close = async (): Promise<void> => {
      await server.stopAccepting();
      await extra?.stopAccepting();
      await relayNode.drain();
      await server.close();
      await extra?.close();
      ownAuth?.close();
      if (ownPorts) await ports.close();
      logger.info({ node: config.nodeId }, 'relay stopped');
    };
    return {
      nodeId: config.nodeId,
      config,
      hooks,
      ports,
      metrics,
      get port() {
        return port;
      },
      get webTransportPort() {
        return wtPort;
      },
      get ready() {
        return port !== undefined && relayNode.ready;
      },
      get connectionCount() {
        return relayNode.connectionCount;
      },
      async listen() {
        if (port !== undefined) return port;
        const bound = await server.listen();
        port = bound.port;
        if (extra) {
          try {
            const wt = await extra.listen();
            wtPort = wt.port;
            const http3 = config.webTransportSidecar !== undefined;
            wtAdvert = { http3, port: wt.port, ...(extra.certHash ? { certHash: extra.certHash } : {}) };
            logger.info({ node: config.nodeId, port: wt.port, http3 }, 'webtransport listening');
          } catch (err) {
            if (config.webTransportSidecar === undefined) throw err;
            // The sidecar is optional at run time: without it the relay serves WebSocket only.
            logger.warn({ err: (err as Error).message }, 'HTTP/3 WebTransport off; serving WebSocket only');
            await extra.close().catch(() => undefined);
          }
        }
        logger.info(
          {
            node: config.nodeId,
            host: bound.host,
            port,
            transport: config.transport,
            redis: config.redisUrl !== undefined,
          },
          'relay listening',
        );
        return port;
      },
      close() {
        closing ??= close();
        return closing;
      },
      sweepLiveness: () => relayNode.sweepLiveness(),
      runMaintenance: () => relayNode.runMaintenance(),
      sweepRevocations: () => relayNode.sweepRevocations(),
    };
  } catch (err) {
    await extraTransport?.close().catch(() => undefined);
    await transport?.close().catch(() => undefined);
    await node?.drain().catch(() => undefined);
    ownAuth?.close();
    if (ownPorts) await ports.close().catch(() => undefined);
    throw err;
  }
}
