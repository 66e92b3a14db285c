import { execFileSync } from 'node:child_process';
import { copyFile, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DicomLogger } from '../../src/dicom/types.js';
import { type Preview, PreviewPool } from '../../src/preview/pool.js';
import { MG_FOR_PRESENTATION, mgDataset } from '../../src/simulator/index.js';
import { type Fixture, GATEWAY_AET, startService } from '../dicom/fixture.js';
import { runTool, tempDir } from '../helpers/dicom-peers.js';

// Files written by other toolkits: pydicom's own test files (GDCM, dcmtk, CharLS, OpenJPEG made them), and
// dcmtk's compressors applied to one of them.
const python = process.env.SCANRELAY_TEST_PYTHON ?? 'python3';
const PYDICOM = join(
  execFileSync(python, ['-c', 'import pydicom,os;print(os.path.dirname(pydicom.__file__))']).toString().trim(),
  'data',
  'test_files',
);

const MG_SPEC = {
  sopClassUid: MG_FOR_PRESENTATION,
  sopInstanceUid: '1.2.3.200',
  studyInstanceUid: '1.2.3.201',
  seriesInstanceUid: '1.2.3.202',
  accession: 'ACC-PV',
  patientId: 'P1',
  patientName: 'TEST^PREVIEW',
  birthDate: '19700101',
  sex: 'F' as const,
  stationAet: 'STORESCU',
  rows: 512,
  columns: 384,
  index: 0,
  date: '20260101',
  time: '100000',
};

function quietLogger(lines: string[]): DicomLogger {
  const push = (obj: object, msg?: string) => lines.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
  return { debug: () => undefined, info: push, warn: push, error: push };
}

let dir: string;
let pool: PreviewPool;
const made = new Map<string, Preview>();
const logLines: string[] = [];
beforeAll(async () => {
  dir = await tempDir('scanrelay-preview-');
  pool = new PreviewPool({
    previewsDir: join(dir, 'previews'),
    logger: quietLogger(logLines),
    onPreview: (p) => made.set(p.sopInstanceUid, p),
  });
});
afterAll(async () => {
  await pool.close();
  await rm(dir, { recursive: true, force: true });
});

async function previewOf(path: string, id: string): Promise<Preview | undefined> {
  pool.submit(path, id);
  await pool.idle();
  return made.get(id);
}

async function stats(p: Preview) {
  const s = await sharp(Buffer.from(p.bytes)).stats();
  const meta = await sharp(Buffer.from(p.bytes)).metadata();
  return { mean: s.channels[0]!.mean, stdev: s.channels[0]!.stdev, format: meta.format, w: meta.width, h: meta.height };
}

/** pydicom's JPEG 2000 file with its codestream header (SOC, SIZ…) overwritten; the DICOM framing is intact. */
async function corruptJ2k(): Promise<Buffer> {
  const bytes = await readFile(join(PYDICOM, 'MR_small_jp2klossless.dcm'));
  const soc = bytes.indexOf(Buffer.from([0xff, 0x4f, 0xff, 0x51]));
  expect(soc).toBeGreaterThan(0);
  bytes.fill(0x5a, soc, soc + 200);
  return bytes;
}

async function compress(tool: string, args: string[], name: string): Promise<string> {
  const out = join(dir, name);
  const r = await runTool(tool, [...args, join(PYDICOM, 'CT_small.dcm'), out]);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

describe('previews from files other toolkits wrote', () => {
  const cases: Array<[string, () => Promise<string>, number, number]> = [
    ['explicit little endian (pydicom CT_small)', async () => join(PYDICOM, 'CT_small.dcm'), 128, 128],
    ['big endian (pydicom)', async () => join(PYDICOM, 'MR_small_bigendian.dcm'), 64, 64],
    ['RLE (pydicom)', async () => join(PYDICOM, 'MR_small_RLE.dcm'), 64, 64],
    ['JPEG 2000 lossless (pydicom)', async () => join(PYDICOM, 'MR_small_jp2klossless.dcm'), 64, 64],
    ['JPEG 2000 (pydicom)', async () => join(PYDICOM, 'JPEG2000.dcm'), 256, 1024],
    ['JPEG-LS lossless (pydicom)', async () => join(PYDICOM, 'MR_small_jpeg_ls_lossless.dcm'), 64, 64],
    ['JPEG-LS near-lossless 16 bit (pydicom)', async () => join(PYDICOM, 'JPEGLSNearLossless_16.dcm'), 10, 50],
    ['JPEG baseline (pydicom)', async () => join(PYDICOM, 'JPEG-lossy.dcm'), 256, 1024],
    ['JPEG lossless (dcmcjpeg +e1)', () => compress('dcmcjpeg', ['+e1'], 'jl.dcm'), 128, 128],
    ['JPEG-LS lossless (dcmcjpls +el)', () => compress('dcmcjpls', ['+el'], 'jls.dcm'), 128, 128],
    ['RLE (dcmcrle)', () => compress('dcmcrle', [], 'rle.dcm'), 128, 128],
    ['deflate (dcmconv +td)', () => compress('dcmconv', ['+td'], 'deflate.dcm'), 128, 128],
  ];
  it.each(cases)('%s', async (label, file, columns, rows) => {
    const p = await previewOf(await file(), `1.2.3.${label.length}.${columns}.${rows}.${(Math.random() * 1e6) | 0}`);
    expect(p, logLines.join('\n')).toBeDefined();
    const s = await stats(p!);
    expect(s.format).toBe('jpeg');
    expect(p!.bytes.length).toBeLessThanOrEqual(30 * 1024);
    // Never enlarged; long edge at most 400; aspect ratio kept (±1 px of rounding).
    const scale = Math.min(1, 400 / Math.max(columns, rows));
    expect(s.w).toBe(p!.width);
    expect(Math.abs(p!.width - Math.round(columns * scale))).toBeLessThanOrEqual(1);
    expect(Math.abs(p!.height - Math.round(rows * scale))).toBeLessThanOrEqual(1);
    // Plausible picture: not all black, not all white, not flat.
    expect(s.mean).toBeGreaterThan(3);
    expect(s.mean).toBeLessThan(252);
    expect(s.stdev).toBeGreaterThan(3);
  });

  it('inverts MONOCHROME1 and honours Window Center/Width', async () => {
    const base = join(PYDICOM, 'CT_small.dcm');
    const mono1 = join(dir, 'mono1.dcm');
    const narrow = join(dir, 'narrow.dcm');
    await copyFile(base, mono1);
    await copyFile(base, narrow);
    expect((await runTool('dcmodify', ['-nb', '-m', '(0028,0004)=MONOCHROME1', mono1])).code).toBe(0);
    // A window far above the pixel range: everything renders black.
    const r = await runTool('dcmodify', ['-nb', '-i', '(0028,1050)=30000', '-i', '(0028,1051)=10', narrow]);
    expect(r.code, r.stderr).toBe(0);
    const a = await stats((await previewOf(base, '1.2.3.100'))!);
    const b = await stats((await previewOf(mono1, '1.2.3.101'))!);
    const c = await stats((await previewOf(narrow, '1.2.3.102'))!);
    expect(Math.abs(a.mean + b.mean - 255)).toBeLessThan(12);
    expect(c.mean).toBeLessThan(3);
  });

  it('takes laterality and view from the object and the central slice of a multi-frame object', async () => {
    const file = join(dir, 'mg.dcm');
    mgDataset({ ...MG_SPEC, sopInstanceUid: '1.2.3.200', index: 1 }).toFile(file);
    const p = (await previewOf(file, '1.2.3.200'))!;
    expect(p).toBeDefined();
    expect([p.laterality, p.view, p.width, p.height]).toEqual(['L', 'CC', 300, 400]);
    const multi = (await previewOf(join(PYDICOM, 'SC_rgb_rle_2frame.dcm'), '1.2.3.203'))!;
    expect(multi).toBeDefined();
    expect(multi.transferSyntaxUid).toBe('1.2.840.10008.1.2.5');
  });

  it('skips an object whose pixel stream is corrupt, with a log line, and goes on', async () => {
    const bad = join(dir, 'bad.dcm');
    await writeFile(bad, await corruptJ2k());
    expect(await previewOf(bad, '1.2.3.300')).toBeUndefined();
    expect(logLines.some((l) => l.includes('no preview for this object') && l.includes('1.2.3.300'))).toBe(true);
    expect(await previewOf(join(PYDICOM, 'CT_small.dcm'), '1.2.3.301')).toBeDefined();
  });
});

describe('previews behind the storage SCP', () => {
  let fx: Fixture | undefined;
  afterEach(async () => {
    await fx?.cleanup();
    fx = undefined;
  });

  it('a corrupt pixel stream still stores (C-STORE success) and makes no preview; a good one does', async () => {
    const got: Preview[] = [];
    fx = await startService({ onPreview: (p) => got.push(p) });
    const src = await tempDir();
    // Two MG objects, JPEG-LS (its codestream header then overwritten) and RLE, compressed by dcmtk.
    const mg = (i: number) => {
      const file = join(src, `mg${i}.dcm`);
      mgDataset({ ...MG_SPEC, sopInstanceUid: `1.2.3.40${i}`, index: i }).toFile(file);
      return file;
    };
    expect((await runTool('dcmcjpls', ['+el', mg(0), join(src, 'bad.dcm')])).code).toBe(0);
    expect((await runTool('dcmcrle', [mg(1), join(src, 'good.dcm')])).code).toBe(0);
    const bytes = await readFile(join(src, 'bad.dcm'));
    const soi = bytes.indexOf(Buffer.from([0xff, 0xd8, 0xff]));
    expect(soi).toBeGreaterThan(0);
    bytes.fill(0x5a, soi, soi + 64);
    await writeFile(join(src, 'bad.dcm'), bytes);
    // One association per file, proposing the file's own transfer syntax first (-xt JPEG-LS, -xr RLE).
    for (const [name, propose] of [
      ['bad.dcm', '-xt'],
      ['good.dcm', '-xr'],
    ] as const) {
      const args = ['-aet', 'STORESCU', '-aec', GATEWAY_AET, propose, '127.0.0.1', String(fx.port), join(src, name)];
      const r = await runTool('storescu', args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/Failed|Error/i);
    }
    expect(await readdir(join(fx.stateDir, 'objects'))).toHaveLength(2);
    await expect.poll(() => got.length, { timeout: 20_000 }).toBe(1);
    expect(got[0]!.sopInstanceUid).toBe('1.2.3.401');
    expect((await readdir(join(fx.stateDir, 'previews'))).filter((n) => n.endsWith('.jpg'))).toHaveLength(1);
    await rm(src, { recursive: true, force: true });
  });
});
