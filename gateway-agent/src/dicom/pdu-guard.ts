/**
 * A size cap on incoming PDUs, checked before the library buffers them.
 *
 * dcmjs-dimse collects each PDU whole in memory (concatenating every TCP chunk) up to the 32-bit length its
 * header declares, and never compares that length with the maximum PDU size the association negotiated. A
 * peer — before any AE title check, since the A-ASSOCIATE-RQ is itself a PDU — could declare 4 GB and stream.
 * `PduLengthGuard` follows the same framing (type, reserved, 32-bit big-endian length) on the raw bytes and
 * reports the first PDU longer than the limit, so the SCP can drop the connection.
 */

/** Largest A-ASSOCIATE-RQ accepted (contexts, user identity); real ones are a few kB. */
export const MAX_ASSOCIATE_PDU = 64 * 1024;

export class PduLengthGuard {
  private header = Buffer.alloc(6);
  private headerFill = 0;
  /** Bytes of the current PDU's body still to come. */
  private remaining = 0;

  constructor(private limit: number = MAX_ASSOCIATE_PDU) {}

  /** Raise the limit once the association is accepted (to the negotiated maximum PDU length). */
  setLimit(limit: number): void {
    this.limit = limit;
  }

  /** Feed received bytes; returns the offending declared length, or `undefined` while all is well. */
  feed(chunk: Buffer): number | undefined {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - pos);
        this.remaining -= take;
        pos += take;
        continue;
      }
      const take = Math.min(6 - this.headerFill, chunk.length - pos);
      chunk.copy(this.header, this.headerFill, pos, pos + take);
      this.headerFill += take;
      pos += take;
      if (this.headerFill < 6) break;
      this.headerFill = 0;
      const length = this.header.readUInt32BE(2);
      if (length > this.limit) return length;
      this.remaining = length;
    }
    return undefined;
  }
}
