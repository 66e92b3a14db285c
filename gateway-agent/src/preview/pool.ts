/**
 * Makes previews of stored objects off the DICOM path. One worker thread (so at most one core of a small
 * site box), a bounded queue (jobs past `maxQueue` are dropped and logged: a missing thumbnail is better than
 * a gateway that falls behind), a time limit per preview (the worker is terminated and restarted), a heap
 * limit on the worker, and a size limit on the objects it reads. Nothing here can fail or delay a C-STORE:
 * `submit` only queues, and every failure is logged (SOP instance UID and reason only, never pixel or patient
 * data) and skipped.
 *
 * Previews are written as `<previewsDir>/<sopInstanceUid>.jpg` and removed by `remove()` when the retention
 * purge removes their object. `onPreview` is the one place the bytes leave this module (the relay event).
 */
import { mkdir, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DicomLogger } from '../dicom/types.js';
import type { PreviewJob, PreviewReply } from './worker.js';

export interface Preview {
  sopInstanceUid: string;
  /** The accession the object was matched to, when it was. */
  accession?: string;
  laterality?: 'L' | 'R' | 'B';
  view?: string;
  width: number;
  height: number;
  mime: 'image/jpeg';
  bytes: Uint8Array;
  transferSyntaxUid: string;
  cpuMs: number;
}

export interface PreviewPoolOptions {
  previewsDir: string;
  logger: DicomLogger;
  /** Called with each preview made. */
  onPreview?: (preview: Preview) => void;
  /** Jobs waiting at most (default 32). */
  maxQueue?: number;
  /** One preview's time limit, ms (default 20 000). */
  timeoutMs?: number;
  /** Objects larger than this are not previewed (default 96 MiB: every 2D mammogram, not whole tomosynthesis stacks). */
  maxObjectBytes?: number;
  /** Worker heap limit, MiB (default 256). */
  maxHeapMb?: number;
}

interface Pending {
  id: number;
  path: string;
  sopInstanceUid: string;
  accession?: string;
}

/** The worker's JavaScript file: next to this one in dist/; from the sources (tests), the built copy. */
function workerUrl(): URL {
  const here = new URL('./worker.js', import.meta.url);
  if (!import.meta.url.endsWith('.ts')) return here;
  return new URL(here.href.replace('/src/preview/', '/dist/preview/'));
}

export class PreviewPool {
  private worker: Worker | undefined;
  private readonly queue: Pending[] = [];
  private running: (Pending & { timer: NodeJS.Timeout }) | undefined;
  private nextId = 1;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private readonly maxQueue: number;
  private readonly timeoutMs: number;
  private readonly maxObjectBytes: number;

  constructor(private readonly opts: PreviewPoolOptions) {
    this.maxQueue = opts.maxQueue ?? 32;
    this.timeoutMs = opts.timeoutMs ?? 20_000;
    this.maxObjectBytes = opts.maxObjectBytes ?? 96 * 1024 * 1024;
  }

  pathOf(sopInstanceUid: string): string {
    return join(this.opts.previewsDir, `${sopInstanceUid}.jpg`);
  }

  /** Queue a preview of the object at `path`. Never throws, never waits. */
  submit(path: string, sopInstanceUid: string, accession?: string): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxQueue) {
      this.opts.logger.warn({ sopInstanceUid, queued: this.queue.length }, 'preview queue full; preview skipped');
      return;
    }
    this.queue.push({ id: this.nextId++, path, sopInstanceUid, ...(accession ? { accession } : {}) });
    this.pump();
  }

  /** Resolves when nothing is queued or running (tests, shutdown). */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Remove a preview whose object was purged. */
  async remove(sopInstanceUid: string): Promise<void> {
    await unlink(this.pathOf(sopInstanceUid)).catch(() => undefined);
  }

  /** Remove previews whose object is gone (a crash between the two deletions); returns how many. */
  async purgeOrphans(isKept: (sopInstanceUid: string) => boolean): Promise<number> {
    let n = 0;
    for (const name of await readdir(this.opts.previewsDir).catch(() => [] as string[])) {
      const uid = name.replace(/\.jpg(\.part)?$/, '');
      if (name.endsWith('.jpg') && isKept(uid)) continue;
      await unlink(join(this.opts.previewsDir, name)).catch(() => undefined);
      n++;
    }
    return n;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.queue.length = 0;
    if (this.running) clearTimeout(this.running.timer);
    this.running = undefined;
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
    this.wakeIdle();
  }

  private wakeIdle(): void {
    if (this.running || this.queue.length > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private spawn(): Worker {
    const w = new Worker(fileURLToPath(workerUrl()), {
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb ?? 256 },
    });
    w.unref();
    w.on('message', (reply: PreviewReply) => void this.finish(reply));
    w.on('error', (err) => {
      // Out of heap or a crash inside a decoder: this job is lost, the next one gets a new worker.
      if (this.worker === w) this.worker = undefined;
      const job = this.running;
      if (job) void this.finish({ id: job.id, ok: false, error: `worker failed: ${err.message}`, cpuMs: 0 });
    });
    w.on('exit', () => {
      if (this.worker === w) this.worker = undefined;
    });
    return w;
  }

  private pump(): void {
    if (this.running || this.closed) return;
    const job = this.queue.shift();
    if (!job) {
      this.wakeIdle();
      return;
    }
    const timer = setTimeout(() => {
      const w = this.worker;
      this.worker = undefined;
      void w?.terminate();
      void this.finish({ id: job.id, ok: false, error: `timed out after ${this.timeoutMs} ms`, cpuMs: 0 });
    }, this.timeoutMs);
    timer.unref();
    this.running = { ...job, timer };
    void stat(job.path).then(
      (st) => {
        if (this.running?.id !== job.id) return;
        if (st.size > this.maxObjectBytes) {
          const error = `object of ${st.size} bytes is over the preview limit of ${this.maxObjectBytes}`;
          void this.finish({ id: job.id, ok: false, error, cpuMs: 0 });
          return;
        }
        try {
          this.worker ??= this.spawn();
          const msg: PreviewJob = { id: job.id, path: job.path };
          this.worker.postMessage(msg);
        } catch (err) {
          void this.finish({
            id: job.id,
            ok: false,
            error: `cannot start the preview worker: ${(err as Error).message}`,
            cpuMs: 0,
          });
        }
      },
      (err: Error) => void this.finish({ id: job.id, ok: false, error: err.message, cpuMs: 0 }),
    );
  }

  private async finish(reply: PreviewReply): Promise<void> {
    const job = this.running;
    if (!job || job.id !== reply.id) return;
    clearTimeout(job.timer);
    this.running = undefined;
    const { sopInstanceUid } = job;
    if (!reply.ok) {
      this.opts.logger.warn({ sopInstanceUid, reason: reply.error }, 'no preview for this object; skipped');
    } else {
      try {
        await mkdir(this.opts.previewsDir, { recursive: true });
        const path = this.pathOf(sopInstanceUid);
        await writeFile(`${path}.part`, reply.jpeg);
        await rename(`${path}.part`, path);
        const preview: Preview = {
          sopInstanceUid,
          ...(job.accession ? { accession: job.accession } : {}),
          ...(reply.laterality ? { laterality: reply.laterality } : {}),
          ...(reply.view ? { view: reply.view } : {}),
          width: reply.width,
          height: reply.height,
          mime: 'image/jpeg',
          bytes: reply.jpeg,
          transferSyntaxUid: reply.transferSyntaxUid,
          cpuMs: reply.cpuMs,
        };
        this.opts.logger.debug(
          { sopInstanceUid, width: reply.width, height: reply.height, cpuMs: Math.round(reply.cpuMs) },
          'preview made',
        );
        this.opts.onPreview?.(preview);
      } catch (err) {
        this.opts.logger.warn({ sopInstanceUid, reason: (err as Error).message }, 'cannot keep a preview; skipped');
      }
    }
    this.pump();
    this.wakeIdle();
  }
}
