/**
 * C-ECHO of configured peers. `modality.status {aet, online}` is emitted when a peer's state changes (the
 * first check of each peer counts as a change), whether the check came from the periodic monitor or from an
 * `echo` command.
 */
import dimse from 'dcmjs-dimse';
import { DicomError } from './errors.js';
import { runAssociation } from './scu.js';
import type { DicomEvent, DicomLogger, DicomPeer } from './types.js';

const { CEchoRequest } = dimse.requests;
const { Status } = dimse.constants;

export interface EchoOptions {
  aet: string;
  peers: () => DicomPeer[];
  timeoutMs: number;
  logger: DicomLogger;
  emit: (event: DicomEvent) => Promise<void>;
  now: () => number;
  /** TCP_NODELAY on its associations (default true). */
  noDelay?: boolean;
}

export class EchoMonitor {
  private readonly online = new Map<string, boolean>();
  /** aet → when its last check finished (ms epoch), for the gateway's report. */
  private readonly checkedAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly opts: EchoOptions) {}

  /** C-ECHO one configured peer. Never throws for an unreachable peer: that is `online: false`. */
  async echo(aet: string): Promise<{ online: boolean; ms: number }> {
    const peer = this.opts.peers().find((p) => p.aet === aet);
    if (!peer)
      throw new DicomError(
        'dicom_unknown_peer',
        `"${aet}" is not a configured modality or PACS; add it to SCANRELAY_GATEWAY_MODALITIES as AET@host:port`,
      );
    const started = performance.now();
    let online = false;
    try {
      const request = new CEchoRequest();
      const finals = await runAssociation([request], {
        callingAet: this.opts.aet,
        peer,
        timeoutMs: this.opts.timeoutMs,
        noDelay: this.opts.noDelay !== false,
        logger: this.opts.logger,
      });
      online = finals.get(request)?.getStatus() === Status.Success;
    } catch (err) {
      this.opts.logger.info({ aet, code: (err as DicomError).code }, 'C-ECHO failed; peer reported offline');
    }
    const ms = Math.round(performance.now() - started);
    this.checkedAt.set(aet, this.opts.now());
    if (this.online.get(aet) !== online) {
      this.online.set(aet, online);
      await this.opts.emit({ kind: 'modality.status', at: this.opts.now(), data: { aet, online } });
    }
    return { online, ms };
  }

  /** The last check of every configured peer (`online: false`, no `checkedAt`, before its first check). */
  status(): { aet: string; online: boolean; checkedAt?: number }[] {
    return this.opts.peers().map((p) => {
      const checkedAt = this.checkedAt.get(p.aet);
      return { aet: p.aet, online: this.online.get(p.aet) === true, ...(checkedAt !== undefined ? { checkedAt } : {}) };
    });
  }

  /** Echo every modality now and then every `intervalMs` (0: never). */
  start(intervalMs: number, modalities: () => DicomPeer[]): void {
    if (intervalMs <= 0) return;
    const round = async () => {
      for (const peer of modalities()) await this.echo(peer.aet).catch(() => undefined);
    };
    const tick = () => {
      if (this.running) return;
      this.running = round().finally(() => {
        this.running = undefined;
      });
    };
    tick();
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
