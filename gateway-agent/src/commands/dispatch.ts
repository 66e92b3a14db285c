/**
 * Command dispatch: verify → check the outbox has room → claim the jti durably → run on the DICOM side →
 * report. Every command delivered ends in exactly one terminal state reported to the relay:
 *
 * ```
 *  delivered ─▶ verify ─✗─▶ rejected {reason}                      (bad token, wrong site/aud, bad args …)
 *                 │✓
 *                 ├─ outbox nearly full ─▶ rejected {outbox_full}
 *                 ├─ jti already seen ───▶ rejected {replayed, previous?}   (jti fsync'd BEFORE anything runs)
 *                 ▼
 *              verified ─▶ running ─▶ progress* ─▶ completed {result} | failed {reason}
 *              worklist.add: verified ─▶ completed {existing} | rejected {conflict}
 * ```
 *
 * Rejection details are `{ reason, message }`: `reason` is stable (see RejectReason), `message` is for people.
 * A `replayed` refusal also carries `previous`: what the first run of that jti came to (ReplayGuard.previous),
 * so a relay that lost the first terminal status can still tell the sender the real outcome. The outcome is
 * recorded durably before the terminal status is reported, so a crash between the two cannot lose it.
 * Logs carry the command id (jti), `cmd` and outcome — never the token or its args (patient data).
 */
import {
  type CommandDelivery,
  type CommandName,
  DEFAULT_MAX_MESSAGE_BYTES,
  type GatewayCommandStatus,
  type JsonObject,
} from '@scanrelay/protocol';
import type { DicomService } from '../dicom/types.js';
import { hasCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { CommandOutcome, ReplayGuard } from './replay-guard.js';
import { CommandRejected, type CommandVerifier, type RejectReason, type VerifiedCommand } from './verifier.js';

/** A status as the gateway reports it (the link adds `type`). */
export type StatusReport = Omit<GatewayCommandStatus, 'type'>;

export interface DispatchOptions {
  verifier: CommandVerifier;
  guard: ReplayGuard;
  dicom: DicomService;
  /** True while new work must be refused (outbox at its soft limit or failed). */
  refuseNewWork: () => boolean;
  /** Sends (or queues, while offline) a status to the relay. */
  report: (status: StatusReport) => void;
  logger: Logger;
  /** Commands run at once (default 4); more wait their turn. */
  maxConcurrent?: number;
  /** Commands held (verifying, waiting or running) before new ones are refused `busy` (default 256). */
  maxPending?: number;
  /** Largest detail the relay accepts in one frame (default 64 KiB); pacs.find results are trimmed to fit. */
  maxMessageBytes?: number;
  now?: () => number;
}

/** A terminal status of a command that ran (what the replay guard keeps as its outcome). */
type TerminalReport = StatusReport & { state: CommandOutcome['state'] };

/** Extra rejection reasons raised here (beyond the verifier's). */
export type DispatchRejectReason = RejectReason | 'storage_error';

export class CommandDispatcher {
  private pending = 0;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private readonly maxConcurrent: number;
  private readonly maxPending: number;
  private readonly maxDetailBytes: number;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(private readonly opts: DispatchOptions) {
    this.maxConcurrent = opts.maxConcurrent ?? 4;
    this.maxPending = opts.maxPending ?? 256;
    // Room for the envelope around the detail.
    this.maxDetailBytes = (opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES) - 1024;
    this.log = opts.logger;
    this.now = opts.now ?? Date.now;
  }

  /** Commands accepted and not yet finished. */
  get inFlight(): number {
    return this.pending;
  }

  /** Handle one delivered command. Never throws: every outcome is reported. */
  handle(delivery: CommandDelivery): Promise<void> {
    const id = delivery.command;
    if (this.pending >= this.maxPending) {
      this.reject(id, 'busy', 'the gateway has too many commands in hand; try again shortly');
      return Promise.resolve();
    }
    this.pending++;
    return this.process(delivery)
      .catch((err: unknown) => {
        // Defensive: process() reports its own failures; anything here is a bug, but still terminal.
        this.log.error({ err, command: id }, 'command handling failed unexpectedly');
        this.opts.report({ command: id, state: 'failed', detail: { reason: 'internal', message: 'gateway error' } });
      })
      .finally(() => {
        this.pending--;
        if (this.pending === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
  }

  /** Resolves once no command is in hand. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async process(delivery: CommandDelivery): Promise<void> {
    const id = delivery.command;
    let verified: VerifiedCommand;
    try {
      verified = await this.opts.verifier.verify(delivery.token);
    } catch (err) {
      const r = err instanceof CommandRejected ? err : new CommandRejected('malformed', 'could not verify');
      this.reject(id, r.reason, r.message);
      return;
    }
    if (verified.jti !== id) {
      this.reject(id, 'mismatched_id', "the delivered command id does not match the token's jti");
      return;
    }
    if (this.opts.refuseNewWork()) {
      this.reject(
        id,
        'outbox_full',
        'the gateway cannot reach the relay reliably and its event store is nearly full; new commands wait until it drains',
      );
      return;
    }
    // Remember the jti until the token could no longer be accepted anywhere: exp + clock tolerance.
    const until = verified.expiresAt + this.opts.verifier.clockToleranceS * 1000;
    try {
      if ((await this.opts.guard.claim(verified.jti, until)) === 'replayed') {
        const previous = this.opts.guard.previous(verified.jti);
        this.reject(
          id,
          'replayed',
          'this command token has already been used; a command runs at most once',
          previous ? { previous } : undefined,
        );
        return;
      }
    } catch (err) {
      if (hasCode(err, 'replay_guard_full')) this.reject(id, 'busy', 'too many commands recently; try again shortly');
      else this.reject(id, 'storage_error', 'the gateway could not record the command safely; it did not run');
      return;
    }
    this.log.info({ command: id, cmd: verified.cmd, sub: verified.sub }, 'command verified');
    this.opts.report({ command: id, state: 'verified' });
    await this.slot();
    let outcome: TerminalReport | undefined;
    try {
      outcome = await this.run(id, verified);
    } finally {
      this.running--;
      this.waiting.shift()?.();
      // Durable before it is reported: a redelivery after a lost report is then answered with it.
      await this.opts.guard.complete(
        verified.jti,
        outcome && (outcome.detail ? { state: outcome.state, detail: outcome.detail } : { state: outcome.state }),
      );
    }
    this.opts.report(outcome);
  }

  private async slot(): Promise<void> {
    if (this.running < this.maxConcurrent) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
  }

  /** Run a verified command; reports its intermediate states and returns its terminal one (never throws). */
  private async run(id: string, command: VerifiedCommand): Promise<TerminalReport> {
    const dicom = this.opts.dicom;
    const started = this.now();
    const cmd: CommandName = command.cmd;
    try {
      let result: JsonObject;
      switch (cmd) {
        case 'worklist.add': {
          // Local and quick: its outcome decides between completed and rejected (conflict), so no `running`.
          try {
            const r = await dicom.worklistAdd(command.args as VerifiedCommand<'worklist.add'>['args']);
            result = { existing: r.existing };
          } catch (err) {
            if ((err as { reason?: unknown })?.reason === 'conflict') {
              return this.rejection(
                id,
                'conflict',
                'this accession is already on the worklist with different details; cancel it first or correct the details',
              );
            }
            throw err;
          }
          break;
        }
        case 'worklist.cancel': {
          this.opts.report({ command: id, state: 'running' });
          const r = await dicom.worklistCancel(command.args as VerifiedCommand<'worklist.cancel'>['args']);
          result = { existed: r.existed };
          break;
        }
        case 'echo': {
          this.opts.report({ command: id, state: 'running' });
          const r = await dicom.echo(command.args as VerifiedCommand<'echo'>['args']);
          result = { online: r.online, ms: r.ms };
          break;
        }
        case 'pacs.find': {
          this.opts.report({ command: id, state: 'running' });
          const r = await dicom.pacsFind(command.args as VerifiedCommand<'pacs.find'>['args']);
          result = this.fitStudies(r.studies);
          break;
        }
        case 'pacs.retrieve': {
          this.opts.report({ command: id, state: 'running' });
          let lastReport = 0;
          const r = await dicom.pacsRetrieve(command.args as VerifiedCommand<'pacs.retrieve'>['args'], (p) => {
            const now = this.now();
            // At most ~4 progress reports a second, but always the last one.
            if (p.done < p.total && now - lastReport < 250) return;
            lastReport = now;
            this.opts.report({
              command: id,
              state: 'progress',
              progress: { done: p.done, total: p.total },
              detail: { failed: p.failed },
            });
          });
          result = { completed: r.completed, failed: r.failed, warning: r.warning };
          break;
        }
      }
      this.log.info({ command: id, cmd, ms: this.now() - started }, 'command completed');
      return { command: id, state: 'completed', detail: { result } };
    } catch (err) {
      const reason = failureReason(err);
      const message = err instanceof Error ? err.message.slice(0, 500) : 'the DICOM operation failed';
      this.log.warn({ command: id, cmd, reason, message }, 'command failed');
      return { command: id, state: 'failed', detail: { reason, message } };
    }
  }

  /** Trim a C-FIND result to fit one frame, saying so. */
  private fitStudies(studies: JsonObject[]): JsonObject {
    let kept = studies;
    while (kept.length > 0 && Buffer.byteLength(JSON.stringify(kept)) > this.maxDetailBytes)
      kept = kept.slice(0, Math.floor(kept.length / 2));
    return kept.length === studies.length
      ? { studies: kept }
      : { studies: kept, truncated: true, total: studies.length };
  }

  private reject(id: string, reason: DispatchRejectReason, message: string, extra?: JsonObject): void {
    this.opts.report(this.rejection(id, reason, message, extra));
  }

  private rejection(id: string, reason: DispatchRejectReason, message: string, extra?: JsonObject): TerminalReport {
    this.log.info({ command: id, reason }, 'command rejected');
    return { command: id, state: 'rejected', detail: { ...extra, reason, message } };
  }
}

function failureReason(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && /^[a-z][a-z0-9_]{0,63}$/.test(code)) return code;
  return 'dicom_error';
}
