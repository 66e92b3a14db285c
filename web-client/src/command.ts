/**
 * A command in flight: its `command.status` stream as an async iterator, and `done`, the final outcome.
 *
 * Statuses reach a handle two ways — the replies to its `ref` on the sending connection, and the site
 * channel's `command.status` events (matched by the token's `jti`), which also carry the states that happened
 * while the socket was down (delivered on resume). The same state from both paths is passed on once.
 */
import { type CommandState, TERMINAL_STATES } from '@scanrelay/protocol';
import type { ScanRelayError } from './errors.js';
import type { CommandResult, CommandStatus } from './types.js';

export class CommandHandle implements AsyncIterable<CommandStatus> {
  /** The request ref sent with the command (generated per command). */
  readonly ref: string;
  /** The command's id: the token's `jti` (read from the token without verifying it), or the relay's answer. */
  command: string | undefined;
  /** Every distinct status received, in order. */
  readonly statuses: CommandStatus[] = [];
  /** Resolves once with the final outcome; never rejects. */
  readonly done: Promise<CommandResult>;
  /** @internal the signed token, kept to resend after a reconnect when no status had arrived. */
  readonly token: string;
  /** @internal whether the frame has gone out on a socket that is still the current one. */
  sent = false;

  #resolve!: (result: CommandResult) => void;
  #result: CommandResult | undefined;
  #seen = new Set<CommandState>();
  #lastProgress = -1;
  #waiters: Array<() => void> = [];

  constructor(ref: string, token: string, command: string | undefined) {
    this.ref = ref;
    this.token = token;
    this.command = command;
    this.done = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  /** The latest state, `pending` before the first status. */
  get state(): CommandState | 'pending' | 'error' {
    if (this.#result?.state === 'error') return 'error';
    return this.statuses.at(-1)?.state ?? 'pending';
  }

  /** True once `done` has resolved. */
  get finished(): boolean {
    return this.#result !== undefined;
  }

  /** @internal a status from either path; duplicates and anything after the end are ignored. */
  push(status: CommandStatus): void {
    if (this.#result) return;
    if (status.state === 'progress') {
      const done = status.progress?.done ?? 0;
      if (done <= this.#lastProgress) return;
      this.#lastProgress = done;
    } else {
      if (this.#seen.has(status.state)) return;
      this.#seen.add(status.state);
    }
    this.command ??= status.command;
    this.statuses.push(status);
    if (TERMINAL_STATES.has(status.state)) {
      const result: CommandResult = { state: status.state as CommandResult['state'], command: status.command };
      if (status.detail !== undefined) result.detail = status.detail;
      this.#finish(result);
    } else this.#wake();
  }

  /** @internal the relay refused the command, or the client closed. */
  fail(error: ScanRelayError): void {
    if (this.#result) return;
    this.#finish({ state: 'error', command: this.command, error });
  }

  #finish(result: CommandResult): void {
    this.#result = result;
    this.#resolve(result);
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Yields every status from the first (even if iteration starts late) until the terminal one. */
  async *[Symbol.asyncIterator](): AsyncIterator<CommandStatus> {
    let i = 0;
    for (;;) {
      while (i < this.statuses.length) yield this.statuses[i++]!;
      if (this.#result) return;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
}

/** The `jti` of a compact JWS, read without verification (only to correlate statuses), or undefined. */
export function readJti(token: string): string | undefined {
  const part = token.split('.')[1];
  if (!part || part.length > 8192) return undefined;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(
        atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)),
        (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
      ).join(''),
    );
    const claims = JSON.parse(json) as { jti?: unknown };
    return typeof claims.jti === 'string' ? claims.jti : undefined;
  } catch {
    return undefined;
  }
}

/** The command status a site channel's `command.status` event carries (its data was schema-checked by the relay). */
export function statusFromEvent(data: Record<string, unknown>): CommandStatus | undefined {
  const id = data.command;
  if (typeof id !== 'string') return undefined;
  const detail = data.detail;
  const progress = data.progress as CommandStatus['progress'];
  return {
    command: id,
    state: data.state as CommandState,
    ...(detail && typeof detail === 'object' && !Array.isArray(detail) ? { detail: detail as never } : {}),
    ...(progress ? { progress } : {}),
  };
}
