/**
 * Renders one stored DICOM object to a small JPEG preview (long edge ≤ 400 px, ≤ 30 KB). Runs inside the
 * preview worker thread (worker.ts), never on the DICOM path.
 *
 * Decoding: dcmjs-imaging (same author as dcmjs-dimse) parses the object and decodes every transfer syntax the
 * SCP accepts (uncompressed LE/BE, deflate, RLE, JPEG baseline/lossless, JPEG-LS, JPEG 2000) through its
 * bundled WebAssembly codecs, and applies the display pipeline: Modality LUT, VOI LUT or Window Center/Width,
 * MONOCHROME1 inversion. sharp (libvips, prebuilt inside its npm package) resizes and encodes the JPEG.
 */
import { createRequire } from 'node:module';
import sharp from 'sharp';

// dcmjs-imaging is a CommonJS bundle; typed through its own declarations.
const imaging = createRequire(import.meta.url)('dcmjs-imaging') as typeof import('dcmjs-imaging');

export const PREVIEW_LONG_EDGE = 400;
export const PREVIEW_MAX_BYTES = 30 * 1024;
const QUALITIES = [75, 60, 45, 30, 20];

export interface PreviewImage {
  jpeg: Buffer;
  width: number;
  height: number;
  mime: 'image/jpeg';
  laterality?: 'L' | 'R' | 'B';
  view?: string;
  transferSyntaxUid: string;
  frame: number;
  frames: number;
}

/** Breast projection codes (ViewCodeSequence, SNOMED RT and CT) → the short labels radiographers use. */
const VIEW_CODES: Record<string, string> = {
  'R-10242': 'CC',
  '399162004': 'CC',
  'R-10226': 'MLO',
  '399368009': 'MLO',
  'R-10224': 'ML',
  '399260004': 'ML',
  'R-10228': 'LM',
  '399352003': 'LM',
  'R-1024A': 'XCCL',
  '399192003': 'XCCL',
  'R-10244': 'FB',
  '399196000': 'FB',
};

// libvips may use one thread: previews share a small site box with the DICOM path.
sharp.concurrency(1);

let initialised: Promise<void> | undefined;
function initDecoders(): Promise<void> {
  initialised ??= imaging.NativePixelDecoder.initializeAsync({ logNativeDecodersMessages: false });
  return initialised;
}

function lateralityOf(elements: Record<string, unknown>): PreviewImage['laterality'] {
  const v = String(elements.ImageLaterality ?? elements.Laterality ?? '')
    .trim()
    .toUpperCase();
  return v === 'L' || v === 'R' || v === 'B' ? v : undefined;
}

function viewOf(elements: Record<string, unknown>): string | undefined {
  const seq = elements.ViewCodeSequence as Array<Record<string, unknown>> | undefined;
  const code = Array.isArray(seq) ? String(seq[0]?.CodeValue ?? '') : '';
  if (VIEW_CODES[code]) return VIEW_CODES[code];
  // ViewPosition (0018,5101) as many units also send it; only known labels, never free text from the file.
  const position = String(elements.ViewPosition ?? '')
    .trim()
    .toUpperCase();
  return Object.values(VIEW_CODES).includes(position) ? position : undefined;
}

/** The label burnt into the corner, e.g. "R MLO"; only the fixed letters above, so no text from the file. */
function labelSvg(label: string, width: number): Buffer {
  const size = Math.max(12, Math.round(width / 12));
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${size + 8}">` +
      `<text x="4" y="${size + 2}" font-family="sans-serif" font-size="${size}" font-weight="bold" ` +
      `fill="#ffffff" stroke="#000000" stroke-width="1">${label}</text></svg>`,
  );
}

/** Decode `bytes` (a DICOM Part 10 file) and encode the preview. Throws with a clear message if it cannot. */
export async function renderPreview(bytes: Uint8Array): Promise<PreviewImage> {
  await initDecoders();
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const image = new imaging.DicomImage(buffer);
  const elements = image.getElements();
  if (elements.PixelData === undefined) throw new Error('object has no pixel data');
  const frames = image.getNumberOfFrames();
  // Tomosynthesis and other multi-frame objects: the central slice.
  const frame = frames > 1 ? Math.floor(frames / 2) : 0;
  const rendered = image.render({ frame });
  if (rendered.width <= 0 || rendered.height <= 0) throw new Error('decoder returned an empty image');
  const laterality = lateralityOf(elements);
  const view = viewOf(elements);
  const resized = await sharp(Buffer.from(rendered.pixels), {
    raw: { width: rendered.width, height: rendered.height, channels: 4 },
  })
    .removeAlpha()
    .resize(PREVIEW_LONG_EDGE, PREVIEW_LONG_EDGE, { fit: 'inside', withoutEnlargement: true })
    .toBuffer({ resolveWithObject: true });
  const { width, height } = resized.info;
  let pipeline = sharp(resized.data, { raw: { width, height, channels: 3 } });
  const label = [laterality, view].filter(Boolean).join(' ');
  if (label) pipeline = pipeline.composite([{ input: labelSvg(label, width), top: 0, left: 0 }]);
  const flattened = await pipeline.raw().toBuffer();
  for (const quality of QUALITIES) {
    const jpeg = await sharp(flattened, { raw: { width, height, channels: 3 } })
      .jpeg({ quality, mozjpeg: true })
      .toBuffer();
    if (jpeg.length <= PREVIEW_MAX_BYTES)
      return {
        jpeg,
        width,
        height,
        mime: 'image/jpeg',
        ...(laterality ? { laterality } : {}),
        ...(view ? { view } : {}),
        transferSyntaxUid: image.getTransferSyntaxUid(),
        frame,
        frames,
      };
  }
  throw new Error(`preview stays over ${PREVIEW_MAX_BYTES} bytes even at the lowest quality`);
}
