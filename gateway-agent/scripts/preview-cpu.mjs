// Gateway CPU per preview by transfer syntax. Run after `npm run build`, from the repo root:
//   node gateway-agent/scripts/preview-cpu.mjs [rows] [columns] [repeats]
// Makes one simulated MG image (default 2048 x 1664, 16 bit), compresses it with dcmtk into each transfer
// syntax the SCP accepts, and renders each `repeats` times (default 3) in the preview worker. workerThreadCpuMs is
// the worker thread's own CPU (Node >= 23.9); processCpuMsPerPreview adds libvips's threads (the real cost).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PreviewPool } from '../dist/preview/pool.js';
import { MG_FOR_PRESENTATION, mgDataset } from '../dist/simulator/index.js';

const [rows = 2048, columns = 1664, repeats = 3] = process.argv.slice(2).map(Number);
const dir = mkdtempSync(join(tmpdir(), 'scanrelay-preview-cpu-'));
try {
  const base = join(dir, 'base.dcm');
  mgDataset({
    sopClassUid: MG_FOR_PRESENTATION,
    sopInstanceUid: '1.2.3.1',
    studyInstanceUid: '1.2.3.2',
    seriesInstanceUid: '1.2.3.3',
    accession: 'BENCH',
    patientId: 'P',
    patientName: 'BENCH^PREVIEW',
    birthDate: '19700101',
    sex: 'F',
    stationAet: 'BENCH',
    rows,
    columns,
    index: 0,
    date: '20260101',
    time: '100000',
  }).toFile(base);
  const variants = [
    ['explicit LE', null],
    ['JPEG lossless', ['dcmcjpeg', '+e1']],
    ['JPEG-LS lossless', ['dcmcjpls', '+el']],
    ['RLE', ['dcmcrle']],
    ['deflate', ['dcmconv', '+td']],
  ];
  const results = [];
  let current;
  const pool = new PreviewPool({
    previewsDir: join(dir, 'previews'),
    logger: { debug() {}, info() {}, warn: (o, m) => console.error(m, o), error: (o, m) => console.error(m, o) },
    onPreview: (p) => current.push(p.cpuMs),
  });
  for (const [label, tool] of variants) {
    const file = tool ? join(dir, `${label.replace(/\W/g, '')}.dcm`) : base;
    if (tool) execFileSync(tool[0], [...tool.slice(1), base, file]);
    current = [];
    const before = process.cpuUsage();
    for (let i = 0; i < repeats; i++) pool.submit(file, `1.2.3.${results.length}.${i}`);
    await pool.idle();
    const used = process.cpuUsage(before);
    current.sort((a, b) => a - b);
    results.push({
      transferSyntax: label,
      previews: current.length,
      workerThreadCpuMsMedian: Math.round(current[current.length >> 1]),
      // Whole process (worker + libvips threads + the idle main thread), per preview: the figure to plan with.
      processCpuMsPerPreview: Math.round((used.user + used.system) / 1000 / repeats),
    });
  }
  await pool.close();
  console.log(JSON.stringify({ node: process.version, rows, columns, repeats, results }, null, 1));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
