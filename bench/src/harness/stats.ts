/** Latency histograms (hdr-histogram-js), medians and ratios across rounds. */
import * as hdr from 'hdr-histogram-js';

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

/** A latency recorder in microseconds (values are recorded in µs, reported in ms). */
export class Latency {
  private readonly h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });

  /** Record a latency given in milliseconds. */
  recordMs(ms: number): void {
    this.h.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  reset(): void {
    this.h.reset();
  }

  summary(): LatencySummary {
    const at = (p: number): number => this.h.getValueAtPercentile(p) / 1000;
    return {
      count: this.h.totalCount,
      p50: at(50),
      p99: at(99),
      p999: at(99.9),
      max: this.h.maxValue / 1000,
    };
  }
}

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export interface Ratio {
  median: number;
  min: number;
  max: number;
}

/** Per-round ratios a/b, summarised. A ratio whose min–max spans 1 is a tie. */
export function ratio(a: readonly number[], b: readonly number[]): Ratio {
  const r: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (b[i]! > 0 && Number.isFinite(a[i]!)) r.push(a[i]! / b[i]!);
  if (r.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  return { median: median(r), min: Math.min(...r), max: Math.max(...r) };
}
