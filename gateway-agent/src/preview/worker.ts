/**
 * Preview worker thread: receives {id, path}, reads the stored object, renders it (render.ts) and posts back
 * the JPEG or an error message. One job at a time; the pool (pool.ts) bounds its queue, time and heap.
 */
import { readFile } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import { renderPreview } from './render.js';

export interface PreviewJob {
  id: number;
  path: string;
}

export type PreviewReply =
  | {
      id: number;
      ok: true;
      jpeg: Uint8Array;
      width: number;
      height: number;
      laterality?: 'L' | 'R' | 'B';
      view?: string;
      transferSyntaxUid: string;
      frames: number;
      cpuMs: number;
    }
  | { id: number; ok: false; error: string; cpuMs: number };

/** CPU time of this thread where Node can tell (threadCpuUsage, Node ≥ 23.9), else of the whole process. */
function cpuNow(): number {
  const p = process as unknown as { threadCpuUsage?: () => NodeJS.CpuUsage };
  const u = p.threadCpuUsage ? p.threadCpuUsage() : process.cpuUsage();
  return (u.user + u.system) / 1000;
}

parentPort?.on('message', (job: PreviewJob) => {
  const start = cpuNow();
  readFile(job.path)
    .then((bytes) => renderPreview(bytes))
    .then(
      (p) => {
        const reply: PreviewReply = {
          id: job.id,
          ok: true,
          jpeg: p.jpeg,
          width: p.width,
          height: p.height,
          ...(p.laterality ? { laterality: p.laterality } : {}),
          ...(p.view ? { view: p.view } : {}),
          transferSyntaxUid: p.transferSyntaxUid,
          frames: p.frames,
          cpuMs: cpuNow() - start,
        };
        parentPort?.postMessage(reply);
      },
      (err: unknown) => {
        const reply: PreviewReply = {
          id: job.id,
          ok: false,
          error: err instanceof Error ? err.message : String(err),
          cpuMs: cpuNow() - start,
        };
        parentPort?.postMessage(reply);
      },
    );
});
