/** `k6` for the shim: check (recorded in the `checks` rate), group, fail, sleep. */
import { addSample } from './state.js';

export function check<T>(value: T, sets: Record<string, (v: T) => boolean>, _tags?: Record<string, string>): boolean {
  let all = true;
  for (const [name, fn] of Object.entries(sets)) {
    let ok = false;
    try {
      ok = Boolean(fn(value));
    } catch {
      ok = false;
    }
    addSample('checks', 'rate', ok ? 1 : 0);
    addSample(`check: ${name}`, 'rate', ok ? 1 : 0);
    all &&= ok;
  }
  return all;
}

export function group<T>(_name: string, fn: () => T): T {
  return fn();
}

export function fail(message?: string): never {
  throw new Error(message ?? 'fail() called');
}

/** k6's sleep blocks the VU; scripts driven by k6/websockets events should use timers instead. */
export function sleep(seconds: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, seconds * 1000);
}

export default { check, group, fail, sleep };
