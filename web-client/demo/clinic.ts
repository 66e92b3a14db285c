/**
 * Today's clinic, as the demo manage app knows it: fictional participants with valid-format NHS numbers
 * (the 999 range is reserved for testing and never issued), appointment times, and the accession number each
 * "Send for scan" puts on the site's worklist.
 */
import type { WorklistAddArgs } from '@scanrelay/protocol';

export interface Participant {
  /** Accession number (DICOM SH, ≤ 16 characters); the board's key. */
  accession: string;
  site: string;
  nhsNumber: string;
  family: string;
  given: string;
  birthDate: string;
  sex: 'F';
  /** ISO 8601, today. */
  appointment: string;
  stationAet: string;
}

const NAMES: ReadonlyArray<[string, string, string]> = [
  ['SMITH', 'Jane', '19620314'],
  ['OKAFOR', 'Adaeze', '19580722'],
  ['NOWAK', 'Maria', '19650101'],
  ['PATEL', 'Priya', '19600930'],
  ['JONES', 'Carys', '19571111'],
  ['MURPHY', 'Siobhan', '19630405'],
];

/** NHS number check digit (modulus 11); undefined when the base digits cannot form a valid number. */
function nhsCheckDigit(nine: string): number | undefined {
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(nine[i]) * (10 - i);
  const check = 11 - (sum % 11);
  if (check === 11) return 0;
  if (check === 10) return undefined;
  return check;
}

/** The n-th valid test NHS number (999 range) from a seed. */
function nhsNumber(seed: number): string {
  for (let n = seed; ; n++) {
    const nine = `999${String(n % 1_000_000).padStart(6, '0')}`;
    const check = nhsCheckDigit(nine);
    if (check !== undefined) return `${nine}${check}`;
  }
}

/** Format as the NHS writes it: 999 123 4567. */
export function formatNhsNumber(n: string): string {
  return `${n.slice(0, 3)} ${n.slice(3, 6)} ${n.slice(6)}`;
}

export interface SiteInfo {
  site: string;
  /** Short code used in accession numbers (one capital letter). */
  code: string;
  /** AE title of the site's mammography unit. */
  stationAet: string;
}

/** Build today's list for each site: six participants 15 minutes apart from 09:00 local time. */
export function todaysClinic(sites: readonly SiteInfo[], now: Date = new Date()): Participant[] {
  const ymd =
    `${now.getFullYear() % 100}`.padStart(2, '0') +
    `${now.getMonth() + 1}`.padStart(2, '0') +
    `${now.getDate()}`.padStart(2, '0');
  const out: Participant[] = [];
  sites.forEach((s, si) => {
    // Each site gets the list in another order, so two sites' clinics do not look identical.
    const names = [...NAMES.slice((si * 3) % NAMES.length), ...NAMES.slice(0, (si * 3) % NAMES.length)];
    names.forEach(([family, given, birthDate], i) => {
      const at = new Date(now.getFullYear(), now.getMonth(), now.getDate(), 9, i * 15 + si * 5);
      out.push({
        accession: `${s.code}${ymd}${String(i + 1).padStart(3, '0')}`,
        site: s.site,
        nhsNumber: nhsNumber(100_000 + si * 1000 + i * 37),
        family,
        given,
        birthDate,
        sex: 'F',
        appointment: at.toISOString().replace(/\.\d+Z$/, 'Z'),
        stationAet: s.stationAet,
      });
    });
  });
  return out;
}

/** The `worklist.add` arguments for a participant. */
export function worklistArgs(p: Participant): WorklistAddArgs {
  return {
    accession: p.accession,
    patientId: p.nhsNumber,
    patientName: `${p.family}^${p.given.toUpperCase()}`,
    birthDate: p.birthDate,
    sex: p.sex,
    stationAet: p.stationAet,
    // The simulator (like a real unit) queries today's worklist; schedule for now so it is picked up.
    scheduledAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    procedure: 'Screening mammography',
  };
}
