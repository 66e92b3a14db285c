/** `k6/timers` for the shim: Node timers that keep their VU's iteration open until they fire or are cleared. */
import { currentVu, hold, inVu, release } from './state.js';

type Handle = ReturnType<typeof globalThis.setTimeout>;
const owners = new Map<Handle, { ctx: ReturnType<typeof currentVu>; token: object }>();

export function setTimeout(fn: (...args: unknown[]) => void, ms = 0, ...args: unknown[]): Handle {
  const ctx = currentVu();
  const token = {};
  hold(ctx, token);
  const h = globalThis.setTimeout(() => {
    owners.delete(h);
    try {
      inVu(ctx, () => fn(...args));
    } finally {
      release(ctx, token);
    }
  }, ms);
  owners.set(h, { ctx, token });
  return h;
}

export function setInterval(fn: (...args: unknown[]) => void, ms = 0, ...args: unknown[]): Handle {
  const ctx = currentVu();
  const token = {};
  hold(ctx, token);
  const h = globalThis.setInterval(() => inVu(ctx, () => fn(...args)), ms);
  owners.set(h, { ctx, token });
  return h;
}

function clear(h: Handle | undefined): void {
  if (h === undefined) return;
  const owner = owners.get(h);
  globalThis.clearTimeout(h);
  globalThis.clearInterval(h);
  if (owner) {
    owners.delete(h);
    release(owner.ctx, owner.token);
  }
}

export const clearTimeout = clear;
export const clearInterval = clear;
