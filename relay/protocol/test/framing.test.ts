import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../src/codes.js';
import { encodeStreamFrame, StreamFrameReader } from '../src/framing.js';

describe('stream framing (WebTransport)', () => {
  it('round-trips frames split at arbitrary chunk boundaries', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 10 }),
        (payloads, cuts) => {
          const wire = new Uint8Array(payloads.reduce((n, p) => n + 4 + p.length, 0));
          let o = 0;
          for (const p of payloads) {
            const f = encodeStreamFrame(p);
            wire.set(f, o);
            o += f.length;
          }
          const reader = new StreamFrameReader(1024);
          const out: Uint8Array[] = [];
          let i = 0;
          let c = 0;
          while (i < wire.length) {
            const step = cuts[c++ % cuts.length]!;
            out.push(...reader.push(wire.subarray(i, i + step)));
            i += step;
          }
          expect(out.map((b) => [...b])).toEqual(payloads.map((b) => [...b]));
          expect(reader.pendingBytes).toBe(0);
        },
      ),
    );
  });

  it('refuses an oversized declared length before buffering the payload', () => {
    const reader = new StreamFrameReader(1000);
    const header = new Uint8Array([0xff, 0xff, 0xff, 0xff]);
    expect(() => reader.push(header)).toThrow(ProtocolError);
    try {
      new StreamFrameReader(1000).push(header);
    } catch (err) {
      expect((err as ProtocolError).code).toBe('too_large');
    }
  });

  it('accepts a frame of exactly the limit and an empty frame', () => {
    const reader = new StreamFrameReader(8);
    expect(reader.push(encodeStreamFrame(new Uint8Array(8)))).toHaveLength(1);
    expect(reader.push(encodeStreamFrame(new Uint8Array(0)))[0]).toHaveLength(0);
  });
});
