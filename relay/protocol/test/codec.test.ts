import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chooseSubprotocol,
  codecForSubprotocol,
  decodeFrame,
  encodeMessage,
  SUBPROTOCOLS,
  utf8Length,
} from '../src/codec.js';
import { ProtocolError } from '../src/codes.js';
import { validateMessage } from '../src/schema.js';

const MAX = 64 * 1024;

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProtocolError) return err.code;
    throw err;
  }
  return undefined;
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

const bytes = (...b: number[]) => new Uint8Array(b);
const str8 = (s: string) => [0xa0 | s.length, ...new TextEncoder().encode(s)];

describe('subprotocol negotiation', () => {
  it('prefers msgpack, accepts json, answers only fixed names', () => {
    expect(chooseSubprotocol(['scanrelay.v1.json', 'scanrelay.v1.msgpack'])).toBe(SUBPROTOCOLS.msgpack);
    expect(chooseSubprotocol([' scanrelay.v1.json '])).toBe(SUBPROTOCOLS.json);
    expect(chooseSubprotocol(['chat', 'scanrelay.v2.json'])).toBeUndefined();
    expect(chooseSubprotocol([])).toBeUndefined();
    expect(codecForSubprotocol('scanrelay.v1.msgpack')).toBe('msgpack');
    expect(codecForSubprotocol('scanrelay.v1.json')).toBe('json');
    expect(codecForSubprotocol('')).toBeUndefined();
  });
});

describe('round trips', () => {
  const msg = {
    type: 'event',
    site: 'site-a',
    position: 'ab12-7',
    gateway: 'gw-1',
    seq: 7,
    kind: 'images.received',
    subject: 'ACC0001',
    at: 1_795_000_000_123,
    data: { count: 3, nested: { ok: true, list: [1, 'two', null] } },
  };
  for (const codec of ['json', 'msgpack'] as const) {
    it(`${codec}: encode → decode → validate gives the same message`, () => {
      const frame = encodeMessage(codec, msg);
      expect(typeof frame === 'string').toBe(codec === 'json');
      const decoded = decodeFrame(codec, frame, codec === 'msgpack', MAX);
      expect(validateMessage('relay→browser', decoded)).toEqual(msg);
    });
  }
  it('json accepts text given as UTF-8 bytes', () => {
    const text = JSON.stringify({ type: 'ping', ref: 'é' });
    expect(decodeFrame('json', new TextEncoder().encode(text), false, MAX)).toEqual({ type: 'ping', ref: 'é' });
  });
});

describe('size and framing', () => {
  it('refuses frames over the limit before decoding (too_large)', () => {
    expect(codeOf(() => decodeFrame('json', 'x'.repeat(MAX + 1), false, MAX))).toBe('too_large');
    expect(codeOf(() => decodeFrame('msgpack', new Uint8Array(MAX + 1), true, MAX))).toBe('too_large');
    // Multi-byte characters count as bytes, not characters.
    expect(codeOf(() => decodeFrame('json', 'é'.repeat(MAX / 2 + 1), false, MAX))).toBe('too_large');
  });
  it('counts UTF-8 bytes exactly', () => {
    for (const s of ['', 'abc', 'é', '€', '😀', 'a😀é€'])
      expect(utf8Length(s)).toBe(new TextEncoder().encode(s).length);
  });
  it('refuses the wrong frame type for the codec', () => {
    expect(codeOf(() => decodeFrame('json', new Uint8Array([0x7b, 0x7d]), true, MAX))).toBe('bad_message');
    expect(codeOf(() => decodeFrame('msgpack', '{}', false, MAX))).toBe('bad_message');
  });
  it('refuses invalid UTF-8, invalid JSON and empty msgpack frames', () => {
    expect(codeOf(() => decodeFrame('json', bytes(0xff, 0xfe), false, MAX))).toBe('bad_message');
    expect(codeOf(() => decodeFrame('json', '{"type":', false, MAX))).toBe('bad_message');
    expect(codeOf(() => decodeFrame('msgpack', new Uint8Array(0), true, MAX))).toBe('bad_message');
  });
});

describe('hardened msgpack (SECURITY.md case 32)', () => {
  it('refuses trailing bytes after the message', () => {
    const frame = encodeMessage('msgpack', { type: 'ping' }) as Uint8Array;
    expect(codeOf(() => decodeFrame('msgpack', new Uint8Array([...frame, 0x01]), true, MAX))).toBe('bad_message');
  });
  it('survives 60,000 nested arrays without crashing', () => {
    expect(codeOf(() => decodeFrame('msgpack', new Uint8Array(60_000).fill(0x91), true, MAX))).toBe('bad_message');
  });
  it('refuses an array header claiming 2^32−1 elements without allocating them', () => {
    const before = process.memoryUsage().rss;
    expect(codeOf(() => decodeFrame('msgpack', bytes(0xdd, 0xff, 0xff, 0xff, 0xff), true, MAX))).toBe('bad_message');
    expect(codeOf(() => decodeFrame('msgpack', bytes(0xdf, 0xff, 0xff, 0xff, 0xff), true, MAX))).toBe('bad_message');
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
  });
  it('refuses every built-in extension type (Date, Set, RegExp, Error, BigInt, typed arrays, undefined)', () => {
    for (const type of [0x00, 0x42, 0x62, 0x65, 0x69, 0x70, 0x73, 0x74, 0x78, 0xff]) {
      // fixext 4 with the type, then 4 payload bytes, inside a map {"type": <ext>}
      const frame = bytes(0x81, ...str8('type'), 0xd6, type, 0, 0, 0, 1);
      expect(messageOf(() => decodeFrame('msgpack', frame, true, MAX))).toMatch(/extension|not valid msgpack/);
    }
  });
  it('turns 64-bit integers into strings, which schemas then refuse', () => {
    const frame = bytes(
      0x83,
      ...str8('type'),
      ...str8('event.ack'),
      ...str8('seq'),
      0xcf,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0x00,
    );
    // map of 3 declared but only 2 pairs + trailing 0x00 → invalid
    expect(codeOf(() => decodeFrame('msgpack', frame, true, MAX))).toBe('bad_message');
    const ok = bytes(
      0x82,
      ...str8('type'),
      ...str8('event.ack'),
      ...str8('seq'),
      0xcf,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
    );
    const decoded = decodeFrame('msgpack', ok, true, MAX) as { seq: unknown };
    expect(typeof decoded.seq).toBe('string');
    expect(messageOf(() => validateMessage('relay→gateway', decoded))).toMatch(/"seq" must be an integer/);
  });
  it('never lets __proto__ reach a prototype, and the schema refuses the key', () => {
    const frame = bytes(
      0x82,
      ...str8('type'),
      ...str8('ping'),
      0xa9,
      ...new TextEncoder().encode('__proto__'),
      0x81,
      ...str8('polluted'),
      0xc3,
    );
    const decoded = decodeFrame('msgpack', frame, true, MAX) as Record<string, unknown>;
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(codeOf(() => validateMessage('browser→relay', decoded))).toBe('bad_message');
  });
  it('does not echo decoded bytes in its error text', () => {
    const secret = 'SECRET-PATIENT-NAME';
    const frame = new Uint8Array([...(encodeMessage('msgpack', { type: 'ping', ref: secret }) as Uint8Array), 0xc1]);
    expect(messageOf(() => decodeFrame('msgpack', frame, true, MAX))).not.toContain(secret);
  });
});

describe('fuzz: decoders and validators never throw anything but ProtocolError', () => {
  const directions = ['browser→relay', 'gateway→relay', 'relay→browser', 'relay→gateway'] as const;
  it('random bytes through msgpack', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (data) => {
        try {
          const v = decodeFrame('msgpack', data, true, MAX);
          for (const d of directions) {
            try {
              validateMessage(d, v);
            } catch (err) {
              if (!(err instanceof ProtocolError)) throw err;
            }
          }
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
        }
      }),
      { numRuns: 3000 },
    );
  });
  it('random JSON-ish values through every schema', () => {
    const arb = fc.oneof(
      fc.jsonValue(),
      fc.record(
        {
          type: fc.constantFrom('hello', 'event', 'command', 'subscribe', 'command.status', 'auth'),
          seq: fc.anything(),
          token: fc.anything(),
          data: fc.anything(),
          site: fc.string(),
        },
        { requiredKeys: ['type'] },
      ),
    );
    fc.assert(
      fc.property(arb, (value) => {
        for (const d of directions) {
          try {
            validateMessage(d, value);
          } catch (err) {
            if (!(err instanceof ProtocolError)) throw err;
          }
        }
        const text = JSON.stringify(value) ?? 'null';
        try {
          decodeFrame('json', text, false, MAX);
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
        }
      }),
      { numRuns: 3000 },
    );
  });
});
