/**
 * The gateway link's states and events.
 *
 * ```
 *            start                 socket open            welcome
 *   idle ───────────▶ connecting ─────────────▶ authenticating ─────────▶ online
 *                      ▲   │ error/close            │ error/close/timeout     │ close / heartbeat lost
 *                      │   ▼                        ▼                         ▼
 *                      └── backoff ◀────────────────┴─────────────────────────┘
 *                           (full jitter 0.5 s → 30 s, next relay URL)
 *
 *   any state ── stop() or a close whose code says "stop" (revoked, bad credentials) ──▶ stopped (final)
 * ```
 */
import type { CommandDelivery, GatewayWelcome } from '@scanrelay/protocol';

export type LinkState = 'idle' | 'connecting' | 'authenticating' | 'online' | 'backoff' | 'stopped';

/** Why the link stopped for good. */
export interface StopInfo {
  /** `requested` (stop() was called), or the protocol error code the relay closed with, e.g. `revoked`. */
  reason: string;
  /** WebSocket close code, when a close caused it. */
  closeCode?: number;
  /** Human explanation for the operator. */
  message: string;
}

/** Everything that can happen to the link; `dispatch` is the only way state changes. */
export type LinkEvent =
  | { type: 'start' }
  | { type: 'stop'; info: StopInfo }
  | { type: 'socket_open' }
  | { type: 'welcome'; welcome: GatewayWelcome }
  | { type: 'socket_closed'; code: number; reason: string }
  | { type: 'socket_error'; message: string }
  | { type: 'hello_timeout' }
  | { type: 'heartbeat_lost'; silentMs: number }
  | { type: 'backoff_elapsed' };

/** What the link tells its owner. */
export interface LinkEvents {
  state: [next: LinkState, prev: LinkState];
  /** Authenticated: the owner should resend unacked events after `welcome.acked`. */
  online: [welcome: GatewayWelcome];
  /** Left the online state (the socket is gone). */
  offline: [];
  command: [delivery: CommandDelivery];
  ack: [seq: number];
  /** Final: the link will not reconnect. */
  stopped: [info: StopInfo];
}
