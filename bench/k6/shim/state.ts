/**
 * Shared state of the k6 shim. A script bundled for the shim carries its own copy of these modules, and the
 * runner imports another; both find the same state on `globalThis` under one registered symbol.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export type MetricType = 'counter' | 'trend' | 'rate' | 'gauge';

export interface MetricState {
  type: MetricType;
  values: number[];
  /** For rates: non-zero samples. */
  passes: number;
}

/** One virtual user: what must finish before its iteration counts as done. */
export interface VuContext {
  idInTest: number;
  idInScenario: number;
  scenario: string;
  /** This iteration's number across the whole scenario (k6 `scenario.iterationInTest`). */
  iterationInTest: number;
  /** This VU's own iteration count in the scenario (k6 `vu.iterationInScenario`). */
  iterationInScenario: number;
  /** Open sockets and pending timers of the current iteration. */
  pending: Set<object>;
  onIdle: (() => void) | undefined;
}

export interface ShimState {
  als: AsyncLocalStorage<VuContext>;
  metrics: Map<string, MetricState>;
  aborted: string | undefined;
  /** Every open socket, so the runner can end them when a scenario runs past its time. */
  sockets: Set<{ terminate(): void }>;
}

const KEY = Symbol.for('scanrelay.k6-shim.state');

export function state(): ShimState {
  const g = globalThis as unknown as Record<symbol, ShimState | undefined>;
  let s = g[KEY];
  if (!s) {
    s = { als: new AsyncLocalStorage<VuContext>(), metrics: new Map(), aborted: undefined, sockets: new Set() };
    g[KEY] = s;
  }
  return s;
}

export function currentVu(): VuContext | undefined {
  return state().als.getStore();
}

/** Track something the current iteration waits for (a socket, a timer). */
export function hold(ctx: VuContext | undefined, token: object): void {
  ctx?.pending.add(token);
}

export function release(ctx: VuContext | undefined, token: object): void {
  if (!ctx) return;
  ctx.pending.delete(token);
  if (ctx.pending.size === 0) ctx.onIdle?.();
}

/** Run `fn` in `ctx` (so callbacks of sockets and timers stay attributed to their VU). */
export function inVu<T>(ctx: VuContext | undefined, fn: () => T): T {
  return ctx ? state().als.run(ctx, fn) : fn();
}

export function metric(name: string, type: MetricType): MetricState {
  const s = state();
  let m = s.metrics.get(name);
  if (!m) {
    m = { type, values: [], passes: 0 };
    s.metrics.set(name, m);
  }
  return m;
}

export function addSample(name: string, type: MetricType, value: number): void {
  const m = metric(name, type);
  m.values.push(value);
  if (type === 'rate' && value) m.passes++;
}
