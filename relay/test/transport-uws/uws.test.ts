/**
 * The uWebSockets.js transport (relay/src/transport/uws.ts): start-up refusals on every runtime, and — where
 * the native build loads (Node 20 on our machines; CI runs this suite on Node 20 too) — each uWS rule of
 * STYLE.md item 5 and the adapter obligations of core/transport.ts, against real sockets on 127.0.0.1.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { TransportServer } from '../../src/core/transport.js';
import { createUwsTransport, loadUws } from '../../src/transport/uws.js';
import { clientTextFrame, options, parseFrames, rawUpgrade, recordingHooks, until } from './helpers.js';

const relayDir = fileURLToPath(new URL('../../', import.meta.url));
const uwsDist = new URL('../../dist/transport/uws.js', import.meta.url).href;

/** Run a snippet in a child Node that imports the built adapter; returns its exit code and output. */
async function runChild(
  code: string,
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<{ status: number | null; out: string }> {
  const child = spawn(process.execPath, [...nodeArgs, '--input-type=module', '-e', code], {
    cwd: relayDir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const [status] = (await once(child, 'exit')) as [number | null];
  return { status, out };
}

const PROBE = `
import { loadUws } from '${uwsDist}';
try { await loadUws(); console.log('LOADED'); }
catch (err) { console.log('CODE=' + err.code); console.log('MESSAGE=' + err.message); process.exit(3); }
`;

describe('uWS transport start-up', () => {
  it('refuses the silent pure-JS fallback with an error naming SCANRELAY_TRANSPORT', async () => {
    // UWS_USE_FALLBACK forces the same fallback the package picks on an unsupported Node ABI.
    const { status, out } = await runChild(PROBE, { UWS_USE_FALLBACK: '1' });
    expect(status).toBe(3);
    expect(out).toContain('CODE=uws_unsupported_runtime');
    expect(out).toMatch(/MESSAGE=.*SCANRELAY_TRANSPORT=ws/);
  });

  it('refuses a missing uWebSockets.js package with an error naming SCANRELAY_TRANSPORT', async () => {
    const hooks = new URL('./fixtures/hide-uws-hooks.mjs', import.meta.url).href;
    const register = `data:text/javascript,import{register}from'node:module';register(${JSON.stringify(hooks)});`;
    const { status, out } = await runChild(PROBE, {}, ['--import', register]);
    expect(status).toBe(3);
    expect(out).toContain('CODE=uws_missing');
    expect(out).toMatch(/MESSAGE=.*SCANRELAY_TRANSPORT=ws/);
  });

  it('loads on this runtime exactly when the native binding exists, and says why not otherwise', async () => {
    const native = await loadUws().then(
      () => true,
      (err: { code?: string; message: string }) => {
        expect(err.code).toBe('uws_unsupported_runtime');
        expect(err.message).toContain('SCANRELAY_TRANSPORT');
        return false;
      },
    );
    // The v20.30 build ships binaries for Node ABIs 93, 108 and 115 (Node 16, 18, 20).
    expect(native).toBe(['93', '108', '115'].includes(process.versions.modules));
  });
});

// The rules below need the native build; on a runtime without it (Node 24 with the v20.30 build) they are not
// registered at all — start-up refusal there is covered above, and CI runs this file on Node 20 as well.
const native = await loadUws().then(
  () => true,
  () => false,
);

if (native) {
  describe('uWS transport rules', () => {
    let server: TransportServer | undefined;
    const cleanups: Array<() => void> = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0)) c();
      await server?.close();
      server = undefined;
    });

    async function start(overrides = {}, tuning = {}) {
      const { hooks, rec } = recordingHooks();
      server = await createUwsTransport(options(overrides), hooks, tuning);
      const { port } = await server.listen();
      return { rec, port };
    }

    function client(port: number, opts: WebSocket.ClientOptions = {}, protocols = ['scanrelay.v1.msgpack']) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/browser?token=ignored`, protocols, opts);
      ws.on('error', () => {}); // refused handshakes are asserted through 'unexpected-response'
      cleanups.push(() => ws.terminate());
      return ws;
    }

    it('copies path, Origin, peer address and offered subprotocols before admitting; answers only the chosen one', async () => {
      const { rec, port } = await start();
      const ws = client(port, { origin: 'https://clinic.test' }, [
        'x-other',
        'scanrelay.v1.json',
        'scanrelay.v1.msgpack',
      ]);
      await once(ws, 'open');
      expect(ws.protocol).toBe('scanrelay.v1.msgpack');
      const req = rec.admitted[0]!;
      expect(req.path).toBe('/v1/browser');
      expect(req.origin).toBe('https://clinic.test');
      expect(req.ip).toMatch(/127\.0\.0\.1/);
      expect(req.protocols.map((p) => p.trim())).toEqual(['x-other', 'scanrelay.v1.json', 'scanrelay.v1.msgpack']);
      await until(rec, () => rec.connections.length === 1);
    });

    it('refuses an upgrade the core refuses with its HTTP status and never opens a connection', async () => {
      const { rec, port } = await start();
      const ws = client(port, { origin: 'https://evil.test' });
      const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
      expect(res.statusCode).toBe(403);
      const other = new WebSocket(`ws://127.0.0.1:${port}/v1/nowhere`, ['scanrelay.v1.json']);
      other.on('error', () => {});
      cleanups.push(() => other.terminate());
      const [, res404] = (await once(other, 'unexpected-response')) as [unknown, { statusCode: number }];
      expect(res404.statusCode).toBe(404);
      expect(rec.connections).toHaveLength(0);
    });

    it('never negotiates permessage-deflate (compression DISABLED)', async () => {
      const { port } = await start();
      const ws = client(port, { perMessageDeflate: true });
      await once(ws, 'open');
      expect(ws.extensions).toBe('');
    });

    it('delivers text as strings and binary as copied bytes, and sends both kinds back', async () => {
      const { rec, port } = await start();
      const ws = client(port);
      await once(ws, 'open');
      ws.send('hello');
      ws.send(Buffer.from([1, 2, 3]));
      await until(rec, () => rec.messages.length === 2);
      expect(rec.messages[0]).toEqual({ data: 'hello', isBinary: false });
      expect(rec.messages[1]!.isBinary).toBe(true);
      expect([...(rec.messages[1]!.data as Uint8Array)]).toEqual([1, 2, 3]);
      const got: Array<[string, boolean]> = [];
      const both = new Promise<void>((resolve) =>
        ws.on('message', (d: Buffer, isBinary) => {
          got.push([d.toString('hex'), isBinary]);
          if (got.length === 2) resolve();
        }),
      );
      const conn = rec.connections[0]!;
      expect(conn.send('{"a":1}')).toBe(true);
      expect(conn.send(new Uint8Array([9, 8]))).toBe(true);
      await both;
      expect(got).toEqual([
        [Buffer.from('{"a":1}').toString('hex'), false],
        ['0908', true],
      ]);
    });

    it('closes a frame larger than maxPayloadLength with 1009 and reports the close once', async () => {
      const { rec, port } = await start({ maxPayloadBytes: 1024 });
      const ws = client(port);
      await once(ws, 'open');
      ws.send(Buffer.alloc(4096));
      const [code] = (await once(ws, 'close')) as [number];
      expect(code).toBe(1009);
      await until(rec, () => rec.closes.length === 1);
      expect(rec.closes).toEqual([{ code: 1009, reason: 'too_large' }]);
      expect(rec.messages).toHaveLength(0);
      // Far past the limit uWS itself drops the socket before buffering the frame (no close frame possible).
      const huge = client(port);
      await once(huge, 'open');
      huge.send(Buffer.alloc(1024 * 17));
      await once(huge, 'close');
      await until(rec, () => rec.closes.length === 2);
      expect(rec.messages).toHaveLength(0);
    });

    it('close(code, reason) reaches the client and the core; send after close is a no-op returning false', async () => {
      const { rec, port } = await start();
      const ws = client(port);
      await once(ws, 'open');
      await until(rec, () => rec.connections.length === 1);
      const conn = rec.connections[0]!;
      conn.send('last words');
      conn.close(4503, 'forbidden');
      const got: string[] = [];
      ws.on('message', (d: Buffer) => got.push(d.toString()));
      const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
      expect(got).toEqual(['last words']);
      expect(code).toBe(4503);
      expect(reason.toString()).toBe('forbidden');
      expect(rec.closes).toEqual([{ code: 4503, reason: 'forbidden' }]);
      expect(conn.send('after')).toBe(false);
      expect(() => conn.close(1000, 'again')).not.toThrow();
      expect(() => conn.terminate()).not.toThrow();
      expect(() => conn.ping()).not.toThrow();
    });

    it('ping reaches the client and its pong reaches the core', async () => {
      const { rec, port } = await start();
      const ws = client(port);
      await once(ws, 'open');
      await until(rec, () => rec.connections.length === 1);
      rec.connections[0]!.ping();
      await until(rec, () => rec.pongs === 1);
    });

    it('caps backpressure: send returns false past maxBufferedBytes, then drain resumes the core', async () => {
      const { rec, port } = await start({ maxBufferedBytes: 64 * 1024 }, { drainLowWaterBytes: 16 * 1024 });
      const { socket } = await rawUpgrade(port); // paused: reads nothing while we fill its buffers
      cleanups.push(() => socket.destroy());
      await until(rec, () => rec.connections.length === 1);
      const conn = rec.connections[0]!;
      const frame = 'x'.repeat(8 * 1024);
      let accepted = 0;
      // Fill from outside any uWS callback, one event-loop turn at a time, until the cap refuses a frame.
      for (let round = 0; round < 2000 && conn.send(frame); round++) {
        accepted++;
        if (accepted % 8 === 0) await new Promise((r) => setImmediate(r));
      }
      expect(conn.send(frame)).toBe(false);
      expect(conn.bufferedAmount).toBeGreaterThan(64 * 1024);
      expect(rec.drains).toBe(0);
      socket.on('data', () => {});
      socket.resume();
      await until(rec, () => rec.drains === 1);
      expect(conn.bufferedAmount).toBeLessThanOrEqual(16 * 1024);
      expect(conn.send(frame)).toBe(true);
      expect(rec.closes).toHaveLength(0);
    });

    it('idleTimeout closes a socket that sends nothing and answers no ping', async () => {
      const { rec, port } = await start({}, { idleTimeoutSeconds: 8 });
      const { socket } = await rawUpgrade(port);
      cleanups.push(() => socket.destroy());
      socket.on('data', () => {}); // reads, but never answers uWS's pings
      socket.resume();
      await until(rec, () => rec.closes.length === 1);
      await once(socket, 'close');
    }, 30_000);

    it('serves plain HTTP through hooks.http with the real peer address, body and headers (onAborted safe)', async () => {
      const { rec, port } = await start();
      const get = await fetch(`http://127.0.0.1:${port}/healthz?x=1`, { headers: { 'x-probe': 'p' } });
      expect(get.status).toBe(200);
      expect(get.headers.get('x-test')).toBe('yes');
      expect(await get.json()).toEqual({ method: 'GET', url: '/healthz?x=1', body: '' });
      const post = await fetch(`http://127.0.0.1:${port}/v1/activate`, { method: 'POST', body: '{"code":"abc"}' });
      expect(await post.json()).toEqual({ method: 'POST', url: '/v1/activate', body: '{"code":"abc"}' });
      const missing = await fetch(`http://127.0.0.1:${port}/missing`);
      expect(missing.status).toBe(404);
      expect(rec.http[0]!.ip).toMatch(/127\.0\.0\.1/);
      expect(rec.http[0]!.headers['x-probe']).toBe('p');

      // A client that promises a body and disconnects halfway: uWS calls onAborted, nothing is written to
      // the dead response (writing would crash the process) and the core's handler never runs.
      const raw = connect(port, '127.0.0.1');
      await once(raw, 'connect');
      raw.write('POST /v1/activate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"partial":');
      await new Promise((r) => setTimeout(r, 20));
      raw.destroy();
      const after = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(after.status).toBe(200);
      expect(rec.http.map((h) => h.url)).toEqual(['/healthz?x=1', '/v1/activate', '/missing', '/healthz']);
    });

    it('refuses a request with more headers than maxHeadersCount (431)', async () => {
      const { rec, port } = await start({ maxHeadersCount: 5 });
      const headers: Record<string, string> = {};
      for (let i = 0; i < 10; i++) headers[`x-h${i}`] = 'v';
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { headers });
      expect(res.status).toBe(431);
      expect(rec.http).toHaveLength(0);
    });

    it('close() ends every open socket and reports each close exactly once', async () => {
      const { rec, port } = await start();
      const a = client(port);
      const b = client(port);
      await Promise.all([once(a, 'open'), once(b, 'open')]);
      await until(rec, () => rec.connections.length === 2);
      await server!.close();
      await server!.close();
      expect(rec.closes).toHaveLength(2);
      await Promise.all([once(a, 'close'), once(b, 'close')]);
    });
  });

  describe('uWS transport writes (separate process)', () => {
    it('coalesces frames sent outside uWS callbacks into one corked write, without uWS warnings', async () => {
      const child = spawn(
        process.execPath,
        [fileURLToPath(new URL('./fixtures/coalesce-server.mjs', import.meta.url))],
        {
          cwd: relayDir,
          stdio: ['pipe', 'pipe', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      try {
        const [line] = (await once(child.stdout, 'data')) as [Buffer];
        const port = Number(/listening (\d+)/.exec(line.toString())![1]);
        const { socket, rest } = await rawUpgrade(port);
        expect(rest.length).toBe(0);
        const reads: Buffer[] = [];
        let buf: Buffer = Buffer.alloc(0);
        let frames = 0;
        const done = new Promise<void>((resolve) => {
          socket.on('data', (chunk: Buffer) => {
            reads.push(chunk);
            const parsed = parseFrames(Buffer.concat([buf, chunk]));
            frames += parsed.frames.length;
            buf = parsed.rest;
            if (frames >= 40) resolve();
          });
        });
        socket.resume();
        socket.write(clientTextFrame('go:40'));
        await done;
        socket.destroy();
        // 40 frames of ~100 bytes sent in one turn → one corked write → one TCP read on the client.
        expect(frames).toBe(40);
        expect(reads).toHaveLength(1);
        expect(stderr).not.toMatch(/cork/i);
      } finally {
        child.stdin.end();
        if (child.exitCode === null) await once(child, 'exit');
      }
    });
  });
}
