/**
 * The clinic board's view model, kept free of the DOM so it can be tested in Node: how site events and a
 * command's statuses move one participant's row along
 *
 * ```
 *  ready → sending → sent → on worklist → scanning (images n) → completed (n images) | discontinued (reason)
 *                      └──────────→ failed (reason)   (rejected, failed, expired, or refused by the relay)
 * ```
 *
 * Rows only move forward (an older event replayed after a newer snapshot cannot pull a row back).
 */
import type { JsonObject } from '@scanrelay/protocol';
import type { CommandResult, CommandStatus } from '../src/index.js';

export type Phase = 'ready' | 'sending' | 'sent' | 'on-worklist' | 'scanning' | 'completed' | 'discontinued' | 'failed';

export interface RowState {
  phase: Phase;
  /** Images received so far (scanning) or in the finished study (completed). */
  images: number;
  /** Why it failed or was discontinued; the command's last state while sent. */
  detail: string;
  /** Storage commitment confirmed. */
  committed: boolean;
}

export const INITIAL_ROW: Readonly<RowState> = Object.freeze({
  phase: 'ready',
  images: 0,
  detail: '',
  committed: false,
});

const RANK: Record<Phase, number> = {
  ready: 0,
  failed: 1,
  sending: 1,
  sent: 2,
  'on-worklist': 3,
  scanning: 4,
  completed: 5,
  discontinued: 5,
};

function num(data: JsonObject, key: string): number | undefined {
  const v = data[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function str(data: JsonObject | undefined, key: string): string | undefined {
  const v = data?.[key];
  return typeof v === 'string' ? v : undefined;
}

function advance(row: RowState, next: Partial<RowState> & { phase: Phase }): RowState {
  if (RANK[next.phase] < RANK[row.phase]) return row;
  return { ...row, ...next };
}

/** Apply a site event (or a snapshot entry: same kind and data) about this participant. */
export function applyEvent(row: RowState, kind: string, data: JsonObject): RowState {
  switch (kind) {
    case 'worklist.added':
      return advance(row, { phase: 'on-worklist', detail: '' });
    case 'worklist.cancelled':
      // A cancel is the one way back: the participant can be sent again.
      return { ...INITIAL_ROW, detail: 'removed from the worklist' };
    case 'procedure.started':
      return advance(row, { phase: 'scanning', detail: '' });
    case 'images.received': {
      const count = num(data, 'count') ?? row.images;
      if (row.phase === 'scanning') return { ...row, images: Math.max(row.images, count) };
      return advance(row, { phase: 'scanning', images: count });
    }
    case 'procedure.completed':
      return advance(row, { phase: 'completed', images: num(data, 'images') ?? row.images, detail: '' });
    case 'procedure.discontinued':
      return advance(row, {
        phase: 'discontinued',
        images: num(data, 'images') ?? row.images,
        detail: str(data, 'reason') ?? 'no reason given',
      });
    case 'storage.committed': {
      const committed = num(data, 'committed') ?? 0;
      const failed = num(data, 'failed') ?? 0;
      if (row.phase === 'discontinued') return { ...row, committed: failed === 0 };
      return advance(row, { phase: 'completed', images: Math.max(row.images, committed), committed: failed === 0 });
    }
    default:
      return row;
  }
}

const SENT_WORDS: Partial<Record<string, string>> = {
  accepted: 'accepted by the relay',
  queued: 'waiting for the gateway (offline)',
  delivered: 'delivered to the gateway',
  verified: 'signature verified by the gateway',
  running: 'being added to the worklist',
};

/** Apply one status of the participant's `worklist.add` command. */
export function applyCommandStatus(row: RowState, status: CommandStatus): RowState {
  if (status.state === 'completed') return advance(row, { phase: 'on-worklist', detail: '' });
  if (status.state === 'rejected' || status.state === 'failed' || status.state === 'expired') {
    if (RANK[row.phase] > RANK.sent) return row;
    const reason = str(status.detail, 'message') ?? str(status.detail, 'reason') ?? status.state;
    return { ...row, phase: 'failed', detail: `${status.state}: ${reason}` };
  }
  const words = SENT_WORDS[status.state];
  if (!words) return row;
  return advance(row, { phase: 'sent', detail: words });
}

/** The relay refused the command outright, or the page could not get a token. */
export function applyCommandError(row: RowState, result: CommandResult | { message: string }): RowState {
  if (RANK[row.phase] > RANK.sent) return row;
  const message =
    'error' in result && result.error
      ? `${result.error.code}: ${result.error.message}`
      : 'message' in result
        ? result.message
        : 'error';
  return { ...row, phase: 'failed', detail: message };
}

export interface RowView {
  label: string;
  detail: string;
  tone: 'ok' | 'warn' | 'bad' | 'info' | '';
  /** Whether "Send for scan" is offered. */
  canSend: boolean;
}

export function describeRow(row: RowState): RowView {
  switch (row.phase) {
    case 'ready':
      return { label: 'Not sent', detail: row.detail, tone: '', canSend: true };
    case 'sending':
      return { label: 'Sending…', detail: '', tone: 'info', canSend: false };
    case 'sent':
      return { label: 'Sent', detail: row.detail, tone: 'info', canSend: false };
    case 'on-worklist':
      return { label: 'On worklist', detail: 'waiting for the unit', tone: 'info', canSend: false };
    case 'scanning':
      return {
        label: 'Scanning',
        detail: `${row.images} image${row.images === 1 ? '' : 's'} received`,
        tone: 'warn',
        canSend: false,
      };
    case 'completed':
      return {
        label: 'Completed',
        detail: `${row.images} image${row.images === 1 ? '' : 's'}${row.committed ? ', stored' : ''}`,
        tone: 'ok',
        canSend: false,
      };
    case 'discontinued':
      return { label: 'Discontinued', detail: row.detail, tone: 'bad', canSend: false };
    case 'failed':
      return { label: 'Failed', detail: row.detail, tone: 'bad', canSend: true };
  }
}
