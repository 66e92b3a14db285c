import { describe, expect, it } from 'vitest';
import { CODES, closeAction, codeForClose, ERROR_CODES, isErrorCode, ProtocolError } from '../src/codes.js';

describe('codes table', () => {
  it('lists exactly the thirteen v1 error codes', () => {
    expect([...ERROR_CODES].sort()).toEqual(
      [
        'bad_message',
        'too_large',
        'unauthenticated',
        'token_expired',
        'forbidden',
        'unknown_site',
        'rate_limited',
        'gateway_offline',
        'replaced',
        'revoked',
        'slow_consumer',
        'shutting_down',
        'internal',
      ].sort(),
    );
  });

  // The contract: code ↔ close code ↔ what the client does next. A change here is a protocol change.
  const expected: Record<string, [number, 'reconnect' | 'stop']> = {
    bad_message: [4500, 'stop'],
    too_large: [1009, 'stop'],
    unauthenticated: [4501, 'stop'],
    token_expired: [4502, 'stop'],
    forbidden: [4503, 'stop'],
    unknown_site: [4504, 'stop'],
    replaced: [4505, 'stop'],
    revoked: [4506, 'stop'],
    internal: [4000, 'reconnect'],
    rate_limited: [4001, 'reconnect'],
    slow_consumer: [4002, 'reconnect'],
    gateway_offline: [4003, 'reconnect'],
    shutting_down: [1001, 'reconnect'],
  };

  for (const code of ERROR_CODES) {
    it(`${code} closes with ${expected[code]?.[0]} and means ${expected[code]?.[1]}`, () => {
      const info = CODES[code];
      expect([info.closeCode, info.action]).toEqual(expected[code]);
      expect(info.message.length).toBeGreaterThan(10);
      // The close code's range agrees with the action a generic client derives from it.
      expect(closeAction(info.closeCode)).toBe(info.action);
      expect(codeForClose(info.closeCode)).toBe(code);
    });
  }

  it('close codes are unique', () => {
    const closes = ERROR_CODES.map((c) => CODES[c].closeCode);
    expect(new Set(closes).size).toBe(closes.length);
  });

  it('derives actions for close codes that are not ours', () => {
    expect(closeAction(1000)).toBe('reconnect');
    expect(closeAction(1006)).toBe('reconnect');
    expect(closeAction(1011)).toBe('reconnect');
    expect(closeAction(1008)).toBe('stop');
    expect(closeAction(4499)).toBe('reconnect');
    expect(closeAction(4999)).toBe('stop');
    expect(codeForClose(1000)).toBeUndefined();
  });

  it('ProtocolError carries code, default message and field', () => {
    const e = new ProtocolError('bad_message', undefined, 'seq');
    expect(e.code).toBe('bad_message');
    expect(e.message).toBe(CODES.bad_message.message);
    expect(e.field).toBe('seq');
    expect(isErrorCode('bad_message')).toBe(true);
    expect(isErrorCode('nope')).toBe(false);
    expect(isErrorCode(42)).toBe(false);
  });
});
