/**
 * The replay guard: a command runs at most once. Every command token's `jti` is recorded on disk
 * (fdatasync) BEFORE the command runs and kept until that token can no longer be accepted (its `exp` plus
 * the clock tolerance), so the same token offered again — by the relay, by anyone, before or after a
 * restart or a kill -9 — is refused as `replayed`.
 *
 * It also keeps each command's outcome — its terminal state and `detail`, exactly as first reported, or
 * `failed {reason: 'interrupted'}` when a crash cut it off — for as long as it keeps the jti. A refusal of a
 * redelivered jti carries it (`previous`, see `previous()`), so when the first terminal status was lost with a
 * dying relay node the sender still learns what really happened, and the command still does not run again.
 *
 * On disk (`<state>/replay/seen.log`): journal records `{ "jti": "…", "until": <ms epoch> }` written before a
 * command runs, and `{ "jti": "…", "done": true, "state": "…", "detail": {…} }` once it has ended, written
 * before its terminal status is reported (format and torn-write recovery in util/journal.ts). A record with
 * `done` but no `state` (agents before outcomes were kept) means "ended, outcome unknown". A jti claimed but
 * never marked done when the agent starts belongs to a command that was running when the agent died:
 * `interrupted()` lists them so the agent can report them as failed instead of leaving the sender waiting.
 * Expired entries (and their outcomes) are pruned from memory as time passes, and the file is rewritten
 * atomically (temp file, fsync, rename) once most of its records are expired.
 *
 * Bounded: at most `maxEntries` live entries. Tokens live at most 5 minutes, so that bound is only reached
 * by a flood; then `claim` throws `GatewayError('replay_guard_full')` and the command is refused (`busy`):
 * failing closed, never forgetting a live jti. An outcome's detail is kept only if it is at most
 * `maxOutcomeBytes` and all kept details stay within `maxOutcomeTotalBytes`; otherwise only its state is kept,
 * with a detail saying the rest was not (the original status carried it; nothing new is stored).
 */
import { join } from 'node:path';
import { isJsonObject, type JsonObject } from '@scanrelay/protocol';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { ensurePrivateDir, writeFileAtomic } from '../util/durable.js';
import { AppendFile, encodeRecord, GroupCommit, recoverJournal } from '../util/journal.js';

export interface ReplayGuardOptions {
  /** Directory of the guard (created 0700). */
  dir: string;
  logger: Logger;
  /** Most live entries (default 100 000). */
  maxEntries?: number;
  /** Largest outcome detail kept, bytes of JSON (default 16 KiB): larger ones keep their state only. */
  maxOutcomeBytes?: number;
  /** Most bytes of outcome detail kept in all (default 32 MiB): past it, new outcomes keep their state only. */
  maxOutcomeTotalBytes?: number;
  now?: () => number;
}

/** How a command that ran ended: its terminal state and the `detail` its terminal status carried. */
export type CommandOutcome = {
  state: 'completed' | 'failed' | 'rejected';
  detail?: JsonObject;
};

/**
 * What a replayed jti's first run came to, as sent in the refusal's `detail.previous`: its outcome, or
 * `{state: 'running'}` while it still runs in this process (its real terminal status follows).
 */
export type PreviousOutcome = CommandOutcome | { state: 'running' };

/** The outcome of a command cut off by a crash or a stop of the agent while it ran. */
export const INTERRUPTED: CommandOutcome = {
  state: 'failed',
  detail: {
    reason: 'interrupted',
    message: 'the gateway stopped while this command ran; check its effect (e.g. the worklist) before retrying',
  },
};

const OUTCOME_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'rejected']);

interface Entry {
  jti: string;
  until: number;
  done?: boolean;
  outcome?: CommandOutcome;
}

interface KeptOutcome {
  outcome: CommandOutcome;
  /** Bytes of its detail counted against maxOutcomeTotalBytes. */
  bytes: number;
}

export type ClaimResult = 'claimed' | 'replayed';

export class ReplayGuard {
  private readonly seen = new Map<string, number>();
  /** Claimed, not yet marked done. */
  private readonly running = new Set<string>();
  private readonly interruptedAtStart: string[];
  /** Interrupted at start and not yet marked done (their `failed interrupted` not yet reported). */
  private readonly interruptedPending: Set<string>;
  /** jti → how its command ended (live entries only). */
  private readonly outcomes = new Map<string, KeptOutcome>();
  private outcomeBytes = 0;
  private readonly maxEntries: number;
  private readonly maxOutcomeBytes: number;
  private readonly maxOutcomeTotalBytes: number;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly commit: GroupCommit<Entry>;
  private file: AppendFile;
  /** Records in the file (live or not), to decide when to rewrite it. */
  private fileRecords: number;
  private lastPrune = 0;

  private constructor(
    private readonly path: string,
    file: AppendFile,
    records: Entry[],
    opts: ReplayGuardOptions,
  ) {
    this.file = file;
    this.maxEntries = opts.maxEntries ?? 100_000;
    this.maxOutcomeBytes = opts.maxOutcomeBytes ?? 16 * 1024;
    this.maxOutcomeTotalBytes = opts.maxOutcomeTotalBytes ?? 32 * 1024 * 1024;
    this.now = opts.now ?? Date.now;
    this.log = opts.logger;
    const now = this.now();
    const done = new Map<string, CommandOutcome | undefined>();
    for (const r of records) {
      if (r.done) done.set(r.jti, r.outcome ?? done.get(r.jti));
      else if (r.until > now) this.seen.set(r.jti, Math.max(r.until, this.seen.get(r.jti) ?? 0));
    }
    for (const [jti, outcome] of done) if (outcome && this.seen.has(jti)) this.keep(jti, outcome);
    this.interruptedAtStart = [...this.seen.keys()].filter((j) => !done.has(j));
    this.interruptedPending = new Set(this.interruptedAtStart);
    this.fileRecords = records.length;
    this.commit = new GroupCommit((batch) => this.flush(batch));
  }

  /** Open the guard, recovering from a crash (a torn last record is cut off; it was never confirmed). */
  static async open(opts: ReplayGuardOptions): Promise<ReplayGuard> {
    await ensurePrivateDir(opts.dir);
    const path = join(opts.dir, 'seen.log');
    const result = await recoverJournal(path);
    if (result.tornBytes > 0)
      opts.logger.warn({ tornBytes: result.tornBytes }, 'replay guard: cut off a torn last write after a crash');
    if (result.corruptLines > 0)
      opts.logger.error({ corruptLines: result.corruptLines }, 'replay guard: skipped corrupt records (disk damage?)');
    const records: Entry[] = [];
    for (const r of result.records) {
      const e = r as Partial<Entry>;
      if (typeof e?.jti !== 'string') continue;
      if (e.done === true) {
        const outcome = parseOutcome(r);
        records.push({ jti: e.jti, until: 0, done: true, ...(outcome ? { outcome } : {}) });
      } else if (Number.isFinite(e.until)) records.push({ jti: e.jti, until: e.until! });
    }
    return new ReplayGuard(path, await AppendFile.open(path), records, opts);
  }

  /** Live entries held. */
  get size(): number {
    return this.seen.size;
  }

  /**
   * Commands (jtis) that were claimed but never marked done before the agent last stopped: they were
   * running when it died. Still-valid ones only.
   */
  interrupted(): string[] {
    return [...this.interruptedAtStart];
  }

  /**
   * Mark a claimed command finished with its `outcome`, durably, BEFORE its terminal status is reported: a
   * restart then does not report it as interrupted, and a redelivery of its jti is answered with the outcome
   * (`previous`). Without an outcome, a command listed by `interrupted()` is recorded as INTERRUPTED. The
   * outcome is visible to `previous()` at once, before the write completes. Failures are logged, not
   * thrown: the command has already run.
   */
  async complete(jti: string, outcome?: CommandOutcome): Promise<void> {
    const wasInterrupted = this.interruptedPending.delete(jti);
    if (!this.running.delete(jti) && !wasInterrupted) return;
    const ended = outcome ?? (wasInterrupted ? INTERRUPTED : undefined);
    const kept = ended && this.has(jti) ? this.keep(jti, ended) : undefined;
    try {
      await this.commit.submit({ jti, until: 0, done: true, ...(kept ? { outcome: kept } : {}) });
    } catch (err) {
      this.log.warn({ err }, 'replay guard: could not record a command as finished');
    }
  }

  /**
   * What the first run of a seen `jti` came to, for the refusal of a redelivery: its recorded outcome;
   * `{state: 'running'}` while it is claimed and unfinished in this process; INTERRUPTED if the agent died
   * while it ran; `undefined` if unknown (not seen, expired, or finished before outcomes were kept).
   */
  previous(jti: string): PreviousOutcome | undefined {
    if (!this.has(jti)) return undefined;
    const kept = this.outcomes.get(jti);
    if (kept) return kept.outcome;
    if (this.running.has(jti)) return { state: 'running' };
    if (this.interruptedPending.has(jti)) return INTERRUPTED;
    return undefined;
  }

  /** Whether `jti` has been seen and is still remembered. */
  has(jti: string): boolean {
    const until = this.seen.get(jti);
    return until !== undefined && until > this.now();
  }

  /**
   * Record `jti` (remembered until `until`, ms epoch) durably. Resolves `claimed` once it is on disk — only
   * then may the command run — or `replayed` if it was already seen (including while a concurrent claim of
   * the same jti is still being written). Throws `replay_guard_full` or `replay_guard_io`.
   */
  async claim(jti: string, until: number): Promise<ClaimResult> {
    this.prune();
    if (this.has(jti)) return 'replayed';
    if (this.seen.size >= this.maxEntries) {
      this.log.error({ entries: this.seen.size }, 'replay guard full: refusing commands until entries expire');
      throw new GatewayError('replay_guard_full', 'too many commands in the last few minutes; retry shortly');
    }
    // Mark in memory first (synchronously) so a concurrent claim of the same jti is refused even before the
    // write completes; it stays marked even if the write fails, so a failed claim never runs later either.
    this.seen.set(jti, until);
    this.running.add(jti);
    try {
      await this.commit.submit({ jti, until });
    } catch (err) {
      // Refused, never run: no outcome to report for it as `running`.
      this.running.delete(jti);
      this.log.error({ err }, 'replay guard: could not record a command id on disk; the command is refused');
      throw new GatewayError('replay_guard_io', 'could not record the command id durably', { cause: err });
    }
    return 'claimed';
  }

  async close(): Promise<void> {
    await this.commit.drain();
    await this.file.close();
  }

  private async flush(batch: Entry[]): Promise<void> {
    await this.file.appendDurably(
      batch.map((e) => encodeRecord(e.done ? doneRecord(e.jti, e.outcome) : { jti: e.jti, until: e.until })).join(''),
    );
    this.fileRecords += batch.length;
    // Rewrite once the file is mostly dead weight. Runs inside the commit loop, so no append interleaves.
    if (this.fileRecords > 1000 && this.fileRecords > 2 * this.seen.size) {
      try {
        await this.rewrite();
      } catch (err) {
        // The batch itself is durable; a failed rewrite only leaves a longer file. Try again later.
        this.log.warn({ err }, 'replay guard: could not compact its file; will retry');
      }
    }
  }

  private async rewrite(): Promise<void> {
    const now = this.now();
    const live: string[] = [];
    for (const [jti, until] of this.seen)
      if (until > now) {
        live.push(encodeRecord({ jti, until }));
        // Finished commands keep their done mark and outcome, or a restart would report them as interrupted.
        const kept = this.outcomes.get(jti);
        if (kept) live.push(encodeRecord(doneRecord(jti, kept.outcome)));
        else if (!this.running.has(jti) && !this.interruptedPending.has(jti))
          live.push(encodeRecord(doneRecord(jti, undefined)));
      }
    // Replace the file first (the open handle keeps pointing at the old inode), then switch handles.
    await writeFileAtomic(this.path, live.join(''));
    const old = this.file;
    this.file = await AppendFile.open(this.path);
    await old.close();
    this.fileRecords = live.length;
  }

  private prune(): void {
    const now = this.now();
    if (now - this.lastPrune < 1000) return;
    this.lastPrune = now;
    for (const [jti, until] of this.seen)
      if (until <= now) {
        this.seen.delete(jti);
        this.running.delete(jti);
        this.interruptedPending.delete(jti);
        this.forget(jti);
      }
  }

  /**
   * Hold `outcome` for `jti` in memory, within the size bounds: a detail too large (or one that would nest too
   * deep inside a refusal's `detail.previous`) is replaced by a short note. Returns what is kept.
   */
  private keep(jti: string, outcome: CommandOutcome): CommandOutcome {
    this.forget(jti);
    let kept: CommandOutcome = { state: outcome.state };
    let bytes = 0;
    if (outcome.detail !== undefined) {
      const size = Buffer.byteLength(JSON.stringify(outcome.detail));
      const fits =
        size <= this.maxOutcomeBytes &&
        this.outcomeBytes + size <= this.maxOutcomeTotalBytes &&
        // The refusal carries it as detail.previous.detail: two levels deeper than it was first sent.
        isJsonObject({ previous: { detail: outcome.detail } });
      if (fits) {
        kept = { state: outcome.state, detail: outcome.detail };
        bytes = size;
      } else {
        kept = {
          state: outcome.state,
          detail: {
            omitted: true,
            message: `the command ended ${outcome.state}; its detail was too large to keep for a repeated report`,
          },
        };
        if (this.outcomeBytes + size > this.maxOutcomeTotalBytes && size <= this.maxOutcomeBytes)
          this.log.warn(
            { outcomeBytes: this.outcomeBytes },
            'replay guard: outcome budget full (a flood of commands?); keeping their states only until entries expire',
          );
        else this.log.info({ command: jti, bytes: size }, 'replay guard: outcome detail too large or deep to keep');
      }
    }
    this.outcomes.set(jti, { outcome: kept, bytes });
    this.outcomeBytes += bytes;
    return kept;
  }

  private forget(jti: string): void {
    const kept = this.outcomes.get(jti);
    if (!kept) return;
    this.outcomes.delete(jti);
    this.outcomeBytes -= kept.bytes;
  }
}

function doneRecord(jti: string, outcome: CommandOutcome | undefined): JsonObject {
  if (!outcome) return { jti, done: true };
  return outcome.detail === undefined
    ? { jti, done: true, state: outcome.state }
    : { jti, done: true, state: outcome.state, detail: outcome.detail };
}

/** The outcome of a `done` record, if it has a valid one (older agents wrote none). */
function parseOutcome(record: unknown): CommandOutcome | undefined {
  const r = record as { state?: unknown; detail?: unknown };
  if (typeof r.state !== 'string' || !OUTCOME_STATES.has(r.state)) return undefined;
  const state = r.state as CommandOutcome['state'];
  return isJsonObject(r.detail) ? { state, detail: r.detail } : { state };
}
