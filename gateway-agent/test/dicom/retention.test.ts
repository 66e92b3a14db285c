import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { endOfClinicDay } from '../../src/dicom/dicom-time.js';
import { WorklistStore } from '../../src/dicom/worklist-store.js';
import { tempDir } from '../helpers/dicom-peers.js';
import { addArgs } from './fixture.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const at = (day: number, hour: number, minute = 0) => new Date(2026, 0, day, hour, minute).getTime();

describe('retention default: the end of the clinic day', () => {
  it('ends the day at the configured hour, or the next day once past it', () => {
    expect(endOfClinicDay(at(10, 9))).toBe(new Date(2026, 0, 10, 23, 59, 59, 999).getTime());
    expect(endOfClinicDay(at(10, 9), 18)).toBe(new Date(2026, 0, 10, 18, 59, 59, 999).getTime());
    expect(endOfClinicDay(at(10, 19), 18)).toBe(new Date(2026, 0, 11, 18, 59, 59, 999).getTime());
  });

  it('keeps an item booked for a later day until the end of that day', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    let now = at(10, 9);
    const store = new WorklistStore({ stateDir: dir, now: () => now });
    await store.add(addArgs('TODAY1', { scheduledAt: new Date(at(10, 11)).toISOString() }));
    await store.add(addArgs('LATER1', { scheduledAt: new Date(at(11, 11)).toISOString() }));
    now = at(11, 0, 1);
    expect(await store.purgeExpired()).toEqual(['TODAY1']);
    now = at(12, 0, 1);
    expect(await store.purgeExpired()).toEqual(['LATER1']);
  });
});
