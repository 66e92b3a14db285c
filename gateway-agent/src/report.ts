/**
 * The gateway's in-band health report (`gateway.report`, protocol v1.1): agent version and transport, outbox
 * depth and age, and the echo monitor's view of each peer. Sent when the link comes online and every
 * `intervalMs` after, so the relay's fleet API (`GET /v1/admin/gateways`) shows what the site itself sees.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { GatewayReport } from '@scanrelay/protocol';
import type { DicomService } from './dicom/types.js';
import type { GatewayLink } from './link/link.js';
import type { Outbox } from './outbox/outbox.js';

/** Default interval between reports, ms (well inside the relay's 45 s presence lease). */
export const DEFAULT_REPORT_INTERVAL_MS = 15_000;

const PACKAGE = '@scanrelay/gateway-agent';

/** The agent's package version (`0.0.0` if its package file cannot be found). */
export function agentVersion(): string {
  const require = createRequire(import.meta.url);
  // src/report.ts and dist/report.js sit one level below the workspace's package.json; a bundled agent
  // (one file elsewhere) finds the package through node_modules instead.
  const candidates = [
    () => require.resolve('../package.json'),
    () => join(require.resolve(PACKAGE), '../../package.json'),
  ];
  for (const candidate of candidates) {
    try {
      const pkg = JSON.parse(readFileSync(candidate(), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === PACKAGE && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next place
    }
  }
  return '0.0.0';
}

export interface ReportSources {
  link: GatewayLink;
  outbox: Outbox;
  dicom: DicomService;
  startedAt: number;
  now: () => number;
}

export function buildReport(s: ReportSources, version: string): GatewayReport {
  const o = s.outbox.status();
  const [oldest] = s.outbox.pendingAfter(s.outbox.acked, 1);
  return {
    type: 'gateway.report',
    at: s.now(),
    agent: { version, transport: s.link.transport, startedAt: s.startedAt },
    outbox: { pending: o.events, ...(oldest ? { oldestAt: oldest.at } : {}) },
    // The relay accepts up to 64 peers (relay/protocol schema); more is a configuration no site has.
    peers: (s.dicom.peerStatus?.() ?? []).slice(0, 64),
  };
}

/** Send a report now and every `intervalMs` while online; returns a stop function. */
export function startReporting(s: ReportSources, intervalMs = DEFAULT_REPORT_INTERVAL_MS): () => void {
  const version = agentVersion();
  const send = (): void => {
    if (s.link.state === 'online') s.link.send(buildReport(s, version));
  };
  s.link.on('online', send);
  const timer = setInterval(send, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    s.link.off('online', send);
  };
}
