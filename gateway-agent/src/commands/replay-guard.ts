/**
 * The replay guard: a command runs at most once. Every command token's `jti` is recorded on disk
 * (fdatasync) BEFORE the command runs and kept until that token can no longer be accepted (its `exp` plus
 * the clock tolerance), so the same token offered again — by the relay, by anyone, before or after a
 * restart or a kill -9 — is refused as `replayed`.
 *
 * On disk (`<state>/replay/seen.log`): journal records `{ "jti": "…", "until": <ms epoch> }` written before a
 * command runs, and `{ "jti": "…", "done": true }` once its outcome has been reported (format and torn-write
 * recovery in util/journal.ts). A jti claimed but never marked done when the agent starts belongs to a command
 * that was running when the agent died: `interrupted()` lists them so the agent can report them as failed
 * instead of leaving the sender waiting. Expired entries are pruned from memory as time passes, and the
 * file is rewritten atomically (temp file, fsync, rename) once most of its records are expired.
 *
 * Bounded: at most `maxEntries` live entries. Tokens live at most 5 minutes, so that bound is only reached
 * by a flood; then `claim` throws `GatewayError('replay_guard_full')` and the command is refused (`busy`):
 * failing closed, never forgetting a live jti.
 */
import { join } from 'node:path';
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
  now?: () => number;
}

interface Entry {
  jti: string;
  until: number;
  done?: boolean;
}

export type ClaimResult = 'claimed' | 'replayed';

export class ReplayGuard {
  private readonly seen = new Map<string, number>();
  /** Claimed, not yet marked done. */
  private readonly running = new Set<string>();
  private readonly interruptedAtStart: string[];
  private readonly maxEntries: number;
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
    this.now = opts.now ?? Date.now;
    this.log = opts.logger;
    const now = this.now();
    const done = new Set<string>();
    for (const r of records) {
      if (r.done) done.add(r.jti);
      else if (r.until > now) this.seen.set(r.jti, Math.max(r.until, this.seen.get(r.jti) ?? 0));
    }
    this.interruptedAtStart = [...this.seen.keys()].filter((j) => !done.has(j));
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
      if (e.done === true) records.push({ jti: e.jti, until: 0, done: true });
      else if (Number.isFinite(e.until)) records.push({ jti: e.jti, until: e.until! });
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
   * Mark a claimed command finished (its terminal status was reported), durably, so that a restart does not
   * report it as interrupted. Failures are logged, not thrown: the command has already run.
   */
  async complete(jti: string): Promise<void> {
    if (!this.running.delete(jti) && !this.interruptedAtStart.includes(jti)) return;
    try {
      await this.commit.submit({ jti, until: 0, done: true });
    } catch (err) {
      this.log.warn({ err }, 'replay guard: could not record a command as finished');
    }
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
      batch.map((e) => encodeRecord(e.done ? { jti: e.jti, done: true } : { jti: e.jti, until: e.until })).join(''),
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
        // Finished commands keep their done mark, or a restart would report them as interrupted.
        if (!this.running.has(jti)) live.push(encodeRecord({ jti, done: true }));
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
      }
  }
}
