/**
 * The whole ScanRelay system on one machine, in one process: the demo manage app, an embedded relay, one
 * enrolled gateway agent per site (real DICOM SCPs on free loopback ports) and a modality simulator per site
 * that works through the worklist like a real unit. Used by `npm start` (demo/stack.ts) and the browser tests.
 *
 * ```
 *  demo manage app :8080 ──JWKS file──▶ relay :free (embedded, memory ports) ◀──wss── gateway agent (per site)
 *        │ page + tokens                        ▲                                      │ DICOM SCP :free
 *        ▼                                      │ browser socket                       ▼
 *     browser ──────────────────────────────────┘                          modality simulator (per site)
 * ```
 *
 * Enrolment is the real path: an admin token from the manage app → POST /v1/admin/gateways → activation code →
 * the agent's own `activate()` (key pair made locally, proof of possession).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Agent,
  activate,
  runSimulator,
  type SimulatorHandle,
  startAgent,
  validateConfig,
} from '@scanrelay/gateway-agent';
import { createRelay, MemoryHub, type Relay } from '@scanrelay/relay';
import type { Logger } from 'pino';
import type { SiteInfo } from './clinic.js';
import { DEFAULT_SITES, DemoServer, type DemoServerOptions } from './server.js';
import { type DemoWebTransportMode, prepareWebTransport, type WebTransportTls } from './webtransport.js';

/** The gateway's own AE title on its DICOM SCPs. */
const GATEWAY_AET = 'SCANRELAY';

export interface StackOptions {
  logger: Logger;
  /** Demo page port. Default 8080 (`SCANRELAY_DEMO_PORT`); 0 picks a free one. */
  demoPort?: number;
  /** Relay port. Default 0 (a free one; kept across `restartRelay`). */
  relayPort?: number;
  /** Working directory (keys, registry, gateway state). Default: a new temp dir, removed on stop. */
  dataDir?: string;
  sites?: readonly SiteInfo[];
  /** Session token lifetime, s (the page renews in-band). Default 600. */
  sessionTtlSeconds?: number;
  /** Simulator pacing, so a person can watch the scan: ms between worklist polls, before images, between images. */
  simulator?: { pollIntervalMs?: number; examDelayMs?: number; imageIntervalMs?: number; images?: number };
  /** Relay timings override (tests shorten the expiry warning). */
  relayTimings?: { expiryWarningMs?: number; shutdownGraceMs?: number };
  demo?: Partial<Pick<DemoServerOptions, 'users' | 'commandTtlSeconds'>>;
  /**
   * Offer WebTransport to the page (`SCANRELAY_DEMO_WEBTRANSPORT`): `auto` (default) only when the relay can serve
   * HTTP/3, `on` always (the page falls back to WebSocket when it cannot connect), `off` never.
   */
  webTransport?: DemoWebTransportMode;
  /** The relay's WebTransport port (`SCANRELAY_WEBTRANSPORT_PORT`). Default 0 (a free one; kept across restarts). */
  webTransportPort?: number;
}

export interface SiteStack {
  site: string;
  gateway: string;
  agent: Agent;
  simulator: SimulatorHandle;
  dicomPort: number;
}

export interface Stack {
  demo: DemoServer;
  readonly relay: Relay;
  relayUrl: string;
  /** `https://127.0.0.1:<port>` when the relay serves WebTransport and the page is offered it. */
  webTransportUrl: string | undefined;
  sites: SiteStack[];
  dataDir: string;
  /**
   * Stop the relay (1001 to every client) and start a new one on the same port and stores; `whileDown` runs in
   * between (tests let the modality work while the relay is away).
   */
  restartRelay(whileDown?: () => Promise<void>): Promise<void>;
  /** Stop everything, newest first; idempotent. */
  stop(): Promise<void>;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const log = opts.logger;
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'scanrelay-demo-')));
  const sites = opts.sites ?? DEFAULT_SITES;
  const cleanups: Array<() => Promise<void>> = [];
  if (ownDir) cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const fn of cleanups.reverse())
      await fn().catch((err: unknown) =>
        log.warn({ err: (err as Error).message }, 'stopping a part of the demo failed'),
      );
  };
  try {
    const demo = await DemoServer.start({
      dataDir: join(dataDir, 'manage'),
      port: opts.demoPort ?? 8080,
      logger: log.child({ part: 'manage' }),
      ...(opts.sessionTtlSeconds !== undefined ? { sessionTtlSeconds: opts.sessionTtlSeconds } : {}),
      ...opts.demo,
      sites,
    });
    cleanups.push(() => demo.close());

    // Memory ports shared through a hub outlive one relay instance, like Redis outlives a relay process.
    const hub = new MemoryHub();
    let port = opts.relayPort ?? 0;
    let wtPort = opts.webTransportPort ?? 0;
    let wt: WebTransportTls | undefined = await prepareWebTransport(
      opts.webTransport ?? 'auto',
      join(dataDir, 'relay-tls'),
      log.child({ part: 'relay' }),
    );
    const makeRelay = async (): Promise<Relay> => {
      const r = await createRelay(
        {
          host: '127.0.0.1',
          port,
          manageJwks: demo.signer.jwksPath,
          manageIssuer: demo.signer.issuer,
          allowedOrigins: demo.origins,
          dataDir: join(dataDir, 'relay'),
          nodeId: 'demo-relay',
          timings: { shutdownGraceMs: 1_000, ...opts.relayTimings },
          ...(wt ? { webTransportPort: wtPort, webTransportCert: wt.cert, webTransportKey: wt.key } : {}),
        },
        { memoryHub: hub, logger: log.child({ part: 'relay' }), defaultMetrics: false },
      );
      try {
        port = await r.listen();
        if (wt) wtPort = r.webTransportPort ?? wtPort;
      } catch (err) {
        await r.close();
        throw err;
      }
      return r;
    };
    let relay: Relay;
    try {
      relay = await makeRelay();
    } catch (err) {
      // WebTransport is an extra: if the relay cannot start with it, start without it.
      if (!wt) throw err;
      log.warn({ err: (err as Error).message }, 'the relay could not serve WebTransport; the demo stays on WebSocket');
      wt = undefined;
      relay = await makeRelay();
    }
    cleanups.push(() => relay.close());
    const relayBase = `http://127.0.0.1:${port}`;
    const relayUrl = `ws://127.0.0.1:${port}`;
    demo.setRelayUrl(relayUrl);
    const webTransportUrl = wt ? `https://127.0.0.1:${wtPort}` : undefined;
    if (wt && webTransportUrl) demo.setWebTransport({ url: webTransportUrl, certSha256: wt.sha256 });

    const siteStacks: SiteStack[] = [];
    for (const info of sites) {
      const s = await startSite(info, { demo, relayBase, dataDir, log, opts });
      cleanups.push(() => s.agent.stop());
      cleanups.push(() => s.simulator.stop());
      demo.setGateway(info.site, s.gateway);
      siteStacks.push(s);
    }
    return {
      demo,
      get relay() {
        return relay;
      },
      relayUrl,
      webTransportUrl,
      sites: siteStacks,
      dataDir,
      async restartRelay(whileDown) {
        await relay.close();
        await whileDown?.();
        // The old listener can take a moment to let go of the port.
        for (let attempt = 0; ; attempt++) {
          try {
            relay = await makeRelay();
            break;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 40) throw err;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function startSite(
  info: SiteInfo,
  ctx: { demo: DemoServer; relayBase: string; dataDir: string; log: Logger; opts: StackOptions },
): Promise<SiteStack> {
  const { demo, relayBase, log } = ctx;
  const admin = await demo.signer.admin('demo-stack');
  const res = await fetch(`${relayBase}/v1/admin/gateways`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ site: info.site, name: `${info.site} demo gateway` }),
  });
  if (res.status !== 201)
    throw new Error(`enrolling a gateway for ${info.site}: relay answered ${res.status} ${await res.text()}`);
  const created = (await res.json()) as { activationCode: string };
  const stateDir = join(ctx.dataDir, `gateway-${info.site}`);
  const identity = await activate({ relay: relayBase, code: created.activationCode, stateDir });
  const config = validateConfig({
    SCANRELAY_GATEWAY_STATE_DIR: stateDir,
    SCANRELAY_GATEWAY_MANAGE_JWKS: demo.signer.jwksPath,
    SCANRELAY_GATEWAY_MANAGE_ISSUER: demo.signer.issuer,
    SCANRELAY_GATEWAY_AET: GATEWAY_AET,
    SCANRELAY_GATEWAY_DICOM_HOST: '127.0.0.1',
    SCANRELAY_GATEWAY_DICOM_PORT: '0',
    SCANRELAY_GATEWAY_ALLOWED_CALLING_AETS: info.stationAet,
    // The simulator is a unit that only calls out (no C-ECHO SCP), so the gateway does not poll it.
    SCANRELAY_GATEWAY_ECHO_INTERVAL_S: '0',
    SCANRELAY_GATEWAY_LOG_LEVEL: 'warn',
  });
  const agent = await startAgent({
    config,
    logger: log.child({ part: 'gateway', site: info.site }),
    // Come back quickly after a relay restart in the demo (production keeps the agent's defaults).
    link: { backoff: { baseMs: 200, maxMs: 2_000 } },
  });
  const dicomPort = agent.dicomPort();
  const sim = ctx.opts.simulator ?? {};
  const simulator = runSimulator({
    gateway: { aet: GATEWAY_AET, host: '127.0.0.1', port: dicomPort },
    aet: info.stationAet,
    pollIntervalMs: sim.pollIntervalMs ?? 2_000,
    examDelayMs: sim.examDelayMs ?? 2_000,
    imageIntervalMs: sim.imageIntervalMs ?? 800,
    images: sim.images ?? 4,
    logger: log.child({ part: 'simulator', site: info.site }),
  });
  return { site: info.site, gateway: identity.gateway, agent, simulator, dicomPort };
}
