/**
 * Socket.IO 4.8 fan-out peer: clients connect with `auth: { role, topic }`; subscribers join the topic's room,
 * publishers `emit('p', payload)` and the server emits `e` to the room. With `--redis <url>` the rooms go
 * through @socket.io/redis-adapter (one Redis PUB/SUB hop, as with several nodes). Prints `listening <port>`.
 */
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

const port = Number(process.argv[2] ?? 0);
const redisIdx = process.argv.indexOf('--redis');
const redisUrl = redisIdx > 0 ? process.argv[redisIdx + 1] : undefined;

const http = createServer();
const io = new Server(http, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
if (redisUrl) {
  const pub = new Redis(redisUrl);
  const sub = pub.duplicate();
  io.adapter(createAdapter(pub, sub));
}
io.on('connection', (socket) => {
  const { role, topic } = socket.handshake.auth as { role?: string; topic?: string };
  if (typeof topic !== 'string') {
    socket.disconnect(true);
    return;
  }
  if (role === 'sub') void socket.join(topic);
  else socket.on('p', (payload: string) => io.to(topic).emit('e', payload));
});
http.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${(http.address() as { port: number }).port}\n`));
process.on('SIGTERM', () => process.exit(0));
