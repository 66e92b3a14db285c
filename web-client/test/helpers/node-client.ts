/**
 * Node helpers for testing the client library: `ws` as the injected WebSocket (sending the Origin the relay
 * allows), and a recorder of the client's events.
 */
import { WebSocket } from 'ws';
import { type ClientEvents, type ClientOptions, ScanRelayClient, type WebSocketConstructor } from '../../src/index.js';

/** `ws` with a fixed Origin header, as a browser would send it. */
export function wsWithOrigin(origin: string): WebSocketConstructor {
  class OriginWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { origin });
    }
  }
  return OriginWebSocket as unknown as WebSocketConstructor;
}

export interface Recorded {
  client: ScanRelayClient;
  events: Array<{ [K in keyof ClientEvents]: { type: K; payload: ClientEvents[K] } }[keyof ClientEvents]>;
  /** Resolve on the n-th occurrence (1-based, counting from the start) of an event type. */
  nth<K extends keyof ClientEvents>(type: K, n: number, timeoutMs?: number): Promise<ClientEvents[K]>;
  count(type: keyof ClientEvents): number;
}

export function recordedClient(options: ClientOptions): Recorded {
  const client = new ScanRelayClient(options);
  const events: Recorded['events'] = [];
  const waiters: Array<() => void> = [];
  for (const type of ['state', 'transport', 'connected', 'disconnected', 'renewed', 'error', 'closed'] as const)
    client.on(type, (payload) => {
      events.push({ type, payload } as never);
      for (const w of [...waiters]) w();
    });
  const count = (type: keyof ClientEvents) => events.filter((e) => e.type === type).length;
  const nth = <K extends keyof ClientEvents>(type: K, n: number, timeoutMs = 15_000) =>
    new Promise<ClientEvents[K]>((resolve, reject) => {
      const check = () => {
        const hit = events.filter((e) => e.type === type)[n - 1];
        if (!hit) return false;
        waiters.splice(waiters.indexOf(check as () => void), 1);
        clearTimeout(timer);
        resolve(hit.payload as ClientEvents[K]);
        return true;
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(check as () => void), 1);
        reject(new Error(`timed out waiting for "${String(type)}" #${n}; saw ${events.map((e) => e.type).join(', ')}`));
      }, timeoutMs);
      if (!check()) waiters.push(check as () => void);
    });
  return { client, events, nth, count };
}
