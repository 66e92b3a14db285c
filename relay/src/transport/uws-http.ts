/**
 * HTTP bridge for the uWebSockets.js transport: serves a uWS HTTP request through Node's own
 * `IncomingMessage`/`ServerResponse` (what {@link TransportHooks.http} takes), without a second listening port.
 *
 * ```
 *  uWS HttpRequest ──copy method/url/headers (sync)──▶ read body (onData, capped) ──▶ raw HTTP/1.0 bytes
 *        ▲                                                                       │
 *        │ one corked writeStatus/writeHeader/end                                 ▼
 *  parse status + headers + body  ◀── raw response bytes ◀── node:http Server (never listens) ── hooks.http
 * ```
 *
 * The request is replayed to a `node:http` server as HTTP/1.0 over an in-memory {@link BridgeSocket}, so Node
 * answers without chunked encoding and ends the response by ending the stream; the socket reports the real
 * peer address, so per-IP limits of the admin/activation API keep working. uWS rules followed here: everything
 * needed from the `HttpRequest` is copied before the first asynchronous step (the object dies when the handler
 * returns); `onAborted` is attached at once, and after an abort the `HttpResponse` is never touched again;
 * every write happens inside `res.cork`.
 */

import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Duplex } from 'node:stream';

/** Largest request body the bridge buffers (admin and activation requests are a few hundred bytes). */
export const MAX_HTTP_BODY_BYTES = 64 * 1024;
/** Largest response the bridge buffers before answering (metrics pages are tens of KiB). */
const MAX_HTTP_RESPONSE_BYTES = 8 * 1024 * 1024;

/** Headers the bridge sets itself or that describe the replayed connection rather than the request. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'te']);
/** Response headers uWS writes itself (it adds Content-Length on `end`). */
const RESPONSE_SKIP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date']);

export interface HttpBridgeOptions {
  maxHeadersCount: number;
  requestTimeoutMs: number;
  headersTimeoutMs: number;
}

/** A copy of what the bridge needs from a uWS `HttpRequest`, taken synchronously. */
interface CopiedRequest {
  method: string;
  url: string;
  headers: Array<[string, string]>;
  ip: string;
}

/**
 * In-memory socket between the bridge and the `node:http` server. Bytes written by the server (the response)
 * are collected; the request is pushed as readable data. It carries the real peer address for handlers.
 */
class BridgeSocket extends Duplex {
  readonly remoteAddress: string;
  readonly remotePort = 0;
  readonly remoteFamily: string;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private overflow = false;

  constructor(
    ip: string,
    private readonly onDone: (response: Buffer | undefined) => void,
  ) {
    super();
    this.remoteAddress = ip;
    this.remoteFamily = ip.includes(':') ? 'IPv6' : 'IPv4';
  }

  // The server may call these on what it believes is a net.Socket.
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.size += chunk.length;
    if (this.size > MAX_HTTP_RESPONSE_BYTES) this.overflow = true;
    else this.chunks.push(chunk);
    cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.onDone(this.overflow ? undefined : Buffer.concat(this.chunks));
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // A destroy before the response finished (server timeout, handler error) still answers the client.
    if (!this.writableFinished) this.onDone(this.overflow ? undefined : Buffer.concat(this.chunks));
    cb(err);
  }
}

interface ParsedResponse {
  status: string;
  headers: Array<[string, string]>;
  body: Buffer;
}

function parseResponse(raw: Buffer): ParsedResponse | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const statusLine = lines[0] ?? '';
  const match = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!match) return undefined;
  const headers: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    if (RESPONSE_SKIP.has(name.toLowerCase())) continue;
    headers.push([name, line.slice(colon + 1).trim()]);
  }
  return { status: `${match[1]} ${match[2] ?? ''}`.trim(), headers, body: raw.subarray(end + 4) };
}

/**
 * Serves uWS HTTP requests through a handler written for `node:http`. One instance per transport.
 */
export class UwsHttpBridge {
  private readonly server: Server;
  private readonly open = new Set<BridgeSocket>();

  constructor(
    handler: (req: IncomingMessage, res: ServerResponse) => void,
    private readonly options: HttpBridgeOptions,
  ) {
    this.server = createServer(handler);
    this.server.maxHeadersCount = options.maxHeadersCount;
    this.server.requestTimeout = options.requestTimeoutMs;
    this.server.headersTimeout = options.headersTimeoutMs;
  }

  /** The uWS `any('/*')` handler. Synchronous up to the point where it has copied the request. */
  handle(res: HttpResponse, req: HttpRequest): void {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const copied: CopiedRequest = {
      method: req.getMethod().toUpperCase(),
      url: req.getUrl() + (req.getQuery() ? `?${req.getQuery()}` : ''),
      headers: [],
      ip: Buffer.from(res.getRemoteAddressAsText()).toString('latin1'),
    };
    let tooMany = false;
    req.forEach((name, value) => {
      if (copied.headers.length >= this.options.maxHeadersCount) tooMany = true;
      else copied.headers.push([name, value]);
    });
    // From here on `req` must not be used: it is only valid until this handler returns.
    const reply = (status: string, body: string): void => {
      if (aborted) return;
      res.cork(() => {
        res.writeStatus(status).writeHeader('Content-Type', 'text/plain; charset=utf-8').end(body, true);
      });
    };
    if (tooMany) {
      reply('431 Request Header Fields Too Large', 'too many request headers');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((chunk, isLast) => {
      if (aborted || size < 0) return;
      size += chunk.byteLength;
      if (size > MAX_HTTP_BODY_BYTES) {
        size = -1;
        reply('413 Payload Too Large', `request body larger than ${MAX_HTTP_BODY_BYTES} bytes`);
        return;
      }
      // The ArrayBuffer is reused by uWS after this callback returns: copy it.
      chunks.push(Buffer.from(new Uint8Array(chunk).slice()));
      if (isLast) this.replay(copied, Buffer.concat(chunks), res, () => aborted);
    });
  }

  private replay(request: CopiedRequest, body: Buffer, res: HttpResponse, isAborted: () => boolean): void {
    let answered = false;
    const socket = new BridgeSocket(request.ip, (raw) => {
      this.open.delete(socket);
      if (answered) return;
      answered = true;
      if (isAborted()) return;
      const parsed = raw ? parseResponse(raw) : undefined;
      res.cork(() => {
        if (!parsed) {
          res.writeStatus('502 Bad Gateway').end('the relay could not produce a response', true);
          return;
        }
        res.writeStatus(parsed.status);
        for (const [name, value] of parsed.headers) res.writeHeader(name, value);
        res.end(parsed.body, true);
      });
    });
    this.open.add(socket);
    this.server.emit('connection', socket);
    let head = `${request.method} ${request.url} HTTP/1.0\r\n`;
    for (const [name, value] of request.headers) {
      if (!HOP_BY_HOP.has(name)) head += `${name}: ${value}\r\n`;
    }
    if (body.length > 0 || request.method === 'POST' || request.method === 'PUT' || request.method === 'PATCH')
      head += `content-length: ${body.length}\r\n`;
    head += '\r\n';
    socket.push(Buffer.concat([Buffer.from(head, 'latin1'), body]));
  }

  /** Abort requests still being answered. */
  close(): void {
    for (const socket of this.open) socket.destroy();
    this.open.clear();
    this.server.close();
  }
}
