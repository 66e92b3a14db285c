/**
 * The gateway agent: wires the relay link, command verification, the replay guard, the DICOM side and the
 * durable outbox.
 *
 * ```
 *   relay ──command──▶ link ──▶ dispatcher ──verify, claim jti (fsync)──▶ DicomService (E)
 *     ▲                  │           │ command.status (queued while offline)      │ emit(event)
 *     │                  │           ▼                                            ▼
 *     └──event{seq}──────┴──── pump ◀──────────── outbox (fsync before send; removed on event.ack)
 * ```
 *
 * Programmatic use (the demo stack and deploy tests):
 * ```ts
 * import { loadConfig, startAgent } from '@scanrelay/gateway-agent';
 * const agent = await startAgent({ config: loadConfig({ env: process.env }) });
 * agent.status();            // link state, outbox health, pending commands
 * await agent.stop();        // or: const exit = await agent.done  (revoked → exit.fatal)
 * ```
 */
import { join } from 'node:path';
import type { CommandDelivery, GatewayWelcome } from '@scanrelay/protocol';
import { CommandDispatcher, type StatusReport } from './commands/dispatch.js';
import { PinnedKeys } from './commands/pinned-keys.js';
import { ReplayGuard } from './commands/replay-guard.js';
import { CommandVerifier } from './commands/verifier.js';
import type { GatewayConfig } from './config.js';
import { gatewayEndpoint } from './config.js';
import { createDicomService } from './dicom/index.js';
import type { DicomOptions, DicomService } from './dicom/types.js';
import { GatewayError } from './errors.js';
import { loadOrCreateEncryptionKey } from './keys/encryption-key.js';
import { type LoadedIdentity, loadIdentity, signAssertion } from './keys/identity.js';
import { GatewayLink, type LinkOptions } from './link/link.js';
import type { OpenSocket, TransportKind } from './link/socket.js';
import { loadWebTransport, webTransportOpener } from './link/transport-webtransport.js';
import type { LinkState, StopInfo } from './link/types.js';
import { createLogger, type Logger } from './log.js';
import { Outbox, type OutboxStatus } from './outbox/outbox.js';
import { startReporting } from './report.js';
import { ensurePrivateDir } from './util/durable.js';

/** Link timing overrides (tests use short ones; production keeps the defaults). */
export type LinkTuning = Partial<
  Pick<
    LinkOptions,
    | 'pingIntervalMs'
    | 'deadAfterMs'
    | 'helloTimeoutMs'
    | 'stableAfterMs'
    | 'backoff'
    | 'sendRate'
    | 'webTransportRetryMs'
  >
>;

export interface StartAgentOptions {
  /** Validated settings (see `loadConfig`). */
  config: GatewayConfig;
  /** Default: pino JSON on stderr at `config.logLevel`. */
  logger?: Logger;
  /**
   * Builds the DICOM side. Default: `createDicomService` from ./dicom (the real SCPs on `config.dicomPort`).
   */
  createDicom?: (opts: DicomOptions) => DicomService;
  link?: LinkTuning;
  /**
   * Events sent but not yet acknowledged, at most (default 16: below the relay's per-connection limit of
   * messages waiting to be handled, so none is dropped).
   */
  sendWindow?: number;
  /** Sent events unacknowledged for this long are sent again (the relay acks duplicates), ms (default 15 000). */
  resendAfterMs?: number;
  /** Interval of the in-band `gateway.report` (fleet view), ms (default 15 000). */
  reportIntervalMs?: number;
  now?: () => number;
}

/** How the agent ended. */
export interface AgentExit {
  /** `requested`, or why the relay refused the gateway for good (e.g. `revoked`). */
  reason: string;
  /** True when the agent stopped on its own because it cannot continue (the CLI exits non-zero). */
  fatal: boolean;
  message: string;
}

export interface AgentStatus {
  gateway: string;
  site: string;
  link: LinkState;
  /** Transport of the current (or last) connection: `websocket` or `webtransport`. */
  transport: TransportKind;
  relayUrl: string;
  outbox: OutboxStatus;
  /** Commands accepted and not yet finished. */
  commandsInFlight: number;
  /** Command statuses waiting for the link to come back. */
  statusesQueued: number;
}

export interface Agent {
  readonly gateway: string;
  readonly site: string;
  status(): AgentStatus;
  /** Port the DICOM SCPs listen on. */
  dicomPort(): number;
  /** Resolves when the agent has stopped (stop() called, or the relay refused it for good). */
  readonly done: Promise<AgentExit>;
  /** Stop: no new commands, let running ones finish (up to 10 s), flush and close everything. */
  stop(): Promise<void>;
}

/** Most command statuses held while offline; older non-terminal ones are dropped first past this. */
const MAX_QUEUED_STATUSES = 10_000;

/** Start the gateway agent. Throws GatewayError (`not_activated`, `keys_invalid`, …) when it cannot start. */
export async function startAgent(opts: StartAgentOptions): Promise<Agent> {
  const config = opts.config;
  const log = opts.logger ?? createLogger(config.logLevel);
  const now = opts.now ?? Date.now;
  await ensurePrivateDir(config.stateDir);
  const identity = await loadIdentity(config.stateDir);
  const urls = config.relayUrls.length > 0 ? config.relayUrls : [gatewayEndpoint(identity.relay)];
  const keys = await PinnedKeys.open(config.manageJwks, log);
  // A gateway enrolled before encryption keys existed gets one now; its thumbprint must then be confirmed.
  const encryptionKey = await loadOrCreateEncryptionKey(config.stateDir);
  log.info(
    { thumbprint: encryptionKey.thumbprint, created: encryptionKey.created },
    encryptionKey.created
      ? 'made a new encryption key: confirm its thumbprint in the manage app (scanrelay-gateway status)'
      : 'encryption key loaded',
  );
  const verifier = new CommandVerifier({
    keys,
    encryptionKey,
    issuer: config.manageIssuer,
    gatewayId: identity.gateway,
    site: identity.site,
    now,
  });
  const outbox = await Outbox.open({
    dir: join(config.stateDir, 'outbox'),
    logger: log,
    maxEvents: config.outboxMaxEvents,
    maxBytes: config.outboxMaxBytes,
  });
  let guard: ReplayGuard | undefined;
  let dicom: DicomService;
  let openWebTransport: OpenSocket | undefined;
  try {
    openWebTransport = await webTransportFor(config, log);
    guard = await ReplayGuard.open({ dir: join(config.stateDir, 'replay'), logger: log, now });
    dicom = await startDicom(config, opts, log, outbox, now);
  } catch (err) {
    await outbox.close().catch(() => undefined);
    await guard?.close().catch(() => undefined);
    throw err;
  }
  return wire({ config, opts, log, now, identity, urls, keys, verifier, outbox, guard, dicom, openWebTransport });
}

/** Load the WebTransport client when the settings ask for it; a load failure stops `webtransport` mode only. */
async function webTransportFor(config: GatewayConfig, log: Logger): Promise<OpenSocket | undefined> {
  if (config.transport === 'websocket') return undefined;
  try {
    const Impl = await loadWebTransport();
    return webTransportOpener(Impl, { certSha256: config.webTransportCertSha256, logger: log });
  } catch (err) {
    const why = `cannot load the WebTransport client (@fails-components/webtransport): ${(err as Error).message}`;
    if (config.transport === 'webtransport')
      throw new GatewayError(
        'config_invalid',
        `SCANRELAY_GATEWAY_TRANSPORT=webtransport: ${why}; reinstall the agent, or set SCANRELAY_GATEWAY_TRANSPORT=auto or websocket`,
      );
    log.error({ err: why }, 'SCANRELAY_GATEWAY_TRANSPORT=auto: WebTransport unavailable; using WebSocket only');
    return undefined;
  }
}

/** Everything `startAgent` opened, handed to `wire`. */
interface Parts {
  config: GatewayConfig;
  opts: StartAgentOptions;
  log: Logger;
  now: () => number;
  identity: LoadedIdentity;
  urls: string[];
  keys: PinnedKeys;
  verifier: CommandVerifier;
  outbox: Outbox;
  guard: ReplayGuard;
  dicom: DicomService;
  openWebTransport: OpenSocket | undefined;
}

async function startDicom(
  config: GatewayConfig,
  opts: StartAgentOptions,
  log: Logger,
  outbox: Outbox,
  now: () => number,
): Promise<DicomService> {
  const dicomDir = join(config.stateDir, 'dicom');
  await ensurePrivateDir(dicomDir);
  const createDicom = opts.createDicom ?? createDicomService;
  const dicom = createDicom({
    aet: config.aet,
    port: config.dicomPort,
    stateDir: dicomDir,
    ...(config.pacs ? { pacs: config.pacs } : {}),
    modalities: config.modalities,
    ...(config.retentionMs !== undefined ? { retentionMs: config.retentionMs } : {}),
    echoIntervalMs: config.echoIntervalMs,
    host: config.dicomHost,
    forwardToPacs: config.forwardToPacs,
    ...(config.allowedCallingAets ? { allowedCallingAets: config.allowedCallingAets } : {}),
    logger: log.child({ component: 'dicom' }),
    emit: async (event) => {
      await outbox.append(event);
    },
    now,
  });
  await dicom.start();
  return dicom;
}

/** Wire the started parts together and connect. */
function wire(parts: Parts): Agent {
  const { config, opts, log, now, identity, urls, keys, verifier, outbox, guard, dicom, openWebTransport } = parts;
  // `auto` without a loadable WebTransport client degrades to WebSocket (logged in webTransportFor).
  const transport = openWebTransport ? config.transport : 'websocket';
  const link = new GatewayLink({
    urls,
    transport,
    ...(openWebTransport ? { openWebTransport, webTransportUrls: config.webTransportUrls } : {}),
    gatewayId: identity.gateway,
    site: identity.site,
    assertion: () => signAssertion(identity, config.audience, now()),
    logger: log,
    codec: config.codec,
    now,
    ...opts.link,
  });

  // ── command statuses: sent at once when online, queued in order while offline ──
  const statusQueue: StatusReport[] = [];
  const flushStatuses = (): void => {
    while (statusQueue.length > 0) {
      if (link.send({ type: 'command.status', ...statusQueue[0]! })) statusQueue.shift();
      else if (link.state === 'online') {
        // Online but refused by the link: only a frame too large for the relay. Never let it block the rest.
        log.error({ command: statusQueue[0]!.command }, 'a command status was too large to send; dropped it');
        statusQueue.shift();
      } else return;
    }
  };
  const report = (status: StatusReport): void => {
    if (statusQueue.length >= MAX_QUEUED_STATUSES) {
      // Keep terminal states: drop the oldest intermediate one (verified, running, progress).
      const i = statusQueue.findIndex((s) => s.state === 'progress' || s.state === 'running' || s.state === 'verified');
      statusQueue.splice(i === -1 ? 0 : i, 1);
      log.warn('too many command statuses queued while offline; dropped the oldest intermediate one');
    }
    statusQueue.push(status);
    flushStatuses();
  };

  const dispatcher = new CommandDispatcher({
    verifier,
    guard,
    dicom,
    refuseNewWork: () => outbox.refusesNewWork(),
    report,
    logger: log,
    now,
  });

  // Commands that were running when the agent last died: their senders get a terminal state, not silence.
  for (const jti of guard.interrupted()) {
    log.warn({ command: jti }, 'a command was interrupted by the last stop of the agent; reporting it as failed');
    report({
      command: jti,
      state: 'failed',
      detail: {
        reason: 'interrupted',
        message: 'the gateway restarted while this command ran; check its effect (e.g. the worklist) before retrying',
      },
    });
    void guard.complete(jti);
  }

  // ── event pump: resend after welcome.acked, then stream; bounded in-flight window, paced by the link ──
  const window = opts.sendWindow ?? 16;
  const resendAfterMs = opts.resendAfterMs ?? 15_000;
  let sentUpTo = 0;
  let ackProgressAt = now();
  let pumpTimer: NodeJS.Timeout | undefined;
  let pumpDue = Number.POSITIVE_INFINITY;
  const pumpLater = (ms: number): void => {
    const due = now() + Math.max(10, ms);
    // Keep whichever wake-up comes first.
    if (pumpTimer && due >= pumpDue) return;
    if (pumpTimer) clearTimeout(pumpTimer);
    pumpDue = due;
    pumpTimer = setTimeout(() => {
      pumpTimer = undefined;
      pumpDue = Number.POSITIVE_INFINITY;
      pump();
    }, due - now());
  };
  const pump = (): void => {
    if (link.state !== 'online') return;
    if (sentUpTo > outbox.acked && now() - ackProgressAt > resendAfterMs) {
      // Sent but never acknowledged (a frame lost on the way): send again from the acked mark.
      log.warn({ from: outbox.acked + 1, to: sentUpTo }, 'events not acknowledged in time; sending them again');
      sentUpTo = outbox.acked;
      ackProgressAt = now();
    }
    while (sentUpTo - outbox.acked < window) {
      const [event] = outbox.pendingAfter(sentUpTo, 1);
      if (!event) return;
      if (!link.canSend()) {
        // Socket backed up or send budget spent: try again shortly rather than queue in memory.
        pumpLater(link.retryAfterMs() || 50);
        return;
      }
      if (!link.send({ type: 'event', ...event })) return;
      if (sentUpTo === outbox.acked) ackProgressAt = now();
      sentUpTo = event.seq;
    }
    // Window full: check again later in case acks stop coming.
    pumpLater(resendAfterMs);
  };

  link.on('online', (welcome: GatewayWelcome) => {
    const local = outbox.acked;
    if (welcome.acked < local)
      log.warn(
        { relayAcked: welcome.acked, localAcked: local },
        'the relay holds fewer events than it acknowledged before (relay data lost?); events up to the local mark cannot be resent',
      );
    outbox.ack(welcome.acked);
    sentUpTo = Math.max(welcome.acked, outbox.acked);
    ackProgressAt = now();
    pump();
    flushStatuses();
  });
  link.on('ack', (seq: number) => {
    if (seq > outbox.acked) ackProgressAt = now();
    outbox.ack(seq);
    pump();
  });
  outbox.on('appended', () => pump());

  // The fleet view at the relay: version, outbox, peers, clock — on connect and every 15 s.
  const stopReporting = startReporting({ link, outbox, dicom, startedAt: now(), now }, opts.reportIntervalMs);

  // A heartbeat line for operators: link state and outbox depth once a minute, even when nothing happens.
  const statusTimer = setInterval(() => {
    const o = outbox.status();
    log.info(
      {
        link: link.state,
        transport: link.transport,
        relay: link.url,
        outbox: { health: o.health, events: o.events, acked: o.acked, last: o.last },
      },
      'gateway status',
    );
  }, 60_000);
  statusTimer.unref();

  let stopping: Promise<void> | undefined;
  link.on('command', (delivery: CommandDelivery) => {
    if (stopping) {
      report({
        command: delivery.command,
        state: 'rejected',
        detail: { reason: 'busy', message: 'the gateway is restarting; send the command again in a moment' },
      });
      return;
    }
    void dispatcher.handle(delivery);
  });

  let resolveDone!: (exit: AgentExit) => void;
  const done = new Promise<AgentExit>((resolve) => {
    resolveDone = resolve;
  });

  const shutdown = (exit: AgentExit): Promise<void> => {
    stopping ??= (async () => {
      // Let commands in hand finish while the link is still up, so their outcomes reach the sender. Those
      // still running after 10 s are cut off and reported `interrupted` at the next start.
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([
        dispatcher.idle(),
        new Promise((r) => {
          grace = setTimeout(r, 10_000);
        }),
      ]);
      clearTimeout(grace);
      clearInterval(statusTimer);
      stopReporting();
      flushStatuses();
      await link.stop();
      if (pumpTimer) clearTimeout(pumpTimer);
      await dicom.stop().catch((err: unknown) => log.error({ err }, 'DICOM side did not stop cleanly'));
      await outbox.close().catch((err: unknown) => log.error({ err }, 'outbox did not close cleanly'));
      await guard.close().catch((err: unknown) => log.error({ err }, 'replay guard did not close cleanly'));
      log.info({ reason: exit.reason }, 'gateway agent stopped');
      resolveDone(exit);
    })();
    return stopping;
  };

  void link.stopped.then((info: StopInfo) => {
    if (info.reason !== 'requested') void shutdown({ reason: info.reason, fatal: true, message: info.message });
  });

  link.start();
  log.info(
    {
      gateway: identity.gateway,
      site: identity.site,
      transport,
      relays: transport === 'webtransport' ? config.webTransportUrls : urls,
      ...(transport === 'auto' ? { webTransportRelays: config.webTransportUrls } : {}),
      dicomPort: dicom.port(),
      keys: keys.count,
    },
    'gateway agent started',
  );

  return {
    gateway: identity.gateway,
    site: identity.site,
    status: () => ({
      gateway: identity.gateway,
      site: identity.site,
      link: link.state,
      transport: link.transport,
      relayUrl: link.url,
      outbox: outbox.status(),
      commandsInFlight: dispatcher.inFlight,
      statusesQueued: statusQueue.length,
    }),
    dicomPort: () => dicom.port(),
    done,
    stop: () => shutdown({ reason: 'requested', fatal: false, message: 'stopped on request' }),
  };
}
