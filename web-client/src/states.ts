/**
 * The client's state machine, as data: which `ClientState` may follow which. `ScanRelayClient.setState` refuses
 * any other transition, so the diagram below is the whole lifecycle.
 *
 * ```
 * disconnected ─► connecting ─► authenticating ─► connected
 *                     ▲  │            │               │
 *                     │  └────────────┴───────────────┴─► reconnecting ─► (backoff) ─► connecting
 *   any state ─► closed ─► connecting (an explicit connect())
 * ```
 */
import { CODES } from '@scanrelay/protocol';
import type { ClientState, Timers } from './types.js';

export const TRANSITIONS: Readonly<Record<ClientState, readonly ClientState[]>> = {
  disconnected: ['connecting', 'closed'],
  connecting: ['authenticating', 'reconnecting', 'closed'],
  authenticating: ['connected', 'reconnecting', 'closed'],
  connected: ['reconnecting', 'closed'],
  reconnecting: ['connecting', 'closed'],
  closed: ['connecting'],
};

/** Timers used when the caller injects none (tests inject their own to move time). */
export const defaultTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof globalThis.setTimeout>),
};

/** Close codes after which a fresh token may fix things: get one and reconnect (once) instead of stopping. */
export const TOKEN_CLOSE_CODES = new Set([CODES.token_expired.closeCode, CODES.unauthenticated.closeCode]);
/** Local close code when the link is proven dead (no answer to a ping) or never welcomed us in time. */
export const DEAD_LINK_CLOSE = 4000;
export const WS_OPEN = 1;
