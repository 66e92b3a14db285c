/**
 * Bare ws fan-out peer ("the limit" for a ws relay): `/sub/<topic>` sockets receive every text frame that a
 * `/pub/<topic>` socket sends, forwarded by a loop over a Set. No auth, no parsing. Prints `listening <port>`.
 */
import { type WebSocket, WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? 0);
const topics = new Map<string, Set<WebSocket>>();
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws, req) => {
  const [, role, topic = ''] = (req.url ?? '').split('/');
  ws.on('error', () => ws.terminate());
  if (role === 'sub') {
    const set = topics.get(topic) ?? new Set<WebSocket>();
    topics.set(topic, set);
    set.add(ws);
    ws.on('close', () => set.delete(ws));
  } else {
    ws.on('message', (data, isBinary) => {
      const set = topics.get(topic);
      if (!set) return;
      for (const s of set) s.send(data, { binary: isBinary });
    });
  }
});
wss.on('listening', () => process.stdout.write(`listening ${(wss.address() as { port: number }).port}\n`));
process.on('SIGTERM', () => process.exit(0));
