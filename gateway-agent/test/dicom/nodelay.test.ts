/**
 * TCP_NODELAY on the SCU side depends on reaching dcmjs-dimse's client socket (it offers no socket option):
 * this pins that path for the installed version, so an upgrade that moves it fails here instead of silently
 * bringing back ~40 ms of Nagle/delayed-ACK wait per DIMSE exchange.
 */
import { createServer, Socket } from 'node:net';
import dimse from 'dcmjs-dimse';
import { afterEach, expect, it } from 'vitest';
import { clientSocket, setNoDelay } from '../../src/dicom/dimse-util.js';

const servers: ReturnType<typeof createServer>[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

it('reaches the socket a dcmjs-dimse Client opens, so TCP_NODELAY can be set on it', async () => {
  const accepted: Socket[] = [];
  const server = createServer((s) => {
    accepted.push(s);
    s.destroy();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const client = new dimse.Client();
  expect(clientSocket(client)).toBeUndefined();
  client.addRequest(new dimse.requests.CEchoRequest());
  const closed = new Promise<void>((r) =>
    (client as unknown as { on(e: string, f: () => void): void }).on('closed', r),
  );
  client.send('127.0.0.1', port, 'SCU', 'SCP', { connectTimeout: 2000 });
  const socket = clientSocket(client);
  expect(socket).toBeInstanceOf(Socket);
  expect(setNoDelay(socket)).toBe(true);
  await closed;
  expect(setNoDelay(undefined)).toBe(false);
});
