/**
 * Fan-out: `topics` publishers × `subscribers` per topic, stepped offered load (deliveries/s). Latency is
 * measured from each message's *scheduled* send time (t0 + i·period), so a stalled sender shows up as latency
 * instead of silently sending less (coordinated omission). Loss is counted per subscriber from `seq`.
 */
import type { ArmInstance, Closeable, Publisher } from '../harness/arms.js';
import { type LoadHealth, LoadMonitor, sleep } from '../harness/loadgen.js';
import { cpuSeconds } from '../harness/proc.js';
import { Latency, type LatencySummary } from '../harness/stats.js';

export interface FanoutConfig {
  topics: number;
  subscribers: number;
  /** Offered deliveries per second for each recorded step. */
  steps: number[];
  stepMs: number;
  warmupMs: number;
  /** Latency is recorded on one subscriber in `sampleEvery`. */
  sampleEvery: number;
}

export interface FanoutStep {
  offered: number;
  /** Deliveries per second actually received during the step. */
  delivered: number;
  latency: LatencySummary;
  /** Server CPU, in cores (CPU-seconds per second), all processes of the arm. */
  serverCpu: number;
  /** Server CPU microseconds per delivery. */
  usPerDelivery: number;
  sent: number;
  expected: number;
  received: number;
  lost: number;
  duplicates: number;
  outOfOrder: number;
  load: LoadHealth;
  valid: boolean;
  invalidReason?: string;
}

interface SubState {
  last: number;
  received: number;
  /** Events whose seq was not above the previous one (duplicate or reordered). */
  disorder: number;
  sampled: boolean;
}

/** Spread connections over 127.0.0.x source addresses so one address never runs out of ports. */
export function sourceAddress(i: number): string {
  return `127.0.0.${1 + (Math.floor(i / 20_000) % 250)}`;
}

export async function connectFanout(
  arm: ArmInstance,
  cfg: FanoutConfig,
  latency: Latency,
): Promise<{ subs: SubState[]; publishers: Publisher[]; closers: Closeable[]; state: { recording: boolean } }> {
  const subs: SubState[] = [];
  const closers: Closeable[] = [];
  const state = { recording: false };
  const tasks: Array<() => Promise<void>> = [];
  let n = 0;
  for (let t = 0; t < cfg.topics; t++) {
    for (let s = 0; s < cfg.subscribers; s++) {
      const st: SubState = { last: 0, received: 0, disorder: 0, sampled: n % cfg.sampleEvery === 0 };
      subs.push(st);
      const i = n++;
      tasks.push(async () => {
        const c = await arm.subscriber(
          t,
          (seq, ts) => {
            if (seq <= st.last) st.disorder++;
            else st.last = seq;
            st.received++;
            if (st.sampled && state.recording) latency.recordMs(performance.now() - ts);
          },
          sourceAddress(i),
        );
        closers.push(c);
      });
    }
  }
  await runLimited(tasks, 50);
  const publishers: Publisher[] = [];
  for (let t = 0; t < cfg.topics; t++) publishers.push(await arm.publisher(t));
  closers.push(...publishers);
  return { subs, publishers, closers, state };
}

/** Run async tasks with bounded concurrency. */
export async function runLimited(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const task = tasks[next++]!;
      await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}

/**
 * Publish at `offered` deliveries/s for `durationMs`; every topic sends on its own schedule, offset so the
 * topics interleave. Returns how many messages were published.
 */
async function publishFor(
  publishers: Publisher[],
  seqs: number[],
  perTopicRate: number,
  durationMs: number,
): Promise<number> {
  const period = 1000 / perTopicRate;
  const t0 = performance.now() + 5;
  const count = Math.floor(durationMs / period);
  const nextIdx = publishers.map(() => 0);
  let sent = 0;
  for (;;) {
    const now = performance.now();
    let pending = false;
    let nextDue = Number.POSITIVE_INFINITY;
    for (let t = 0; t < publishers.length; t++) {
      const offset = (period * t) / publishers.length;
      while (nextIdx[t]! < count) {
        const scheduled = t0 + offset + nextIdx[t]! * period;
        if (scheduled > now) break;
        seqs[t] = seqs[t]! + 1;
        publishers[t]!.publish(seqs[t]!, scheduled);
        nextIdx[t]!++;
        sent++;
      }
      if (nextIdx[t]! < count) {
        pending = true;
        nextDue = Math.min(nextDue, t0 + offset + nextIdx[t]! * period);
      }
    }
    if (!pending) return sent;
    await waitUntil(nextDue);
  }
}

export async function runFanout(
  arm: ArmInstance,
  cfg: FanoutConfig,
  onStep: (label: string) => void = () => {},
): Promise<FanoutStep[]> {
  const latency = new Latency();
  const { subs, publishers, closers, state } = await connectFanout(arm, cfg, latency);
  const seqs = publishers.map(() => 0);
  const results: FanoutStep[] = [];
  const totalReceived = (): number => subs.reduce((a, s) => a + s.received, 0);
  try {
    const perDelivery = cfg.topics * cfg.subscribers;
    // Warm-up (JIT, buffers): same path, not recorded.
    if (cfg.warmupMs > 0) {
      const before = totalReceived();
      const sent = await publishFor(publishers, seqs, cfg.steps[0]! / perDelivery, cfg.warmupMs);
      await drain(() => totalReceived() - before, sent * cfg.subscribers, 3_000);
    }
    for (const offered of cfg.steps) {
      onStep(`${offered / 1000}k/s`);
      latency.reset();
      const before = totalReceived();
      const disorderBefore = subs.reduce((a, s) => a + s.disorder, 0);
      const pids = arm.pids();
      const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
      const monitor = new LoadMonitor();
      monitor.start();
      state.recording = true;
      const w0 = performance.now();
      const sent = await publishFor(publishers, seqs, offered / perDelivery, cfg.stepMs);
      const expected = sent * cfg.subscribers;
      // Deliveries still missing after this count as lost: late by more than 10 s is as good as lost.
      await drain(() => totalReceived() - before, expected, 10_000);
      const wall = (performance.now() - w0) / 1000;
      const cpu1 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
      state.recording = false;
      const load = monitor.stop();
      const received = totalReceived() - before;
      const outOfOrder = subs.reduce((a, s) => a + s.disorder, 0) - disorderBefore;
      const serverCpu = (cpu1 - cpu0) / wall;
      const lost = Math.max(0, expected - received);
      const duplicates = Math.max(0, received - expected);
      const reasons: string[] = [];
      if (!load.valid && load.reason) reasons.push(load.reason);
      if (lost > 0) reasons.push(`${lost} deliveries lost`);
      if (outOfOrder > 0) reasons.push(`${outOfOrder} deliveries duplicated or out of order`);
      results.push({
        offered,
        delivered: received / wall,
        latency: latency.summary(),
        serverCpu,
        usPerDelivery: received > 0 ? ((cpu1 - cpu0) * 1e6) / received : Number.NaN,
        sent,
        expected,
        received,
        lost,
        duplicates,
        outOfOrder,
        load,
        valid: reasons.length === 0,
        ...(reasons.length ? { invalidReason: reasons.join('; ') } : {}),
      });
    }
  } finally {
    for (const c of closers) c.close();
  }
  return results;
}

/**
 * Yield until about `due` (performance.now() ms): a timer when it is more than ~1.5 ms away (so the load
 * generator idles instead of spinning), else one turn of the event loop.
 */
export function waitUntil(due: number): Promise<void> {
  const wait = due - performance.now();
  if (wait > 1.5) return new Promise((r) => setTimeout(r, Math.floor(wait - 0.5)));
  return new Promise((r) => setImmediate(r));
}

async function drain(got: () => number, expected: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (got() < expected && performance.now() < deadline) await sleep(5);
}
