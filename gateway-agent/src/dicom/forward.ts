/**
 * Optional forwarding of received objects to the PACS, one C-STORE association at a time, in arrival order.
 *
 * Limitation (dcmjs-dimse 0.3.3): its C-STORE SCU reads the whole file into memory before sending, so while
 * an object is forwarded it is held in memory once. Objects are forwarded strictly one at a time to bound
 * that to the largest single object. A failed forward is logged (the object stays on the gateway until
 * retention) and not retried; the modality's own PACS route or a later retrieve covers it.
 */
import dimse from 'dcmjs-dimse';
import { hexStatus } from './errors.js';
import { runAssociation } from './scu.js';
import type { DicomLogger, DicomPeer } from './types.js';

const { CStoreRequest } = dimse.requests;
const { Status } = dimse.constants;

export interface ForwardOptions {
  aet: string;
  pacs: DicomPeer;
  timeoutMs: number;
  logger: DicomLogger;
  /** TCP_NODELAY on its associations (default true). */
  noDelay?: boolean;
}

export class ForwardQueue {
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly opts: ForwardOptions) {}

  push(path: string): void {
    this.tail = this.tail.then(() => this.send(path));
  }

  /** Resolves when everything queued so far has been attempted. */
  drain(): Promise<void> {
    return this.tail;
  }

  private async send(path: string): Promise<void> {
    try {
      const request = new CStoreRequest(path);
      const finals = await runAssociation([request], {
        callingAet: this.opts.aet,
        peer: this.opts.pacs,
        timeoutMs: this.opts.timeoutMs,
        noDelay: this.opts.noDelay !== false,
        logger: this.opts.logger,
      });
      const status = finals.get(request)!.getStatus();
      if (status !== Status.Success)
        this.opts.logger.warn(
          { pacs: this.opts.pacs.aet, status: hexStatus(status) },
          'PACS refused a forwarded object',
        );
    } catch (err) {
      this.opts.logger.warn(
        { pacs: this.opts.pacs.aet, code: (err as { code?: string }).code, err: (err as Error).message },
        'forwarding an object to the PACS failed; it stays on the gateway until retention',
      );
    }
  }
}
