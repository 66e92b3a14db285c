/**
 * Size caps on incoming DICOM traffic, checked on the raw socket bytes before the library buffers them.
 *
 * dcmjs-dimse collects each PDU whole in memory (concatenating every TCP chunk) up to the 32-bit length its
 * header declares, and never compares that length with the maximum PDU size the association negotiated. A
 * peer — before any AE title check, since the A-ASSOCIATE-RQ is itself a PDU — could declare 4 GB and stream.
 * It also collects every DIMSE message except C-STORE datasets (which the gateway streams to disk) in memory
 * across PDUs, without a total. `PduLengthGuard` follows the same framing (PDU: type, reserved, 32-bit
 * big-endian length; inside P-DATA-TF, PDV items: 32-bit length, presentation context id, control byte) and
 * reports the first PDU or message over its limit, so the SCP can drop the connection.
 */

/** Largest A-ASSOCIATE-RQ accepted (contexts, user identity); real ones are a few kB. */
export const MAX_ASSOCIATE_PDU = 64 * 1024;
/** Largest DIMSE command accepted (commands are a few hundred bytes). */
export const MAX_COMMAND_BYTES = 64 * 1024;
/** Largest in-memory dataset (C-FIND identifier, MPPS attributes, commitment lists), default. */
export const MAX_MEMORY_DATASET_BYTES = 16 * 1024 * 1024;

const P_DATA_TF = 0x04;

export interface PduGuardOptions {
  /** Whether datasets on this presentation context are streamed to disk (storage), so not capped here. */
  isStreamed?: (presentationContextId: number) => boolean;
  maxDatasetBytes?: number;
}

export class PduLengthGuard {
  private readonly header = Buffer.alloc(6);
  private headerFill = 0;
  /** Bytes of the current PDU's body still to come. */
  private pduRemaining = 0;
  private inPData = false;
  private readonly pdvHeader = Buffer.alloc(6);
  private pdvHeaderFill = 0;
  /** Bytes of the current PDV's data still to come, and whom they count for. */
  private pdvRemaining = 0;
  private pdvIsCommand = false;
  private pdvCounted = false;
  private pdvLast = false;
  private commandBytes = 0;
  private datasetBytes = 0;

  constructor(
    private limit: number = MAX_ASSOCIATE_PDU,
    private readonly opts: PduGuardOptions = {},
  ) {}

  /** Raise the limit once the association is accepted (to the negotiated maximum PDU length). */
  setLimit(limit: number): void {
    this.limit = limit;
  }

  /** Feed received bytes; returns why the peer must be dropped, or `undefined` while all is well. */
  feed(chunk: Buffer): string | undefined {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.pduRemaining > 0) {
        const take = Math.min(this.pduRemaining, chunk.length - pos);
        if (this.inPData) {
          const why = this.feedPdvs(chunk.subarray(pos, pos + take));
          if (why) return why;
        }
        this.pduRemaining -= take;
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
      if (length > this.limit) return `a PDU of ${length} bytes (limit ${this.limit})`;
      this.pduRemaining = length;
      this.inPData = this.header[0] === P_DATA_TF;
      this.pdvHeaderFill = 0;
      this.pdvRemaining = 0;
    }
    return undefined;
  }

  /** PDV items inside a P-DATA-TF body (`part` never crosses the PDU's end). */
  private feedPdvs(part: Buffer): string | undefined {
    let pos = 0;
    while (pos < part.length) {
      if (this.pdvRemaining > 0) {
        const take = Math.min(this.pdvRemaining, part.length - pos);
        this.pdvRemaining -= take;
        pos += take;
        if (this.pdvIsCommand) {
          this.commandBytes += take;
          if (this.commandBytes > MAX_COMMAND_BYTES) return `a DIMSE command over ${MAX_COMMAND_BYTES} bytes`;
        } else if (this.pdvCounted) {
          this.datasetBytes += take;
          const max = this.opts.maxDatasetBytes ?? MAX_MEMORY_DATASET_BYTES;
          if (this.datasetBytes > max) return `a DIMSE dataset over ${max} bytes`;
        }
        if (this.pdvRemaining === 0) this.endPdv();
        continue;
      }
      const take = Math.min(6 - this.pdvHeaderFill, part.length - pos);
      part.copy(this.pdvHeader, this.pdvHeaderFill, pos, pos + take);
      this.pdvHeaderFill += take;
      pos += take;
      if (this.pdvHeaderFill < 6) break;
      this.pdvHeaderFill = 0;
      const itemLength = this.pdvHeader.readUInt32BE(0);
      const pcid = this.pdvHeader[4]!;
      const control = this.pdvHeader[5]!;
      this.pdvIsCommand = (control & 0x01) === 1;
      this.pdvCounted = !this.pdvIsCommand && !(this.opts.isStreamed?.(pcid) ?? false);
      this.pdvLast = (control & 0x02) !== 0;
      this.pdvRemaining = Math.max(0, itemLength - 2);
      if (this.pdvRemaining === 0) this.endPdv();
    }
    return undefined;
  }

  /** The last fragment of a command or dataset ends that message part: count afresh after it. */
  private endPdv(): void {
    if (!this.pdvLast) return;
    if (this.pdvIsCommand) this.commandBytes = 0;
    else this.datasetBytes = 0;
  }
}
