/**
 * Bare uWebSockets.js fan-out peer ("the limit"): `/sub/<topic>` sockets subscribe to the topic, frames
 * from `/pub/<topic>` go out through `app.publish`. Compression off. Prints `listening <port>`.
 */
import uwsModule from 'uWebSockets.js';

const port = Number(process.argv[2] ?? 0);
const uws = uwsModule;
// The npm build falls back to a slow JS version on unsupported Node ABIs; that would not be "the limit".
if (typeof (uws as { DISABLED?: unknown }).DISABLED !== 'number') {
  process.stderr.write('uws-peer: uWebSockets.js has no native build for this Node; run the bench on Node 20\n');
  process.exit(2);
}
const app = uws.App();
interface Data {
  role: string;
  topic: string;
}
app.ws<Data>('/*', {
  compression: uws.DISABLED,
  maxPayloadLength: 64 * 1024,
  maxBackpressure: 1024 * 1024,
  idleTimeout: 120,
  upgrade: (res, req, context) => {
    const [, role = '', topic = ''] = req.getUrl().split('/');
    const key = req.getHeader('sec-websocket-key');
    const protocol = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    res.cork(() => res.upgrade<Data>({ role, topic }, key, protocol, extensions, context));
  },
  open: (ws) => {
    const d = ws.getUserData();
    if (d.role === 'sub') ws.subscribe(d.topic);
  },
  message: (ws, message, isBinary) => {
    app.publish(ws.getUserData().topic, message, isBinary);
  },
});
app.listen('127.0.0.1', port, (socket) => {
  if (!socket) {
    process.stderr.write('uws-peer: cannot listen\n');
    process.exit(1);
  }
  process.stdout.write(`listening ${uws.us_socket_local_port(socket)}\n`);
});
process.on('SIGTERM', () => process.exit(0));
