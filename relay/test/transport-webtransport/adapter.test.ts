/**
 * The WebTransport adapter over its HTTP/2 transport, on loopback with a certificate made for the test:
 * subprotocol preamble, admission refusals, frames both ways in both codecs, close codes carried in the
 * session close info, the frame-size limit, and corked writes.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeFrame, encodeMessage, webTransportSocketClass } from '@scanrelay/protocol';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  ConnectionHandlers,
  TransportConnection,
  UpgradeDecision,
  UpgradeRequest,
} from '../../src/core/transport.js';
import { createWebTransportTransport, type WebTransportServer } from '../../src/transport/webtransport.js';

const dir = mkdtempSync(join(tmpdir(), 'wt-test-'));
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
    '-days',
    '10',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ],
  { stdio: 'ignore' },
);
const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
const key = readFileSync(join(dir, 'key.pem'), 'utf8');
const hash = createHash('sha256').update(new X509Certificate(cert).raw).digest();

interface Opened {
  conn: TransportConnection;
  decision: Extract<UpgradeDecision, { ok: true }>;
  messages: Array<{ data: string | Uint8Array; isBinary: boolean }>;
  closed: Promise<{ code: number; reason: string }>;
  pongs: number;
}

const admitted: UpgradeRequest[] = [];
const opened: Opened[] = [];
let server: WebTransportServer;
let port = 0;

function admit(req: UpgradeRequest): UpgradeDecision {
  admitted.push(req);
  if (req.path !== '/v1/browser' && req.path !== '/v1/gateway')
    return { ok: false, status: 404, message: 'no such endpoint' };
  if (req.path === '/v1/browser' && req.origin !== 'https://app.test')
    return { ok: false, status: 403, message: 'origin not allowed' };
  const names = req.protocols.map((p) => p.trim());
  const subprotocol = names.includes('scanrelay.v1.msgpack')
    ? 'scanrelay.v1.msgpack'
    : names.includes('scanrelay.v1.json')
      ? 'scanrelay.v1.json'
      : undefined;
  if (!subprotocol) return { ok: false, status: 400, message: 'no acceptable subprotocol' };
  return {
    ok: true,
    endpoint: req.path === '/v1/browser' ? 'browser' : 'gateway',
    codec: subprotocol.endsWith('json') ? 'json' : 'msgpack',
    subprotocol,
    ip: req.ip,
  };
}

function open(conn: TransportConnection, decision: Extract<UpgradeDecision, { ok: true }>): ConnectionHandlers {
  let resolveClosed!: (v: { code: number; reason: string }) => void;
  const o: Opened = { conn, decision, messages: [], closed: new Promise((r) => (resolveClosed = r)), pongs: 0 };
  opened.push(o);
  return {
    message(data, isBinary) {
      o.messages.push({ data, isBinary });
      // Echo with a reply in the same codec, corked as the core does.
      const value = decodeFrame(decision.codec, data, isBinary, 65536) as { type: string; ref?: string };
      if (value.type === 'ping')
        conn.cork(() => {
          conn.send(encodeMessage(decision.codec, { type: 'pong', ref: value.ref ?? '' }));
          conn.send(encodeMessage(decision.codec, { type: 'pong', ref: 'second' }));
        });
      if (value.type === 'bye') conn.close(4505, 'replaced');
    },
    pong() {
      o.pongs++;
    },
    drain() {},
    close(code, reason) {
      resolveClosed({ code, reason });
    },
  };
}

beforeAll(async () => {
  server = await createWebTransportTransport(
    {
      host: '127.0.0.1',
      port: 0,
      maxPayloadBytes: 1024,
      maxBufferedBytes: 1 << 20,
      headersTimeoutMs: 5000,
      requestTimeoutMs: 5000,
      maxHeadersCount: 50,
      logger: pino({ level: 'silent' }),
      cert,
      key,
    },
    { admit, open },
  );
  port = (await server.listen()).port;
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function clientClass(origin?: string) {
  const { WebTransport } = (await import('@fails-components/webtransport')) as unknown as { WebTransport: never };
  return webTransportSocketClass(WebTransport, {
    serverCertificateHashes: [{ algorithm: 'sha-256', value: hash }],
    forceReliable: true,
    ...(origin ? { headers: { origin } } : {}),
  });
}

function next<T>(socket: { addEventListener(t: string, l: (e: never) => void): void }, type: string): Promise<T> {
  return new Promise((resolve) => socket.addEventListener(type, ((e: T) => resolve(e)) as never));
}

describe('WebTransport adapter (HTTP/2 transport)', () => {
  it('reports which flavours are live', () => {
    expect(server.flavours.http2).toBe(true);
    if (!server.flavours.http3) expect(server.flavours.http3Reason).toMatch(/native module/);
  });

  it('negotiates msgpack by preamble and carries frames both ways, corked replies included', async () => {
    const Socket = await clientClass();
    const ws = new Socket(`https://127.0.0.1:${port}/v1/gateway`, ['scanrelay.v1.json', 'scanrelay.v1.msgpack']);
    await next(ws, 'open');
    expect(ws.protocol).toBe('scanrelay.v1.msgpack');
    const got: unknown[] = [];
    const two = new Promise<void>((resolve) =>
      ws.addEventListener('message', ((e: { data: ArrayBuffer }) => {
        got.push(decodeFrame('msgpack', new Uint8Array(e.data), true, 65536));
        if (got.length === 2) resolve();
      }) as never),
    );
    ws.send(encodeMessage('msgpack', { type: 'ping', ref: 'a1' }) as Uint8Array);
    await two;
    expect(got).toEqual([
      { type: 'pong', ref: 'a1' },
      { type: 'pong', ref: 'second' },
    ]);
    const srv = opened.at(-1)!;
    expect(srv.decision.endpoint).toBe('gateway');
    expect(srv.messages[0]?.isBinary).toBe(true);
    ws.close(1000, 'done');
    expect((await srv.closed).code).toBe(1000);
  });

  it('carries JSON as text and the server close code to the client', async () => {
    const Socket = await clientClass();
    const ws = new Socket(`https://127.0.0.1:${port}/v1/gateway`, 'scanrelay.v1.json');
    await next(ws, 'open');
    expect(ws.protocol).toBe('scanrelay.v1.json');
    const closed = next<{ code: number; reason: string }>(ws, 'close');
    ws.send(JSON.stringify({ type: 'bye' }));
    const c = await closed;
    expect(c.code).toBe(4505);
    const srv = opened.at(-1)!;
    expect(srv.messages[0]).toEqual({ data: '{"type":"bye"}', isBinary: false });
  });

  it('closes with 4500 when no acceptable subprotocol is offered', async () => {
    const Socket = await clientClass();
    const ws = new Socket(`https://127.0.0.1:${port}/v1/gateway`, ['chat']);
    const c = await next<{ code: number }>(ws, 'close');
    expect(c.code).not.toBe(1000);
    expect(ws.protocol).toBe('');
  });

  it('refuses a frame over the limit with 1009 and keeps serving others', async () => {
    const Socket = await clientClass();
    const ws = new Socket(`https://127.0.0.1:${port}/v1/gateway`, ['scanrelay.v1.msgpack']);
    await next(ws, 'open');
    const before = opened.length;
    ws.send(new Uint8Array(4096));
    const srv = opened[before - 1]!;
    expect((await srv.closed).code).toBe(1009);
    const ws2 = new Socket(`https://127.0.0.1:${port}/v1/gateway`, ['scanrelay.v1.msgpack']);
    await next(ws2, 'open');
    ws2.close();
  });

  it('never reads the query string', async () => {
    const Socket = await clientClass();
    const ws = new Socket(`https://127.0.0.1:${port}/v1/gateway?token=abc`, ['scanrelay.v1.msgpack']);
    await next(ws, 'open');
    expect(admitted.at(-1)?.path).toBe('/v1/gateway');
    ws.close();
  });
});
