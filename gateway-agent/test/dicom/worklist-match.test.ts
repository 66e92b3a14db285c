import { describe, expect, it } from 'vitest';
import { matchValue, matchWorklist } from '../../src/dicom/worklist-match.js';
import type { WorklistItem } from '../../src/dicom/worklist-store.js';

const item = (accession: string, patientName: string, scheduledAt: string): WorklistItem => ({
  accession,
  patientId: `ID-${accession}`,
  patientName,
  birthDate: '19700101',
  sex: 'F',
  stationAet: 'HOLOGIC1',
  scheduledAt,
  studyInstanceUid: `1.2.3.${accession.length}`,
  studyUidGenerated: true,
  addedAt: 0,
  expiresAt: 0,
});

describe('worklist matching rules', () => {
  it('wildcards are literal apart from * and ?; names ignore case, IDs do not', () => {
    expect(matchValue('PN', 'O.BRIEN*', "O'BRIEN^ANN")).toBe(false);
    expect(matchValue('PN', 'o?brien*', "O'BRIEN^ANN")).toBe(true);
    expect(matchValue(undefined, 'ab*', 'ABC')).toBe(false);
    expect(matchValue(undefined, 'A(B*', 'A(BC')).toBe(true);
    expect(matchValue('PN', 'SMITH^JANE^', 'SMITH^JANE')).toBe(true);
  });

  it('ranges on dates and times, UID lists', () => {
    expect(matchValue('DA', '20260101-20260131', '20260115')).toBe(true);
    expect(matchValue('DA', '20260101-20260131', '20260201')).toBe(false);
    expect(matchValue('DA', '-20260101', '20251231')).toBe(true);
    expect(matchValue('DA', '20260102-', '20260101')).toBe(false);
    expect(matchValue('TM', '0900-1000', '093000')).toBe(true);
    expect(matchValue('TM', '0900-1000', '100059')).toBe(true);
    expect(matchValue('TM', '0900-1000', '100100')).toBe(false);
    expect(matchValue('UI', '1.2\\1.3', '1.3')).toBe(true);
    expect(matchValue('UI', '1.2\\1.3', '1.4')).toBe(false);
  });

  it('returns only the keys asked, sequences with only the matching steps and asked sub-keys', () => {
    const items = [item('A1', 'SMITH^JANE', '2026-01-01T10:00:00Z'), item('A22', 'JONES^MARY', '2026-01-01T10:00:00Z')];
    const res = matchWorklist(
      {
        PatientName: [{ Alphabetic: 'SMITH*' }],
        AccessionNumber: '',
        OtherPatientIDs: '',
        ScheduledProcedureStepSequence: [{ Modality: 'MG', ScheduledProcedureStepID: '' }],
      },
      items,
    );
    expect(res).toEqual([
      {
        PatientName: 'SMITH^JANE',
        AccessionNumber: 'A1',
        OtherPatientIDs: '',
        ScheduledProcedureStepSequence: [{ Modality: 'MG', ScheduledProcedureStepID: 'A1' }],
        SpecificCharacterSet: 'ISO_IR 192',
      },
    ]);
    expect(matchWorklist({ ScheduledProcedureStepSequence: [{ Modality: 'CT' }] }, items)).toEqual([]);
  });
});
