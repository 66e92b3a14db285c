import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../src/codes.js';
import { COMMAND_NAMES, isCommandName, validateCommandArgs } from '../src/commands.js';

const add = {
  accession: 'ACC20261124001',
  patientId: '9434765919',
  patientName: 'SMITH^JANE',
  birthDate: '19680312',
  sex: 'F',
  stationAet: 'MAMMO1',
  scheduledAt: '2026-11-24T09:30:00Z',
};

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return (err as ProtocolError).field;
  }
  return undefined;
}

describe('gateway command args', () => {
  it('knows the five v1 commands', () => {
    expect([...COMMAND_NAMES].sort()).toEqual([
      'echo',
      'pacs.find',
      'pacs.retrieve',
      'worklist.add',
      'worklist.cancel',
    ]);
    expect(isCommandName('worklist.add')).toBe(true);
    expect(isCommandName('shell')).toBe(false);
  });
  it('accepts valid worklist.add args, with and without optional fields', () => {
    expect(validateCommandArgs('worklist.add', add)).toBe(add);
    const full = { ...add, procedure: 'Screening mammography', studyInstanceUid: '2.25.1234567890' };
    expect(validateCommandArgs('worklist.add', full)).toBe(full);
  });
  it('enforces DICOM value limits', () => {
    expect(fieldOf(() => validateCommandArgs('worklist.add', { ...add, accession: 'A'.repeat(17) }))).toBe(
      'args.accession',
    );
    expect(fieldOf(() => validateCommandArgs('worklist.add', { ...add, accession: 'A\\B' }))).toBe('args.accession');
    expect(fieldOf(() => validateCommandArgs('worklist.add', { ...add, birthDate: '1968-03-12' }))).toBe(
      'args.birthDate',
    );
    expect(fieldOf(() => validateCommandArgs('worklist.add', { ...add, sex: 'X' }))).toBe('args.sex');
    expect(fieldOf(() => validateCommandArgs('worklist.add', { ...add, stationAet: '   ' }))).toBe('args.stationAet');
    expect(fieldOf(() => validateCommandArgs('worklist.add', { ...add, patientName: 'SMITH^JANE\\X' }))).toBe(
      'args.patientName',
    );
    expect(fieldOf(() => validateCommandArgs('worklist.add', { ...add, scheduledAt: '2026-11-24 09:30' }))).toBe(
      'args.scheduledAt',
    );
    expect(fieldOf(() => validateCommandArgs('worklist.add', { ...add, scheduledAt: '2026-13-45T99:99Z' }))).toBe(
      'args.scheduledAt',
    );
    expect(fieldOf(() => validateCommandArgs('worklist.add', { ...add, studyInstanceUid: '1.02.3' }))).toBe(
      'args.studyInstanceUid',
    );
  });
  it('rejects unknown and missing fields and non-objects', () => {
    expect(fieldOf(() => validateCommandArgs('worklist.add', { ...add, extra: 1 }))).toBe('args.extra');
    const { accession: _omit, ...missing } = add;
    expect(fieldOf(() => validateCommandArgs('worklist.add', missing))).toBe('args.accession');
    expect(fieldOf(() => validateCommandArgs('echo', ['MAMMO1']))).toBe('args.');
    expect(fieldOf(() => validateCommandArgs('echo', { aet: 5 }))).toBe('args.aet');
    expect(fieldOf(() => validateCommandArgs('shell' as 'echo', { aet: 'X' }))).toBe('cmd');
  });
  it('pacs.find needs at least one key; pacs.retrieve needs both', () => {
    expect(fieldOf(() => validateCommandArgs('pacs.find', {}))).toBe('args.');
    expect(validateCommandArgs('pacs.find', { accession: 'ACC1' })).toEqual({ accession: 'ACC1' });
    expect(fieldOf(() => validateCommandArgs('pacs.retrieve', { studyInstanceUid: '1.2.3' }))).toBe(
      'args.destinationAet',
    );
  });
});
