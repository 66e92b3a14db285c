/**
 * Modality Worklist C-FIND matching (PS3.4 K.6.1.2 and C.2.2.2): single value, wildcard (`*`, `?`), range
 * (`A-B`, `A-`, `-B` on DA/TM/DT), UID list, and sequence matching on ScheduledProcedureStepSequence. The
 * response carries every key the query asked for — zero-length when unknown — and nothing else, plus
 * SpecificCharacterSet `ISO_IR 192` because dcmjs-dimse writes text as UTF-8 whatever the query declared.
 *
 * Datasets here are dcmjs "naturalized" objects: keyword → value, sequences as arrays of objects, person
 * names as `[{Alphabetic}]`.
 */
import { scheduledDicom, type WorklistItem } from './worklist-store.js';

export type Naturalized = Record<string, unknown>;

/**
 * VRs of the keys whose matching depends on the VR (names, dates, times, UIDs, sequences). Any other
 * standard key matches as a string (exact or wildcard).
 */
const VR: Record<string, string> = {
  PatientName: 'PN',
  ReferringPhysicianName: 'PN',
  ScheduledPerformingPhysicianName: 'PN',
  RequestingPhysician: 'PN',
  PatientBirthDate: 'DA',
  ScheduledProcedureStepStartDate: 'DA',
  ScheduledProcedureStepEndDate: 'DA',
  StudyDate: 'DA',
  ScheduledProcedureStepStartTime: 'TM',
  ScheduledProcedureStepEndTime: 'TM',
  StudyInstanceUID: 'UI',
  SOPClassUID: 'UI',
  SOPInstanceUID: 'UI',
  ScheduledProcedureStepSequence: 'SQ',
  ReferencedStudySequence: 'SQ',
  ReferencedPatientSequence: 'SQ',
  RequestedProcedureCodeSequence: 'SQ',
  ScheduledProtocolCodeSequence: 'SQ',
};

/** The matching-relevant VR of a keyword (`undefined`: match as a string). */
export function vrOf(keyword: string): string | undefined {
  return VR[keyword];
}

/** dcmjs names tags missing from its dictionary (private ones) by their hex; those are never answered. */
const isKeyword = (k: string) => !k.startsWith('_') && !/^[0-9A-Fa-f]{8}$/.test(k);

/** Screening worklists are mammography; `worklist.add` carries no modality. */
const MODALITY = 'MG';

/** The full worklist entry for one item, as an SCP would store it. */
export function itemDataset(item: WorklistItem): Naturalized {
  const { date, time } = scheduledDicom(item);
  return {
    SpecificCharacterSet: 'ISO_IR 192',
    PatientName: item.patientName,
    PatientID: item.patientId,
    IssuerOfPatientID: '',
    PatientBirthDate: item.birthDate,
    PatientSex: item.sex,
    AccessionNumber: item.accession,
    ReferringPhysicianName: '',
    StudyInstanceUID: item.studyInstanceUid,
    RequestedProcedureID: item.accession,
    RequestedProcedureDescription: item.procedure ?? '',
    ScheduledProcedureStepSequence: [
      {
        Modality: MODALITY,
        ScheduledStationAETitle: item.stationAet,
        ScheduledProcedureStepStartDate: date,
        ScheduledProcedureStepStartTime: time,
        ScheduledProcedureStepID: item.accession,
        ScheduledProcedureStepDescription: item.procedure ?? '',
        ScheduledPerformingPhysicianName: '',
      },
    ],
  };
}

/** A naturalized value as one DICOM string (`\`-joined when multi-valued, '' when empty). */
export function textOf(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.map(textOf).join('\\');
  if (typeof value === 'object') {
    const pn = value as { Alphabetic?: unknown };
    return typeof pn.Alphabetic === 'string' ? pn.Alphabetic : '';
  }
  return String(value).trim();
}

function wildcardRegExp(pattern: string, caseInsensitive: boolean): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, caseInsensitive ? 'is' : 's');
}

/** Pad a DICOM TM to HHMMSS (for range comparison); `fill` is 0 for a lower, 9 for an upper bound. */
function timeKey(tm: string, fill: '0' | '9'): string {
  const t = tm.replace(/[:]/g, '').split('.')[0] ?? '';
  return t.padEnd(6, fill).slice(0, 6);
}

/** Whether `actual` matches the query `key` of the given VR. */
export function matchValue(vr: string | undefined, key: string, actual: string): boolean {
  if (key === '' || key === '*') return true;
  // An attribute the SCP has no value for does not exclude the item: a modality missing its patient is
  // worse than one extra line on its worklist.
  if (actual === '') return true;
  if ((vr === 'DA' || vr === 'TM' || vr === 'DT') && key.includes('-')) {
    const [lo = '', hi = ''] = key.split('-');
    if (vr === 'TM') {
      const a = timeKey(actual, '0');
      return (lo === '' || a >= timeKey(lo, '0')) && (hi === '' || a <= timeKey(hi, '9'));
    }
    return (lo === '' || actual >= lo) && (hi === '' || actual.slice(0, hi.length) <= hi);
  }
  if (vr === 'TM') return timeKey(actual, '0').startsWith(key.replace(/[:]/g, '').split('.')[0] ?? '');
  if (vr === 'UI') return key.split('\\').includes(actual);
  const pn = vr === 'PN';
  if (key.includes('*') || key.includes('?')) return wildcardRegExp(key, pn).test(actual);
  if (pn) return key.replace(/\^+$/, '').toUpperCase() === actual.replace(/\^+$/, '').toUpperCase();
  return key === actual;
}

function isSequenceQuery(value: unknown): value is Naturalized[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'object' && v !== null && !('Alphabetic' in v));
}

function isSequenceKey(key: string, value: unknown): boolean {
  return vrOf(key) === 'SQ' || (Array.isArray(value) && value.length > 0 && isSequenceQuery(value));
}

function queryKeys(query: Naturalized): string[] {
  return Object.keys(query).filter((k) => isKeyword(k) && k !== 'SpecificCharacterSet');
}

/** Match the non-sequence keys of `query` against `entry`. */
function matchFlat(query: Naturalized, entry: Naturalized): boolean {
  for (const key of queryKeys(query)) {
    if (isSequenceKey(key, query[key])) continue;
    if (!matchValue(vrOf(key), textOf(query[key]), textOf(entry[key]))) return false;
  }
  return true;
}

/** Build the response for `query` from `entry`: every key asked, zero-length when unknown. */
function project(query: Naturalized, entry: Naturalized): Naturalized {
  const out: Naturalized = {};
  for (const key of queryKeys(query)) {
    const q = query[key];
    const v = entry[key];
    if (isSequenceKey(key, q)) {
      const subQuery = isSequenceQuery(q) ? q[0] : undefined;
      const items = Array.isArray(v) ? (v as Naturalized[]) : [];
      out[key] = subQuery && queryKeys(subQuery).length > 0 ? items.map((i) => project(subQuery, i)) : items;
    } else {
      out[key] = v === undefined || v === null ? '' : v;
    }
  }
  return out;
}

/**
 * The worklist responses for one C-FIND identifier: one dataset per matching item (per matching scheduled
 * step), each with exactly the keys the query asked for.
 */
export function matchWorklist(query: Naturalized, items: readonly WorklistItem[]): Naturalized[] {
  const results: Naturalized[] = [];
  for (const item of items) {
    const entry = itemDataset(item);
    if (!matchFlat(query, entry)) continue;
    const response = project(query, entry);
    // Sequence matching: the SPS sequence's keys must match at least one scheduled step; only matching steps
    // are returned.
    let ok = true;
    for (const key of queryKeys(query)) {
      const q = query[key];
      if (!isSequenceKey(key, q)) continue;
      const subQuery = isSequenceQuery(q) ? q[0] : undefined;
      if (!subQuery || queryKeys(subQuery).length === 0) continue;
      const steps = Array.isArray(entry[key]) ? (entry[key] as Naturalized[]) : [];
      const matching = steps.filter((s) => matchFlat(subQuery, s));
      if (matching.length === 0) {
        ok = false;
        break;
      }
      response[key] = matching.map((s) => project(subQuery, s));
    }
    if (!ok) continue;
    response.SpecificCharacterSet = 'ISO_IR 192';
    results.push(response);
  }
  return results;
}
