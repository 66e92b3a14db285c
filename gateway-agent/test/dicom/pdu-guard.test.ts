import { describe, expect, it } from 'vitest';
import { PduLengthGuard } from '../../src/dicom/pdu-guard.js';

const pdu = (type: number, length: number, body = length) => {
  const b = Buffer.alloc(6 + body);
  b[0] = type;
  b.writeUInt32BE(length, 2);
  return b;
};

describe('PduLengthGuard', () => {
  it('follows PDU framing across arbitrary chunk boundaries', () => {
    const g = new PduLengthGuard(100);
    const stream = Buffer.concat([pdu(1, 50), pdu(4, 100), pdu(4, 10)]);
    for (let i = 0; i < stream.length; i += 7) expect(g.feed(stream.subarray(i, i + 7))).toBeUndefined();
  });

  it('reports the first PDU over the limit, even when its header is split', () => {
    const g = new PduLengthGuard(100);
    expect(g.feed(pdu(1, 20))).toBeUndefined();
    const big = pdu(4, 101, 0);
    expect(g.feed(big.subarray(0, 3))).toBeUndefined();
    expect(g.feed(big.subarray(3))).toBe(101);
  });

  it('applies a raised limit after the association', () => {
    const g = new PduLengthGuard(100);
    expect(g.feed(pdu(1, 80))).toBeUndefined();
    g.setLimit(1000);
    expect(g.feed(pdu(4, 900))).toBeUndefined();
    expect(g.feed(pdu(4, 1001, 0))).toBe(1001);
  });
});
