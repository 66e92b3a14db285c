/**
 * Runs a k6 script bundled for the shim (see ../build.ts) in this Node process: init context with `__ENV`
 * and `open()`, `setup()`, each scenario's VUs (executors `per-vu-iterations` and `constant-vus`, or the
 * top-level `vus`/`iterations`), `teardown()`, then a summary of every metric. An iteration ends when its
 * function has returned and all its sockets and timers are done, as with k6/websockets.
 *
 * It is a shim for CI, not a load tool: it proves the scripts speak the protocol and report their metrics.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { currentVu, inVu, type MetricState, state, type VuContext } from './state.js';

export interface ScenarioOptions {
  executor?: 'per-vu-iterations' | 'constant-vus' | 'shared-iterations';
  vus?: number;
  iterations?: number;
  duration?: string;
  maxDuration?: string;
  startTime?: string;
  exec?: string;
}

export interface RunOptions {
  env: Record<string, string>;
  /** Hard stop for the whole run; sockets still open then are terminated. */
  maxDurationMs: number;
}

export interface MetricSummary {
  type: MetricState['type'];
  count: number;
  values: Record<string, number>;
}

export interface Summary {
  metrics: Record<string, MetricSummary>;
  iterations: number;
  interrupted: number;
  errors: string[];
  aborted?: string;
}

export function parseDuration(text: string | undefined, fallbackMs: number): number {
  if (!text) return fallbackMs;
  let ms = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let m: RegExpExecArray | null = re.exec(text);
  if (!m) throw new Error(`cannot parse k6 duration "${text}"`);
  while (m) {
    const n = Number(m[1]);
    ms += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
    m = re.exec(text);
  }
  return ms;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summarise(m: MetricState): MetricSummary {
  const v = m.values;
  if (m.type === 'counter') return { type: m.type, count: v.length, values: { count: v.reduce((a, b) => a + b, 0) } };
  if (m.type === 'rate')
    return {
      type: m.type,
      count: v.length,
      values: { rate: v.length ? m.passes / v.length : 0, passes: m.passes, fails: v.length - m.passes },
    };
  if (m.type === 'gauge') return { type: m.type, count: v.length, values: { value: v[v.length - 1] ?? 0 } };
  const sorted = [...v].sort((a, b) => a - b);
  return {
    type: m.type,
    count: v.length,
    values: {
      avg: v.reduce((a, b) => a + b, 0) / Math.max(1, v.length),
      min: sorted[0] ?? Number.NaN,
      med: percentile(sorted, 50),
      max: sorted[sorted.length - 1] ?? Number.NaN,
      'p(90)': percentile(sorted, 90),
      'p(95)': percentile(sorted, 95),
      'p(99)': percentile(sorted, 99),
    },
  };
}

type Exported = Record<string, unknown> & {
  options?: { scenarios?: Record<string, ScenarioOptions>; vus?: number; iterations?: number };
};

export async function runK6Script(bundle: string, opts: RunOptions): Promise<Summary> {
  const s = state();
  s.metrics.clear();
  s.aborted = undefined;
  const g = globalThis as Record<string, unknown>;
  g.__ENV = { ...opts.env };
  g.open = (path: string, mode?: string) => (mode === 'b' ? readFileSync(path).buffer : readFileSync(path, 'utf8'));
  Object.defineProperty(globalThis, '__VU', { get: () => currentVu()?.idInTest ?? 0, configurable: true });
  Object.defineProperty(globalThis, '__ITER', { get: () => currentVu()?.iterationInScenario ?? 0, configurable: true });

  const mod = (await import(`${pathToFileURL(bundle).href}?run=${Date.now()}`)) as Exported;
  const scenarios: Record<string, ScenarioOptions> = mod.options?.scenarios ?? {
    default: { executor: 'per-vu-iterations', vus: mod.options?.vus ?? 1, iterations: mod.options?.iterations ?? 1 },
  };
  const errors: string[] = [];
  const setup = mod.setup as (() => unknown) | undefined;
  const data = setup ? await setup() : undefined;
  const deadline = Date.now() + opts.maxDurationMs;
  let vuIds = 0;
  let iterations = 0;
  let interrupted = 0;

  const iterate = (ctx: VuContext, fn: (d: unknown) => unknown, untilMs: number): Promise<void> =>
    new Promise<void>((resolve) => {
      let returned = false;
      const finish = (): void => {
        clearTimeout(timer);
        ctx.onIdle = undefined;
        resolve();
      };
      const timer = setTimeout(
        () => {
          interrupted++;
          finish();
        },
        Math.max(0, untilMs - Date.now()),
      );
      ctx.onIdle = () => {
        if (returned) finish();
      };
      inVu(ctx, () => {
        Promise.resolve()
          .then(() => fn(data))
          .then(
            () => undefined,
            (err: unknown) => {
              errors.push(`${ctx.scenario} VU ${ctx.idInTest}: ${(err as Error).message ?? String(err)}`);
            },
          )
          .finally(() => {
            returned = true;
            iterations++;
            if (ctx.pending.size === 0) finish();
          });
      });
    });

  await Promise.all(
    Object.entries(scenarios).map(async ([name, sc]) => {
      const fn = mod[sc.exec ?? 'default'] as ((d: unknown) => unknown) | undefined;
      if (typeof fn !== 'function') throw new Error(`scenario ${name}: no exported function "${sc.exec ?? 'default'}"`);
      await new Promise((r) => setTimeout(r, parseDuration(sc.startTime, 0)));
      const executor = sc.executor ?? 'per-vu-iterations';
      const scenarioEnd = Math.min(
        deadline,
        Date.now() + parseDuration(sc.maxDuration ?? sc.duration, opts.maxDurationMs),
      );
      let scenarioIterations = 0;
      await Promise.all(
        Array.from({ length: sc.vus ?? 1 }, async (_, i) => {
          const ctx: VuContext = {
            idInTest: ++vuIds,
            idInScenario: i,
            scenario: name,
            iterationInTest: 0,
            iterationInScenario: 0,
            pending: new Set(),
            onIdle: undefined,
          };
          const more = (n: number): boolean =>
            !s.aborted && Date.now() < scenarioEnd && (executor === 'constant-vus' ? true : n < (sc.iterations ?? 1));
          for (let n = 0; more(n); n++) {
            ctx.iterationInScenario = n;
            ctx.iterationInTest = scenarioIterations++;
            await iterate(ctx, fn, scenarioEnd);
          }
        }),
      );
    }),
  );
  for (const socket of s.sockets) socket.terminate();
  s.sockets.clear();
  const teardown = mod.teardown as ((d: unknown) => unknown) | undefined;
  if (teardown) await teardown(data);
  const metrics: Record<string, MetricSummary> = {};
  for (const [name, m] of s.metrics) metrics[name] = summarise(m);
  return { metrics, iterations, interrupted, errors, ...(s.aborted ? { aborted: s.aborted } : {}) };
}
