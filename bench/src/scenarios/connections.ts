/**
 * Connect storm and idle connections, in one pass on a fresh arm: open `n` subscriber connections (for
 * ScanRelay: WebSocket + hello with a session token + subscribe, i.e. authenticated) with bounded
 * concurrency as fast as the server takes them, then hold them idle and read the server's RSS growth.
 */
import type { ArmInstance, Closeable } from '../harness/arms.js';
import { sleep } from '../harness/loadgen.js';
import { rssBytes } from '../harness/proc.js';
import { Latency, type LatencySummary } from '../harness/stats.js';
import { runLimited, sourceAddress } from './fanout.js';

export interface ConnectionsResult {
  requested: number;
  connected: number;
  failed: number;
  /** First failure message, if any (to tell a refused connection from a crash). */
  firstError?: string;
  /** Connections per second during the storm. */
  rate: number;
  /** Time for one connection to be ready (open + authenticated + subscribed). */
  connectLatency: LatencySummary;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** Server RSS growth per idle connection, bytes. */
  rssPerConnection: number;
  /** Whether every connection was still open after the idle hold. */
  stillOpen: number;
}

export async function runConnections(
  arm: ArmInstance,
  n: number,
  topics: number,
  opts: { concurrency?: number; holdMs?: number } = {},
): Promise<ConnectionsResult> {
  const rss = (): number => arm.pids().reduce((a, p) => a + rssBytes(p), 0);
  await sleep(300);
  if (typeof globalThis.gc === 'function') globalThis.gc();
  const rssBeforeBytes = rss();
  const latency = new Latency();
  const closers: Closeable[] = [];
  let failed = 0;
  let firstError: string | undefined;
  const tasks = Array.from({ length: n }, (_, i) => async () => {
    const t0 = performance.now();
    try {
      closers.push(await arm.subscriber(i % topics, () => {}, sourceAddress(i)));
      latency.recordMs(performance.now() - t0);
    } catch (err) {
      failed++;
      firstError ??= (err as Error).message;
    }
  });
  const t0 = performance.now();
  await runLimited(tasks, opts.concurrency ?? 100);
  const elapsed = (performance.now() - t0) / 1000;
  await sleep(opts.holdMs ?? 1_500);
  const rssAfterBytes = rss();
  const stillOpen = closers.filter((c) => !(c as { closed?: boolean }).closed).length;
  for (const c of closers) c.close();
  return {
    requested: n,
    connected: closers.length,
    failed,
    ...(firstError ? { firstError } : {}),
    rate: closers.length / elapsed,
    connectLatency: latency.summary(),
    rssBeforeBytes,
    rssAfterBytes,
    rssPerConnection: closers.length > 0 ? (rssAfterBytes - rssBeforeBytes) / closers.length : Number.NaN,
    stillOpen,
  };
}
