/**
 * Synthetic mammography objects as a Hologic Selenia-like unit sends them: MG For Presentation
 * (1.2.840.10008.5.1.4.1.1.1.2) and For Processing (…1.2.1), 16-bit MONOCHROME2 (12 bits stored), one view
 * (R/L × CC/MLO) per image. Pixels are a cheap gradient, not an image of anything.
 */

import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import dimse from 'dcmjs-dimse';
import type { Naturalized } from '../dicom/dimse-util.js';
import { encodeFileMeta } from '../dicom/storage-sink.js';

export const MG_FOR_PRESENTATION = '1.2.840.10008.5.1.4.1.1.1.2';
export const MG_FOR_PROCESSING = '1.2.840.10008.5.1.4.1.1.1.2.1';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

export interface MgImageSpec {
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  accession: string;
  patientId: string;
  patientName: string;
  birthDate: string;
  sex: string;
  stationAet: string;
  rows: number;
  columns: number;
  /** 0-based image index: picks the view (R CC, L CC, R MLO, L MLO, …). */
  index: number;
  /** DA and TM of acquisition. */
  date: string;
  time: string;
}

const VIEWS = [
  { laterality: 'R', view: 'CC' },
  { laterality: 'L', view: 'CC' },
  { laterality: 'R', view: 'MLO' },
  { laterality: 'L', view: 'MLO' },
] as const;

/** Everything but the pixel data. */
export function mgHeader(spec: MgImageSpec): Naturalized {
  const v = VIEWS[spec.index % VIEWS.length]!;
  const processing = spec.sopClassUid === MG_FOR_PROCESSING;
  return {
    SpecificCharacterSet: 'ISO_IR 192',
    ImageType: ['ORIGINAL', 'PRIMARY', '', ''],
    SOPClassUID: spec.sopClassUid,
    SOPInstanceUID: spec.sopInstanceUid,
    StudyDate: spec.date,
    ContentDate: spec.date,
    StudyTime: spec.time,
    ContentTime: spec.time,
    AccessionNumber: spec.accession,
    Modality: 'MG',
    Manufacturer: 'ScanRelay simulator (Hologic-like)',
    ReferringPhysicianName: '',
    StationName: spec.stationAet,
    SeriesDescription: `${v.laterality} ${v.view}${processing ? ' (for processing)' : ''}`,
    ManufacturerModelName: 'Selenia Dimensions (simulated)',
    PatientName: spec.patientName,
    PatientID: spec.patientId,
    PatientBirthDate: spec.birthDate,
    PatientSex: spec.sex,
    BodyPartExamined: 'BREAST',
    StudyInstanceUID: spec.studyInstanceUid,
    SeriesInstanceUID: spec.seriesInstanceUid,
    StudyID: spec.accession,
    SeriesNumber: processing ? 2 : 1,
    InstanceNumber: spec.index + 1,
    PatientOrientation: v.laterality === 'R' ? ['A', 'R'] : ['P', 'L'],
    ImageLaterality: v.laterality,
    ViewPosition: v.view,
    PresentationIntentType: processing ? 'FOR PROCESSING' : 'FOR PRESENTATION',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: spec.rows,
    Columns: spec.columns,
    BitsAllocated: 16,
    BitsStored: 12,
    HighBit: 11,
    PixelRepresentation: 0,
    PixelIntensityRelationship: 'LOG',
    PixelIntensityRelationshipSign: -1,
    RescaleIntercept: 0,
    RescaleSlope: 1,
    RescaleType: 'US',
    BurnedInAnnotation: 'NO',
  };
}

function pixels(rows: number, columns: number): ArrayBuffer {
  const px = new Uint16Array(rows * columns);
  for (let r = 0; r < rows; r++) {
    const base = r * columns;
    const value = Math.floor((r / Math.max(1, rows - 1)) * 4095);
    px.fill(value, base, base + columns);
  }
  return px.buffer;
}

/** A complete in-memory dataset (explicit VR little endian), ready for a C-STORE request. */
export function mgDataset(spec: MgImageSpec): dimse.Dataset {
  return new dimse.Dataset(
    { ...mgHeader(spec), _vrMap: { PixelData: 'OW' }, PixelData: [pixels(spec.rows, spec.columns)] },
    EXPLICIT_LE,
  );
}

/**
 * Write a Part 10 MG file of `rows × columns` 16-bit pixels without holding the pixels in memory (for the
 * ≥ 200 MB object of the storage tests). Returns the file size.
 */
export async function writeLargeMgFile(path: string, spec: MgImageSpec): Promise<number> {
  const header = new dimse.Dataset(mgHeader(spec), EXPLICIT_LE).getDenaturalizedDataset();
  const meta = encodeFileMeta({
    sopClassUid: spec.sopClassUid,
    sopInstanceUid: spec.sopInstanceUid,
    transferSyntaxUid: EXPLICIT_LE,
    sourceAet: spec.stationAet,
  });
  const pixelBytes = spec.rows * spec.columns * 2;
  const pixelTag = Buffer.alloc(12);
  pixelTag.writeUInt16LE(0x7fe0, 0);
  pixelTag.writeUInt16LE(0x0010, 2);
  pixelTag.write('OW', 4, 'ascii');
  pixelTag.writeUInt32LE(pixelBytes, 8);
  const out = createWriteStream(path, { mode: 0o600 });
  out.write(meta);
  out.write(header);
  out.write(pixelTag);
  const chunk = Buffer.alloc(1 << 20, 0x07);
  let left = pixelBytes;
  while (left > 0) {
    const n = Math.min(left, chunk.length);
    if (!out.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await once(out, 'drain');
    left -= n;
  }
  out.end();
  await once(out, 'finish');
  return meta.length + header.length + pixelTag.length + pixelBytes;
}
