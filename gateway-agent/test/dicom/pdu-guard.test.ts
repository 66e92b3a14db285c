import { describe, expect, it } from 'vitest';
import { PduLengthGuard } from '../../src/dicom/pdu-guard.js';

const pdu = (type: number, length: number, body = length) => {
  const b = Buffer.alloc(6 + body);
  b[0] = type;
  b.writeUInt32BE(length, 2);
  return b;
};

/** A P-DATA-TF PDU with one PDV of `size` data bytes. */
const pdata = (pcid: number, command: boolean, last: boolean, size: number) => {
  const pdv = Buffer.alloc(6 + size);
  pdv.writeUInt32BE(size + 2, 0);
  pdv[4] = pcid;
  pdv[5] = (command ? 1 : 0) | (last ? 2 : 0);
  return Buffer.concat([pdu(4, pdv.length, 0), pdv]);
};

const feedAll = (g: PduLengthGuard, data: Buffer, step = 7) => {
  for (let i = 0; i < data.length; i += step) {
    const why = g.feed(data.subarray(i, i + step));
    if (why) return why;
  }
  return undefined;
};

describe('PduLengthGuard', () => {
  it('follows PDU framing across arbitrary chunk boundaries', () => {
    const g = new PduLengthGuard(100);
    expect(feedAll(g, Buffer.concat([pdu(1, 50), pdu(5, 100), pdu(6, 10)]))).toBeUndefined();
  });

  it('reports the first PDU over the limit, even when its header is split', () => {
    const g = new PduLengthGuard(100);
    expect(g.feed(pdu(1, 20))).toBeUndefined();
    const big = pdu(4, 101, 0);
    expect(g.feed(big.subarray(0, 3))).toBeUndefined();
    expect(g.feed(big.subarray(3))).toMatch(/101 bytes/);
  });

  it('applies a raised limit after the association', () => {
    const g = new PduLengthGuard(100);
    expect(g.feed(pdu(1, 80))).toBeUndefined();
    g.setLimit(1000);
    expect(g.feed(pdu(5, 900))).toBeUndefined();
    expect(g.feed(pdu(4, 1001, 0))).toMatch(/1001/);
  });

  it('caps an in-memory dataset across PDUs, resets after its last fragment, ignores streamed contexts', () => {
    const g = new PduLengthGuard(10_000, { maxDatasetBytes: 20_000, isStreamed: (pc) => pc === 3 });
    // 3 × 6 kB then the last fragment: 24 kB in one message → over.
    const frags = [pdata(1, true, true, 100), pdata(1, false, false, 6000), pdata(1, false, false, 6000)];
    expect(feedAll(g, Buffer.concat(frags), 1000)).toBeUndefined();
    expect(feedAll(g, Buffer.concat([pdata(1, false, false, 6000), pdata(1, false, true, 6000)]), 1000)).toMatch(
      /dataset/,
    );

    const ok = new PduLengthGuard(10_000, { maxDatasetBytes: 20_000, isStreamed: (pc) => pc === 3 });
    // Two messages of 12 kB each: each under the cap.
    for (let m = 0; m < 2; m++)
      expect(
        feedAll(
          ok,
          Buffer.concat([pdata(1, true, true, 50), pdata(1, false, false, 6000), pdata(1, false, true, 6000)]),
          333,
        ),
      ).toBeUndefined();
    // Storage context: 50 kB passes (it goes to disk).
    const store = Array.from({ length: 10 }, (_, i) => pdata(3, false, i === 9, 5000));
    expect(feedAll(ok, Buffer.concat(store), 4096)).toBeUndefined();
  });
});
