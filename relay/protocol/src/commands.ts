/**
 * Gateway commands of v1: the `cmd` names a command token may carry and the exact `args` each accepts.
 * The manage app builds args with these types; the gateway validates them with `validateCommandArgs` and
 * rejects anything else. DICOM value limits are enforced here (AccessionNumber is SH: at most 16 characters).
 */
import { ProtocolError } from './codes.js';

export interface WorklistAddArgs {
  accession: string;
  patientId: string;
  /** DICOM person name, `FAMILY^GIVEN`. */
  patientName: string;
  /** YYYYMMDD */
  birthDate: string;
  sex: 'F' | 'M' | 'O';
  stationAet: string;
  /** ISO 8601 date-time of the appointment. */
  scheduledAt: string;
  procedure?: string;
  studyInstanceUid?: string;
}

export interface WorklistCancelArgs {
  accession: string;
}

export interface EchoArgs {
  aet: string;
}

export interface PacsFindArgs {
  patientId?: string;
  accession?: string;
  studyInstanceUid?: string;
}

export interface PacsRetrieveArgs {
  studyInstanceUid: string;
  destinationAet: string;
}

export interface CommandArgs {
  'worklist.add': WorklistAddArgs;
  'worklist.cancel': WorklistCancelArgs;
  echo: EchoArgs;
  'pacs.find': PacsFindArgs;
  'pacs.retrieve': PacsRetrieveArgs;
}

export type CommandName = keyof CommandArgs;
export const COMMAND_NAMES: readonly CommandName[] = [
  'worklist.add',
  'worklist.cancel',
  'echo',
  'pacs.find',
  'pacs.retrieve',
];

export function isCommandName(value: unknown): value is CommandName {
  return typeof value === 'string' && (COMMAND_NAMES as readonly string[]).includes(value);
}

// DICOM value representations, as patterns (no backslash: it is DICOM's value separator).
/** SH, e.g. AccessionNumber: 1–16 printable characters. */
export const SH_PATTERN = /^[ -[\]-~]{1,16}$/;
/** LO, e.g. PatientID: 1–64 printable characters. */
export const LO_PATTERN = /^[ -[\]-~]{1,64}$/;
/** AE title: 1–16 printable characters, not all spaces. */
export const AE_PATTERN = /^(?! *$)[ -[\]-~]{1,16}$/;
/** PN: up to five `^`-separated components, letters and common name punctuation. */
export const PN_PATTERN = /^[\p{L}\p{M} '.,-]{1,64}(\^[\p{L}\p{M} '.,-]{0,64}){0,4}$/u;
/** UI: dotted digits, at most 64 characters. */
export const UID_PATTERN = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/;
/** DA: YYYYMMDD. */
export const DA_PATTERN = /^(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])$/;
/** ISO 8601 date-time with an offset or Z. */
export const ISO_DATETIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

type ArgSpec = { pattern: RegExp; max: number; optional?: boolean; describe: string };

const ARG_SPECS: Record<CommandName, Record<string, ArgSpec>> = {
  'worklist.add': {
    accession: { pattern: SH_PATTERN, max: 16, describe: 'an accession number of 1–16 characters (DICOM SH)' },
    patientId: { pattern: LO_PATTERN, max: 64, describe: 'a patient id of 1–64 characters (DICOM LO)' },
    patientName: { pattern: PN_PATTERN, max: 324, describe: 'a DICOM person name such as SMITH^JANE' },
    birthDate: { pattern: DA_PATTERN, max: 8, describe: 'a date as YYYYMMDD' },
    sex: { pattern: /^[FMO]$/, max: 1, describe: 'F, M or O' },
    stationAet: { pattern: AE_PATTERN, max: 16, describe: 'an AE title of 1–16 characters' },
    scheduledAt: { pattern: ISO_DATETIME_PATTERN, max: 40, describe: 'an ISO 8601 date-time with a time zone' },
    procedure: { pattern: LO_PATTERN, max: 64, optional: true, describe: 'a description of 1–64 characters' },
    studyInstanceUid: { pattern: UID_PATTERN, max: 64, optional: true, describe: 'a DICOM UID (dotted digits)' },
  },
  'worklist.cancel': {
    accession: { pattern: SH_PATTERN, max: 16, describe: 'an accession number of 1–16 characters (DICOM SH)' },
  },
  echo: { aet: { pattern: AE_PATTERN, max: 16, describe: 'an AE title of 1–16 characters' } },
  'pacs.find': {
    patientId: { pattern: LO_PATTERN, max: 64, optional: true, describe: 'a patient id of 1–64 characters' },
    accession: { pattern: SH_PATTERN, max: 16, optional: true, describe: 'an accession number of 1–16 characters' },
    studyInstanceUid: { pattern: UID_PATTERN, max: 64, optional: true, describe: 'a DICOM UID (dotted digits)' },
  },
  'pacs.retrieve': {
    studyInstanceUid: { pattern: UID_PATTERN, max: 64, describe: 'a DICOM UID (dotted digits)' },
    destinationAet: { pattern: AE_PATTERN, max: 16, describe: 'an AE title of 1–16 characters' },
  },
};

function bad(field: string, what: string): never {
  throw new ProtocolError('bad_message', `args.${field} ${what}`, `args.${field}`);
}

/**
 * Validate a command's `args` for its `cmd`. Returns them typed, or throws `ProtocolError('bad_message')`
 * naming the field. Unknown fields are refused.
 */
export function validateCommandArgs<C extends CommandName>(cmd: C, args: unknown): CommandArgs[C] {
  const specs = ARG_SPECS[cmd];
  if (!specs) throw new ProtocolError('bad_message', `unknown command "${String(cmd).slice(0, 32)}"`, 'cmd');
  if (
    typeof args !== 'object' ||
    args === null ||
    Array.isArray(args) ||
    Object.getPrototypeOf(args) !== Object.prototype
  )
    bad('', 'must be an object');
  const record = args as Record<string, unknown>;
  for (const key of Object.keys(record)) if (!Object.hasOwn(specs, key)) bad(key, `is not an argument of ${cmd}`);
  for (const [key, spec] of Object.entries(specs)) {
    const v = record[key];
    if (v === undefined) {
      if (!spec.optional) bad(key, 'is required');
      continue;
    }
    if (typeof v !== 'string' || v.length > spec.max || !spec.pattern.test(v)) bad(key, `must be ${spec.describe}`);
  }
  if (cmd === 'worklist.add' && Number.isNaN(Date.parse(record.scheduledAt as string)))
    bad('scheduledAt', 'is not a real date-time');
  if (cmd === 'pacs.find' && Object.keys(record).length === 0)
    bad('', 'must name at least one of patientId, accession, studyInstanceUid');
  return record as unknown as CommandArgs[C];
}
