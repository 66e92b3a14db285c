/**
 * Which transport the next connection attempt uses.
 *
 * - `websocket` / `webtransport`: always that one.
 * - `auto`: WebTransport first. When a WebTransport attempt fails before the relay welcomed the gateway
 *   (listener down, UDP/TCP port blocked, a proxy in the way, certificate refused), the link falls back to
 *   WebSocket at once and stays there for `retryAfterMs` (default 10 minutes) before trying WebTransport again.
 *   A WebTransport connection that was online and then dropped is retried on WebTransport first: the drop may
 *   be the network, not the transport. The choice lives in this object, i.e. for the life of the process.
 */
import type { Logger } from '../log.js';
import type { TransportKind } from './socket.js';

export type TransportMode = 'websocket' | 'webtransport' | 'auto';

export class TransportSelector {
  private fallbackUntil = 0;
  private last: TransportKind | undefined;

  constructor(
    readonly mode: TransportMode,
    private readonly now: () => number,
    private readonly log: Logger,
    private readonly retryAfterMs = 600_000,
  ) {}

  /** The transport for the next attempt (logs when it changes, and why). */
  next(): TransportKind {
    let kind: TransportKind;
    let why: string;
    if (this.mode !== 'auto') {
      kind = this.mode;
      why = `SCANRELAY_GATEWAY_TRANSPORT=${this.mode}`;
    } else if (this.fallbackUntil > this.now()) {
      kind = 'websocket';
      why = `auto: WebTransport failed to connect; WebSocket until ${new Date(this.fallbackUntil).toISOString()}`;
    } else {
      kind = 'webtransport';
      why =
        this.fallbackUntil > 0
          ? 'auto: fallback period over, trying WebTransport again'
          : 'auto: WebTransport preferred';
      this.fallbackUntil = 0;
    }
    if (kind !== this.last) this.log.info({ transport: kind, reason: why }, `relay link: using ${label(kind)}`);
    this.last = kind;
    return kind;
  }

  /**
   * An attempt on `kind` failed before `welcome`. Returns true when the link should retry at once on the other
   * transport (auto mode falling back from WebTransport).
   */
  failedToConnect(kind: TransportKind, detail: string): boolean {
    if (this.mode !== 'auto' || kind !== 'webtransport') return false;
    this.fallbackUntil = this.now() + this.retryAfterMs;
    this.log.warn(
      { transport: kind, detail, retryWebTransportAt: new Date(this.fallbackUntil).toISOString() },
      'relay link: WebTransport failed to connect; falling back to WebSocket (check the relay WebTransport ' +
        'listener, SCANRELAY_GATEWAY_WEBTRANSPORT_URLS, its certificate, and that the port is open)',
    );
    return true;
  }
}

export function label(kind: TransportKind): string {
  return kind === 'webtransport' ? 'WebTransport' : 'WebSocket';
}
