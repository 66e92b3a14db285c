/**
 * Helpers for the uWS transport tests: a minimal core (hooks) that records what the adapter does, and a raw
 * WebSocket client over `net` for the cases a library client hides (never reading, counting TCP reads).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { chooseSubprotocol } from '@scanrelay/protocol';
import { pino } from 'pino';
import type {
  ConnectionHandlers,
  TransportConnection,
  TransportHooks,
  TransportOptions,
  UpgradeRequest,
} from '../../src/core/transport.js';

export interface Recorded {
  admitted: UpgradeRequest[];
  connections: TransportConnection[];
  messages: Array<{ data: string | Uint8Array; isBinary: boolean }>;
  closes: Array<{ code: number; reason: string }>;
  drains: number;
  pongs: number;
  http: Array<{ method: string; url: string; ip: string; headers: Record<string, unknown>; body: string }>;
  waiters: Array<() => void>;
}

/** Resolve when `check` holds, re-checking after every recorded event. */
export function until(rec: Recorded, check: () => boolean): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve) => {
    const poll = (): void => {
      if (check()) resolve();
      else rec.waiters.push(poll);
    };
    rec.waiters.push(poll);
  });
}

function notify(rec: Recorded): void {
  const waiters = rec.waiters.splice(0);
  for (const w of waiters) w();
}

/** Hooks of a fake core: `/v1/browser` with our subprotocols; Origin `https://evil.test` refused; HTTP echoed. */
export function recordingHooks(): { hooks: TransportHooks; rec: Recorded } {
  const rec: Recorded = {
    admitted: [],
    connections: [],
    messages: [],
    closes: [],
    drains: 0,
    pongs: 0,
    http: [],
    waiters: [],
  };
  const hooks: TransportHooks = {
    admit(request) {
      rec.admitted.push(request);
      if (request.path !== '/v1/browser') return { ok: false, status: 404, message: 'unknown path' };
      if (request.origin === 'https://evil.test') return { ok: false, status: 403, message: 'origin not allowed' };
      const subprotocol = chooseSubprotocol(request.protocols);
      if (!subprotocol) return { ok: false, status: 400, message: 'no acceptable subprotocol' };
      const codec = subprotocol.endsWith('msgpack') ? 'msgpack' : 'json';
      return { ok: true, endpoint: 'browser', codec, subprotocol, ip: request.ip };
    },
    open(connection): ConnectionHandlers {
      rec.connections.push(connection);
      notify(rec);
      return {
        message(data, isBinary) {
          rec.messages.push({ data, isBinary });
          notify(rec);
        },
        pong() {
          rec.pongs++;
          notify(rec);
        },
        drain() {
          rec.drains++;
          notify(rec);
        },
        close(code, reason) {
          rec.closes.push({ code, reason });
          notify(rec);
        },
      };
    },
    http(req: IncomingMessage, res: ServerResponse) {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        // Answer later than the request handler, as a real async API does.
        setImmediate(() => {
          const body = Buffer.concat(chunks).toString('utf8');
          rec.http.push({
            method: req.method ?? '',
            url: req.url ?? '',
            ip: req.socket.remoteAddress ?? '',
            headers: { ...req.headers },
            body,
          });
          notify(rec);
          res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'application/json', 'x-test': 'yes' });
          res.end(JSON.stringify({ method: req.method, url: req.url, body }));
        });
      });
    },
  };
  return { hooks, rec };
}

export function options(overrides: Partial<TransportOptions> = {}): TransportOptions {
  return {
    host: '127.0.0.1',
    port: 0,
    maxPayloadBytes: 64 * 1024,
    maxBufferedBytes: 256 * 1024,
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 10_000,
    maxHeadersCount: 50,
    logger: pino({ level: 'silent' }),
    ...overrides,
  };
}

/** A raw WebSocket client: completes the handshake by hand and then hands over the socket untouched. */
export async function rawUpgrade(
  port: number,
  protocol = 'scanrelay.v1.json',
): Promise<{ socket: Socket; response: string; rest: Buffer }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(
    'GET /v1/browser HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
  );
  let buf = Buffer.alloc(0);
  while (buf.indexOf('\r\n\r\n') < 0) {
    const chunk = await new Promise<Buffer>((resolve, reject) => {
      socket.once('data', resolve);
      socket.once('error', reject);
    });
    buf = Buffer.concat([buf, chunk]);
  }
  socket.pause();
  const end = buf.indexOf('\r\n\r\n');
  return { socket, response: buf.subarray(0, end).toString('latin1'), rest: buf.subarray(end + 4) };
}

/** Split server→client frames (unmasked, payload < 64 KiB) from a byte stream; returns payloads and leftover. */
export function parseFrames(buf: Buffer): { frames: Buffer[]; rest: Buffer } {
  const frames: Buffer[] = [];
  let off = 0;
  while (buf.length - off >= 2) {
    let len = buf[off + 1]! & 0x7f;
    let head = 2;
    if (len === 126) {
      if (buf.length - off < 4) break;
      len = buf.readUInt16BE(off + 2);
      head = 4;
    } else if (len === 127) {
      if (buf.length - off < 10) break;
      len = Number(buf.readBigUInt64BE(off + 2));
      head = 10;
    }
    if (buf.length - off < head + len) break;
    frames.push(buf.subarray(off + head, off + head + len));
    off += head + len;
  }
  return { frames, rest: buf.subarray(off) };
}

/** One masked client→server text frame (payload < 126 bytes). */
export function clientTextFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const mask = randomBytes(4);
  const out = Buffer.alloc(6 + payload.length);
  out[0] = 0x81;
  out[1] = 0x80 | payload.length;
  mask.copy(out, 2);
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i]! ^ mask[i % 4]!;
  return out;
}
