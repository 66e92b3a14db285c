/** The auto transport policy: WebTransport first, WebSocket after it fails to connect, WebTransport again later. */
import { expect, it } from 'vitest';
import { TransportSelector } from '../../src/link/transport-select.js';

function logger() {
  const lines: { level: string; obj: object; msg?: string }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => lines.push({ level, obj, ...(msg ? { msg } : {}) });
  return { lines, log: { info: at('info'), warn: at('warn') } as never };
}

it('auto: prefers WebTransport, remembers a failure for the retry period, then tries WebTransport again', () => {
  let now = 1_000_000;
  const { lines, log } = logger();
  const s = new TransportSelector('auto', () => now, log, 600_000);
  expect(s.next()).toBe('webtransport');
  expect(s.failedToConnect('websocket', 'closed with 1006')).toBe(false);
  expect(s.next()).toBe('webtransport');
  expect(s.failedToConnect('webtransport', 'closed with 1006')).toBe(true);
  expect(lines.at(-1)).toMatchObject({ level: 'warn', msg: expect.stringContaining('falling back to WebSocket') });
  expect(s.next()).toBe('websocket');
  now += 599_999;
  expect(s.next()).toBe('websocket');
  now += 1;
  expect(s.next()).toBe('webtransport');
  expect(lines.at(-1)).toMatchObject({ obj: { reason: 'auto: fallback period over, trying WebTransport again' } });
});

it('fixed modes never switch', () => {
  const { log } = logger();
  for (const mode of ['websocket', 'webtransport'] as const) {
    const s = new TransportSelector(mode, () => 0, log);
    expect(s.failedToConnect(mode, 'closed with 1006')).toBe(false);
    expect(s.next()).toBe(mode);
  }
});
