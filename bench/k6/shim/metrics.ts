/** `k6/metrics` for the shim: Counter, Trend, Rate and Gauge recording plain samples. */
import { addSample, type MetricType } from './state.js';

class Metric {
  constructor(
    readonly name: string,
    private readonly type: MetricType,
  ) {}

  add(value: number | boolean, _tags?: Record<string, string>): void {
    addSample(this.name, this.type, typeof value === 'boolean' ? (value ? 1 : 0) : value);
  }
}

export class Counter extends Metric {
  constructor(name: string) {
    super(name, 'counter');
  }
}
export class Trend extends Metric {
  constructor(name: string, _isTime?: boolean) {
    super(name, 'trend');
  }
}
export class Rate extends Metric {
  constructor(name: string) {
    super(name, 'rate');
  }
}
export class Gauge extends Metric {
  constructor(name: string) {
    super(name, 'gauge');
  }
}
