// A fake gateway in its own process, so a test can SIGSTOP it: a stopped process answers no ping frames,
// exactly like a half-open "zombie" link. Env: URL (ws://…/v1/gateway), TOKEN (gateway assertion).
// Prints "welcome" once the relay welcomed it, and "command <jti>" for each command it receives.
import WebSocket from 'ws';

const ws = new WebSocket(process.env.URL, ['scanrelay.v1.json'], { perMessageDeflate: false });
ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', token: process.env.TOKEN })));
ws.on('message', (data) => {
  const msg = JSON.parse(String(data));
  if (msg.type === 'welcome') process.stdout.write('welcome\n');
  if (msg.type === 'command') process.stdout.write(`command ${msg.command}\n`);
});
ws.on('close', (code) => {
  process.stdout.write(`closed ${code}\n`);
  process.exit(0);
});
ws.on('error', () => process.exit(1));
