/**
 * CommandQueue — the relay's record of commands it accepted, and the commands it holds for gateways that
 * are offline.
 *
 * Every command accepted from a browser is claimed here first by its token's `jti` (claim-once: a token the
 * relay has already accepted is refused), together with where its statuses must go back to (node,
 * connection, ref). While the gateway is offline the command also waits in the gateway's held queue until it
 * is delivered (taken by exactly one node) or its token expires. On Redis: claim and take are Lua scripts.
 */
import type { CommandState } from '@scanrelay/protocol';

export interface CommandOrigin {
  /** Node and socket of the browser that sent it, and the browser's `ref`. */
  node: string;
  connection: string;
  ref: string;
  /** The session's user and id (`from` in the delivery to the gateway). */
  sub: string;
  session: string;
}

export interface CommandRecord {
  /** The command token's `jti`. */
  command: string;
  gateway: string;
  site: string;
  cmd: string;
  token: string;
  origin: CommandOrigin;
  /** Token expiry, ms epoch: after it the command can only be `expired`. */
  expiresAt: number;
  acceptedAt: number;
  state: CommandState;
}

export type ClaimResult =
  | { ok: true }
  | { ok: false; reason: 'duplicate' }
  /** Only with `claim(record, { maxDepth })`: the gateway's held queue is full; nothing was recorded. */
  | { ok: false; reason: 'full'; depth: number };
export type HoldResult = { ok: true; depth: number } | { ok: false; reason: 'full'; depth: number };

export interface CommandQueue {
  /**
   * Record a newly accepted command; refuses a `jti` seen before (kept until its expiry). With `hold`, also
   * hold it for its gateway in the same atomic step (Redis: one script): either both happen or neither, so a
   * backend failure between them can never leave a claimed jti that is not queued (the browser's retry with
   * the same token would be refused as a replay and the command lost). `full` → nothing was recorded.
   */
  claim(record: CommandRecord, hold?: { maxDepth: number }): Promise<ClaimResult>;
  /** Look a command up by `jti` (to route a gateway's status back to its origin). */
  get(command: string): Promise<CommandRecord | undefined>;
  /**
   * Record the latest state (terminal states end the record's usefulness but it is kept until expiry).
   * A terminal state is final: once one is recorded, nothing overwrites it and this returns false (so two
   * nodes racing — a late gateway outcome and the overdue reaper — report exactly one terminal state).
   * False too for an unknown or forgotten command.
   */
  setState(command: string, state: CommandState): Promise<boolean>;
  /** Hold a command for an offline gateway, at most `maxDepth` per gateway. */
  hold(command: string, gateway: string, expiresAt: number, maxDepth: number): Promise<HoldResult>;
  /**
   * Take every held, unexpired command for a gateway, oldest first, removing them (exactly one caller gets
   * each). Called when the gateway connects, or when a command may have been held while it was connecting.
   */
  take(gateway: string, now: number): Promise<CommandRecord[]>;
  /** Held commands whose tokens expired, removed as returned (each to exactly one caller). */
  reapExpired(now: number): Promise<CommandRecord[]>;
  /**
   * Commands still without a terminal state whose token expired at or before `cutoff` (the caller passes
   * now − grace): each is set `timed_out` atomically and returned to exactly one caller cluster-wide.
   */
  reapOverdue(cutoff: number): Promise<CommandRecord[]>;
  /** Drop everything held for a gateway (revocation); returns what was dropped. */
  dropGateway(gateway: string): Promise<CommandRecord[]>;
  /** How many commands are held for a gateway. */
  depth(gateway: string): Promise<number>;
  close(): Promise<void>;
}
