import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import dimse from 'dcmjs-dimse';
import { afterEach, describe, expect, it } from 'vitest';
import { dicomDate } from '../../src/dicom/dicom-time.js';
import { WorklistConflictError } from '../../src/dicom/index.js';
import { findscuWorklist } from '../helpers/dicom-peers.js';
import { addArgs, type Fixture, GATEWAY_AET, MODALITY_AET, startService } from './fixture.js';

type Ds = Record<string, unknown>;
const read = (file: string) => dimse.Dataset.fromFile(file)!.getElements() as Ds;
const pn = (v: unknown) => (Array.isArray(v) ? (v[0] as { Alphabetic?: string })?.Alphabetic : v);

let fx: Fixture | undefined;
afterEach(async () => {
  await fx?.cleanup();
  fx = undefined;
});

const today = dicomDate(Date.now());
const spsKeys = (extra: string[] = []) => [
  `ScheduledProcedureStepSequence[0].ScheduledStationAETitle=${MODALITY_AET}`,
  `ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=${today}`,
  'ScheduledProcedureStepSequence[0].Modality=MG',
  'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime',
  'ScheduledProcedureStepSequence[0].ScheduledProcedureStepID',
  ...extra,
];

describe('Modality Worklist SCP with dcmtk findscu -W', () => {
  it('returns an added item with every key asked (zero-length when unknown) and UTF-8 charset', async () => {
    fx = await startService();
    expect(await fx.svc.worklistAdd(addArgs('ACC0001'))).toEqual({ existing: false });
    const { result, files } = await findscuWorklist(fx.port, MODALITY_AET, GATEWAY_AET, [
      ...spsKeys(),
      'PatientName',
      'PatientID',
      'PatientBirthDate',
      'PatientSex',
      'AccessionNumber',
      'StudyInstanceUID',
      'RequestedProcedureID',
      'RequestedProcedureDescription',
      'ReferringPhysicianName',
      'IssuerOfPatientID',
      'PatientWeight',
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(files).toHaveLength(1);
    const ds = read(files[0]!);
    expect(ds.SpecificCharacterSet).toBe('ISO_IR 192');
    expect(pn(ds.PatientName)).toBe('SMITH^JANE');
    expect(ds.PatientID).toBe('9434765919');
    expect(ds.PatientBirthDate).toBe('19700101');
    expect(ds.AccessionNumber).toBe('ACC0001');
    expect(ds.RequestedProcedureID).toBe('ACC0001');
    expect(String(ds.StudyInstanceUID)).toMatch(/^2\.25\.\d+$/);
    expect(ds).toHaveProperty('PatientWeight'); // asked, unknown → present, zero-length
    expect(ds.PatientWeight ?? '').toBe('');
    const sps = (ds.ScheduledProcedureStepSequence as Ds[])[0]!;
    expect(sps.ScheduledStationAETitle).toBe(MODALITY_AET);
    expect(sps.ScheduledProcedureStepStartDate).toBe(today);
    expect(sps.ScheduledProcedureStepStartTime).toBe('100000');
    expect(sps.Modality).toBe('MG');
    // Not asked → not returned.
    expect(ds).not.toHaveProperty('IssuerOfAccessionNumberSequence');
    expect(fx.recorder.of('worklist.added')).toEqual([
      expect.objectContaining({
        subject: 'ACC0001',
        data: { stationAet: MODALITY_AET, scheduledAt: addArgs('X').scheduledAt },
      }),
    ]);
    // No patient data in events.
    expect(JSON.stringify(fx.recorder.events)).not.toMatch(/SMITH|9434765919|19700101/);
  });

  it('matches name and ID wildcards, date ranges, station and modality', async () => {
    fx = await startService();
    await fx.svc.worklistAdd(addArgs('ACC1', { patientName: 'SMITH^JANE', patientId: 'P100' }));
    await fx.svc.worklistAdd(addArgs('ACC2', { patientName: 'SMYTHE^ANN', patientId: 'P200' }));
    await fx.svc.worklistAdd(
      addArgs('ACC3', { patientName: 'JONES^MARY', patientId: 'P300', stationAet: 'OTHERUNIT' }),
    );
    const q = async (keys: string[]) => {
      const { result, files } = await findscuWorklist(fx!.port, MODALITY_AET, GATEWAY_AET, [
        ...(keys.some((k) => k.startsWith('AccessionNumber')) ? [] : ['AccessionNumber']),
        ...keys,
      ]);
      expect(result.code, result.stderr).toBe(0);
      return files.map((f) => read(f).AccessionNumber).sort();
    };
    const y = dicomDate(Date.now() - 86_400_000);
    const t = dicomDate(Date.now() + 86_400_000);
    const sps = 'ScheduledProcedureStepSequence[0]';
    const cases: [string, string[] | number][] = [
      ['PatientName=SM*', ['ACC1', 'ACC2']],
      ['PatientName=sm?the^*', ['ACC2']],
      ['PatientID=P?00', ['ACC1', 'ACC2', 'ACC3']],
      ['AccessionNumber=ACC3', ['ACC3']],
      [`${sps}.ScheduledStationAETitle=${MODALITY_AET}`, ['ACC1', 'ACC2']],
      [`${sps}.ScheduledProcedureStepStartDate=${y}-${t}`, 3],
      [`${sps}.ScheduledProcedureStepStartDate=${t}-`, []],
      [`${sps}.ScheduledProcedureStepStartDate=-${today}`, 3],
      [`${sps}.ScheduledProcedureStepStartDate=${y}`, []],
      [`${sps}.Modality=CT`, []],
      [`${sps}.ScheduledProcedureStepStartTime=0900-1100`, 3],
      [`${sps}.ScheduledProcedureStepStartTime=1100-`, []],
    ];
    // Concurrent associations, as several modalities polling at once.
    const results = await Promise.all(cases.map(([key]) => q([key])));
    cases.forEach(([key, expected], i) => {
      if (typeof expected === 'number') expect(results[i], key).toHaveLength(expected);
      else expect(results[i], key).toEqual(expected);
    });
  });

  it('is idempotent by accession: same → existing, different → conflict; cancel removes it', async () => {
    fx = await startService();
    await fx.svc.worklistAdd(addArgs('ACC9'));
    expect(await fx.svc.worklistAdd(addArgs('ACC9'))).toEqual({ existing: true });
    await expect(fx.svc.worklistAdd(addArgs('ACC9', { patientId: 'OTHER' }))).rejects.toBeInstanceOf(
      WorklistConflictError,
    );
    await expect(fx.svc.worklistAdd(addArgs('ACC9', { patientId: 'OTHER' }))).rejects.toMatchObject({
      reason: 'conflict',
      code: 'worklist_conflict',
    });
    expect(fx.recorder.of('worklist.added')).toHaveLength(1);
    expect(await fx.svc.worklistCancel({ accession: 'ACC9' })).toEqual({ existed: true });
    expect(await fx.svc.worklistCancel({ accession: 'ACC9' })).toEqual({ existed: false });
    expect(fx.recorder.of('worklist.cancelled')).toEqual([expect.objectContaining({ subject: 'ACC9' })]);
    const { files } = await findscuWorklist(fx.port, MODALITY_AET, GATEWAY_AET, ['AccessionNumber']);
    expect(files).toHaveLength(0);
  });

  it('persists across restarts with a stable StudyInstanceUID, in a private state dir', async () => {
    fx = await startService();
    await fx.svc.worklistAdd(addArgs('ACC5'));
    const uid1 = read(
      (await findscuWorklist(fx.port, MODALITY_AET, GATEWAY_AET, ['StudyInstanceUID'])).files[0]!,
    ).StudyInstanceUID;
    const dir = fx.stateDir;
    await fx.stop();
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'worklist.json'))).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(join(dir, 'worklist.json'), 'utf8')).items).toHaveLength(1);
    fx = await startService({}, dir);
    const uid2 = read(
      (await findscuWorklist(fx.port, MODALITY_AET, GATEWAY_AET, ['StudyInstanceUID'])).files[0]!,
    ).StudyInstanceUID;
    expect(uid2).toBe(uid1);
    expect(await fx.svc.worklistAdd(addArgs('ACC5'))).toEqual({ existing: true });
  });

  it('refuses associations from calling AEs that are not allowed, and a wrong called AE', async () => {
    fx = await startService();
    await fx.svc.worklistAdd(addArgs('ACC7'));
    const stranger = await findscuWorklist(fx.port, 'STRANGER', GATEWAY_AET, ['AccessionNumber']);
    expect(stranger.result.code).not.toBe(0);
    expect(stranger.result.stderr + stranger.result.stdout).toMatch(/Rejected|reject/i);
    expect(stranger.files).toHaveLength(0);
    const wrongCalled = await findscuWorklist(fx.port, MODALITY_AET, 'NOTME', ['AccessionNumber']);
    expect(wrongCalled.result.code).not.toBe(0);
    expect(wrongCalled.files).toHaveLength(0);
  });

  it('purges items after the retention period', async () => {
    let clock = Date.now();
    fx = await startService({ retentionMs: 60_000, now: () => clock });
    await fx.svc.worklistAdd(addArgs('ACC8'));
    clock += 59_000;
    await fx.svc.runRetention();
    expect((await findscuWorklist(fx.port, MODALITY_AET, GATEWAY_AET, ['AccessionNumber'])).files).toHaveLength(1);
    clock += 2_000;
    await fx.svc.runRetention();
    expect((await findscuWorklist(fx.port, MODALITY_AET, GATEWAY_AET, ['AccessionNumber'])).files).toHaveLength(0);
    expect(JSON.parse(await readFile(join(fx.stateDir, 'worklist.json'), 'utf8')).items).toEqual([]);
  });
});
