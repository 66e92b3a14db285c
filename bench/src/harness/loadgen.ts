/**
 * Health of the load generator during a step: its own CPU share and event-loop delay. A step during which
 * the generator itself saturates measures the generator, not the server, and is marked invalid.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Above this CPU share (of one core) the load generator is considered saturated. */
export const MAX_LOAD_CPU = 0.75;
/** Above this event-loop delay p99 (ms) the scheduled send times slip: invalid. */
export const MAX_LOOP_DELAY_P99_MS = 5;

export interface LoadHealth {
  cpu: number;
  loopDelayP99Ms: number;
  valid: boolean;
  reason?: string;
}

export class LoadMonitor {
  private readonly h = monitorEventLoopDelay({ resolution: 1 });
  private cpu0 = process.cpuUsage();
  private t0 = performance.now();

  start(): void {
    this.h.reset();
    this.h.enable();
    this.cpu0 = process.cpuUsage();
    this.t0 = performance.now();
  }

  stop(): LoadHealth {
    this.h.disable();
    const used = process.cpuUsage(this.cpu0);
    const wall = (performance.now() - this.t0) * 1000;
    const cpu = wall > 0 ? (used.user + used.system) / wall : 0;
    // monitorEventLoopDelay reports the timer overshoot plus its 1 ms resolution.
    const loopDelayP99Ms = Math.max(0, this.h.percentile(99) / 1e6 - 1);
    const reasons: string[] = [];
    if (cpu > MAX_LOAD_CPU) reasons.push(`load generator CPU ${(cpu * 100).toFixed(0)} % > ${MAX_LOAD_CPU * 100} %`);
    if (loopDelayP99Ms > MAX_LOOP_DELAY_P99_MS)
      reasons.push(`load generator event-loop delay p99 ${loopDelayP99Ms.toFixed(1)} ms > ${MAX_LOOP_DELAY_P99_MS} ms`);
    return {
      cpu,
      loopDelayP99Ms,
      valid: reasons.length === 0,
      ...(reasons.length ? { reason: reasons.join('; ') } : {}),
    };
  }
}

/** Sleep without holding the process open past the run. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
