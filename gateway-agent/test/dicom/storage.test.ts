import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile, rm, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import dimse from 'dcmjs-dimse';
import { build } from 'esbuild';
import { afterEach, describe, expect, it } from 'vitest';
import { MG_FOR_PRESENTATION, MG_FOR_PROCESSING, mgDataset, writeLargeMgFile } from '../../src/simulator/index.js';
import { runTool, tempDir } from '../helpers/dicom-peers.js';
import { addArgs, type Fixture, GATEWAY_AET, startService } from './fixture.js';

const STUDY = '1.2.826.0.1.3680043.10.999.7';
let fx: Fixture | undefined;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await fx?.cleanup();
  fx = undefined;
  for (const c of cleanups.splice(0)) await c();
});

function spec(i: number, sopClassUid: string, study = STUDY) {
  return {
    sopClassUid,
    sopInstanceUid: `1.2.826.0.1.3680043.10.999.7.${i}`,
    studyInstanceUid: study,
    seriesInstanceUid: `1.2.826.0.1.3680043.10.999.8.${sopClassUid === MG_FOR_PROCESSING ? 2 : 1}`,
    accession: 'ACC-ST',
    patientId: 'P1',
    patientName: 'TEST^STORE',
    birthDate: '19700101',
    sex: 'F',
    stationAet: 'STORESCU',
    rows: 64,
    columns: 48,
    index: i,
    date: '20260101',
    time: '100000',
  };
}

async function writeMg(dir: string, i: number, sopClassUid: string, study = STUDY): Promise<string> {
  const file = join(dir, `mg${i}.dcm`);
  mgDataset(spec(i, sopClassUid, study)).toFile(file);
  return file;
}

describe('Storage SCP with dcmtk storescu', () => {
  it('stores MG For Presentation and For Processing objects and reports images.received per accession', async () => {
    fx = await startService();
    await fx.svc.worklistAdd(addArgs('ACC-ST', { studyInstanceUid: STUDY }));
    const dir = await tempDir();
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const files = [await writeMg(dir, 1, MG_FOR_PRESENTATION), await writeMg(dir, 2, MG_FOR_PROCESSING)];
    const r = await runTool('storescu', [
      '-aet',
      'STORESCU',
      '-aec',
      GATEWAY_AET,
      '127.0.0.1',
      String(fx.port),
      ...files,
    ]);
    expect(r.code, r.stderr).toBe(0);
    await fx.recorder.waitFor('images.received', (e) => e.data.count === 2);
    expect(fx.recorder.of('images.received').map((e) => [e.subject, e.data])).toEqual([
      ['ACC-ST', { count: 1 }],
      ['ACC-ST', { count: 2 }],
    ]);
    // The stored object is the sent one: same dataset, readable by dcmtk.
    const stored = join(fx.stateDir, 'objects', '1.2.826.0.1.3680043.10.999.7.1.dcm');
    const back = dimse.Dataset.fromFile(stored)!.getElements();
    expect(back.SOPClassUID).toBe(MG_FOR_PRESENTATION);
    expect(back.StudyInstanceUID).toBe(STUDY);
    expect((await runTool('dcmdump', ['-q', stored])).code).toBe(0);
    expect((await stat(stored)).mode & 0o777).toBe(0o600);
    // Same object again: stored, not counted twice.
    await runTool('storescu', ['-aet', 'STORESCU', '-aec', GATEWAY_AET, '127.0.0.1', String(fx.port), files[0]!]);
    expect(fx.recorder.of('images.received')).toHaveLength(2);
    expect(await readdir(join(fx.stateDir, 'incoming'))).toEqual([]);
  });

  it('keeps objects of unknown studies without an event, and purges objects after retention', async () => {
    let clock = Date.now();
    fx = await startService({ retentionMs: 60_000, now: () => clock });
    const dir = await tempDir();
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = await writeMg(dir, 3, MG_FOR_PRESENTATION, '1.2.826.0.1.3680043.10.999.9');
    const r = await runTool('storescu', ['-aet', 'STORESCU', '-aec', GATEWAY_AET, '127.0.0.1', String(fx.port), file]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readdir(join(fx.stateDir, 'objects'))).toHaveLength(1);
    expect(fx.recorder.of('images.received')).toHaveLength(0);
    clock += 61_000;
    await fx.svc.runRetention();
    expect(await readdir(join(fx.stateDir, 'objects'))).toHaveLength(0);
    expect(JSON.parse(await readFile(join(fx.stateDir, 'received.json'), 'utf8')).objects).toEqual([]);
  });

  it('streams a 200 MB object to disk while the SCP process stays far below the object size', async () => {
    const work = await tempDir();
    cleanups.push(() => rm(work, { recursive: true, force: true }));
    // The bundle keeps packages external; a node_modules link lets it resolve them from the temp dir.
    await symlink(fileURLToPath(new URL('../../../node_modules', import.meta.url)), join(work, 'node_modules'));
    const bundle = join(work, 'scp-child.mjs');
    await build({
      entryPoints: [fileURLToPath(new URL('./scp-child.ts', import.meta.url))],
      outfile: bundle,
      bundle: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      alias: { '@scanrelay/protocol': fileURLToPath(new URL('../../../relay/protocol/src/index.ts', import.meta.url)) },
      logLevel: 'silent',
    });
    const big = join(work, 'big.dcm');
    const size = await writeLargeMgFile(big, {
      ...spec(9, MG_FOR_PRESENTATION, '1.2.826.0.1.3680043.10.999.1'),
      rows: 10_240,
      columns: 10_240,
    });
    expect(size).toBeGreaterThan(200 * 1024 * 1024);
    const state = join(work, 'state');
    const child: ChildProcess = spawn(process.execPath, [bundle, state], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    });
    const lines = createInterface({ input: child.stdout! });
    const messages: Record<string, unknown>[] = [];
    let onMessage: (() => void) | undefined;
    lines.on('line', (l) => {
      messages.push(JSON.parse(l));
      onMessage?.();
    });
    const next = (pred: (m: Record<string, unknown>) => boolean) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        void exited.then(() => reject(new Error(`SCP child exited (${child.exitCode})`)));
        const check = () => {
          const m = messages.find(pred);
          if (m) resolve(m);
        };
        onMessage = check;
        check();
      });
    const { port } = (await next((m) => 'port' in m)) as { port: number };
    const vm = async (field: 'VmRSS' | 'VmHWM') => {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
    };
    const baseline = await vm('VmRSS');
    const r = await runTool('storescu', ['-aet', 'STORESCU', '-aec', GATEWAY_AET, '127.0.0.1', String(port), big], {
      timeoutMs: 120_000,
    });
    expect(r.code, r.stderr).toBe(0);
    await next((m) => (m.event as { kind?: string } | undefined)?.kind === 'images.received');
    const peak = await vm('VmHWM');
    const stored = join(state, 'objects', `${spec(9, MG_FOR_PRESENTATION).sopInstanceUid}.dcm`);
    expect((await stat(stored)).size).toBe(size);
    // Bounded: the process grew by far less than the object (a buffered object would add ≥ 200 MB). Streaming
    // measured 62–70 MiB of growth here on Node 24 (PDU buffers, write queue, young generation), so the bound
    // sits between that and the buffered failure mode rather than at the edge of the measured figure.
    expect(peak - baseline).toBeLessThan(112 * 1024 * 1024);
    console.log(
      `200 MB C-STORE: SCP RSS baseline ${(baseline / 2 ** 20).toFixed(0)} MiB, peak ${(peak / 2 ** 20).toFixed(0)} MiB`,
    );
  }, 120_000);
});
