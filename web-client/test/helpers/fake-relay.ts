/**
 * A protocol-speaking fake relay for state-machine tests that the real relay cannot be made to do on cue
 * (close with any code, stay silent, send a malformed frame). A fake only for the other side of the wire: the
 * client under test is the real one, over real sockets on 127.0.0.1.
 */
import type { AddressInfo } from 'node:net';
import { SUBPROTOCOLS } from '@scanrelay/protocol';
import { type WebSocket, WebSocketServer } from 'ws';

export interface FakeConn {
  ws: WebSocket;
  /** Messages received from the client, parsed (JSON codec). */
  received: Array<Record<string, unknown>>;
  send(msg: Record<string, unknown>): void;
  /** Resolve with the next message of `type` (already received ones count). */
  next(type: string): Promise<Record<string, unknown>>;
}

export class FakeRelay {
  readonly connections: FakeConn[] = [];
  #server: WebSocketServer;
  #onConnection: (conn: FakeConn) => void;

  private constructor(server: WebSocketServer, onConnection: (conn: FakeConn) => void) {
    this.#server = server;
    this.#onConnection = onConnection;
    server.on('connection', (ws) => this.#accept(ws));
  }

  static async start(onConnection: (conn: FakeConn) => void): Promise<FakeRelay> {
    const server = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      handleProtocols: (offered) => (offered.has(SUBPROTOCOLS.json) ? SUBPROTOCOLS.json : false),
    });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    return new FakeRelay(server, onConnection);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  #accept(ws: WebSocket): void {
    const waiters: Array<() => void> = [];
    const conn: FakeConn = {
      ws,
      received: [],
      send: (msg) => ws.send(JSON.stringify(msg)),
      next: (type) =>
        new Promise((resolve) => {
          let seen = 0;
          const check = () => {
            const hit = conn.received.slice(seen).find((m) => m.type === type);
            seen = conn.received.length;
            if (hit) {
              resolve(hit);
              return true;
            }
            return false;
          };
          if (!check()) waiters.push(() => void check());
        }),
    };
    ws.on('message', (data) => {
      conn.received.push(JSON.parse(String(data)) as Record<string, unknown>);
      for (const w of waiters.splice(0)) w();
    });
    ws.on('error', () => undefined);
    this.connections.push(conn);
    this.#onConnection(conn);
  }

  close(): Promise<void> {
    for (const c of this.connections) c.ws.terminate();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** A valid browser `welcome`. */
export function welcome(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'welcome',
    session: 's-1',
    node: 'fake',
    expiresAt: Date.now() + 600_000,
    limits: { maxMessageBytes: 65536, maxSubscriptions: 64, messagesPerSecond: 50, pingIntervalMs: 15_000 },
    ...overrides,
  };
}

/** Answer `hello` with a welcome. */
export async function greet(conn: FakeConn, overrides: Record<string, unknown> = {}): Promise<void> {
  await conn.next('hello');
  conn.send(welcome(overrides));
}
