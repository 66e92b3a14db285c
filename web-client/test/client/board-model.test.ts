/** The demo board's view model: how events and command statuses move a participant's row. */
import { describe, expect, it } from 'vitest';
import {
  applyCommandError,
  applyCommandStatus,
  applyEvent,
  describeRow,
  INITIAL_ROW,
  type RowState,
} from '../../demo/board-model.js';

const fold = (row: RowState, steps: Array<[string, Record<string, number | string>]>) =>
  steps.reduce((r, [kind, data]) => applyEvent(r, kind, data), row);

describe('board model', () => {
  it('walks sent → on worklist → scanning with images → completed', () => {
    let row = applyCommandStatus(INITIAL_ROW, { command: 'c', state: 'accepted' });
    expect(row.phase).toBe('sent');
    row = applyCommandStatus(row, { command: 'c', state: 'completed' });
    expect(row.phase).toBe('on-worklist');
    row = fold(row, [
      ['procedure.started', {}],
      ['images.received', { count: 1 }],
      ['images.received', { count: 2 }],
    ]);
    expect(row).toMatchObject({ phase: 'scanning', images: 2 });
    expect(describeRow(row).detail).toBe('2 images received');
    row = fold(row, [
      ['procedure.completed', { images: 2 }],
      ['storage.committed', { committed: 2, failed: 0 }],
    ]);
    expect(row).toMatchObject({ phase: 'completed', images: 2, committed: true });
    expect(describeRow(row)).toMatchObject({ label: 'Completed', detail: '2 images, stored', canSend: false });
  });

  it('never moves backwards when an older event arrives after a newer one', () => {
    const done = fold(INITIAL_ROW, [['procedure.completed', { images: 4 }]]);
    expect(
      fold(done, [
        ['procedure.started', {}],
        ['worklist.added', {}],
      ]),
    ).toEqual(done);
    expect(applyCommandStatus(done, { command: 'c', state: 'failed' })).toEqual(done);
  });

  it('shows the reason of a rejection, a discontinuation, or a refusal by the relay; failed rows can be resent', () => {
    const rejected = applyCommandStatus(INITIAL_ROW, {
      command: 'c',
      state: 'rejected',
      detail: { reason: 'conflict', message: 'already on the worklist with different details' },
    });
    expect(rejected.phase).toBe('failed');
    expect(describeRow(rejected)).toMatchObject({ canSend: true });
    expect(rejected.detail).toContain('different details');
    const stopped = fold(INITIAL_ROW, [['procedure.discontinued', { images: 1, reason: 'patient unwell' }]]);
    expect(describeRow(stopped)).toMatchObject({ label: 'Discontinued', detail: 'patient unwell' });
    expect(applyCommandError(INITIAL_ROW, { message: 'no gateway' }).detail).toBe('no gateway');
  });
});
