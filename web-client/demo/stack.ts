/**
 * `npm start`: the demo stack in one process (see stack-lib.ts). Prints where everything is and stops cleanly
 * on Ctrl-C (SIGINT) or SIGTERM.
 *
 * Settings: SCANRELAY_DEMO_PORT (page, default 8080), SCANRELAY_PORT (relay, default: a free port),
 * SCANRELAY_DEMO_DATA_DIR (keep keys and gateway state between runs; default: a temp dir removed on exit),
 * SCANRELAY_LOG_LEVEL (JSON logs on stderr, default warn), SCANRELAY_DEMO_WEBTRANSPORT (auto | on | off, default
 * auto: only where the relay can serve HTTP/3), SCANRELAY_WEBTRANSPORT_PORT (default: a free port).
 */
import { pino } from 'pino';
import { startStack } from './stack-lib.js';
import { type DemoWebTransportMode, WEBTRANSPORT_MODES } from './webtransport.js';

function portSetting(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > 65535) {
    process.stderr.write(`${name}: "${raw.slice(0, 16)}" is not a TCP port (0–65535); unset it to use ${fallback}\n`);
    process.exit(78);
  }
  return n;
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const level = process.env.SCANRELAY_LOG_LEVEL || 'warn';
if (!LEVELS.includes(level)) {
  process.stderr.write(`SCANRELAY_LOG_LEVEL: "${level.slice(0, 16)}" must be one of ${LEVELS.join(', ')}\n`);
  process.exit(78);
}
const logger = pino({ level, base: { app: 'scanrelay-demo' } }, pino.destination(2));

const wtMode = process.env.SCANRELAY_DEMO_WEBTRANSPORT || 'auto';
if (!WEBTRANSPORT_MODES.includes(wtMode as DemoWebTransportMode)) {
  process.stderr.write(`SCANRELAY_DEMO_WEBTRANSPORT: "${wtMode.slice(0, 16)}" must be auto, on or off\n`);
  process.exit(78);
}

const stack = await startStack({
  logger,
  demoPort: portSetting('SCANRELAY_DEMO_PORT', 8080),
  relayPort: portSetting('SCANRELAY_PORT', 0),
  webTransport: wtMode as DemoWebTransportMode,
  webTransportPort: portSetting('SCANRELAY_WEBTRANSPORT_PORT', 0),
  ...(process.env.SCANRELAY_DEMO_DATA_DIR ? { dataDir: process.env.SCANRELAY_DEMO_DATA_DIR } : {}),
}).catch((err: unknown) => {
  const e = err as NodeJS.ErrnoException;
  const hint =
    e.code === 'EADDRINUSE'
      ? ' — the port is taken: set SCANRELAY_DEMO_PORT (page) or SCANRELAY_PORT (relay) to a free one'
      : '';
  process.stderr.write(`ScanRelay demo could not start: ${e.message}${hint}\n`);
  process.exit(1);
});

const lines = [
  '',
  'ScanRelay demo is running.',
  '',
  `  Open ${stack.demo.url}/  (or http://localhost:${stack.demo.port}/) and choose a demo user.`,
  '',
  `  manage app (demo)   ${stack.demo.url}  signs session and command tokens; JWKS ${stack.demo.url}/.well-known/jwks.json`,
  `  relay (embedded)    ${stack.relayUrl}/v1/browser  and /v1/gateway; health http://127.0.0.1:${stack.relay.port}/healthz`,
  stack.webTransportUrl
    ? `  WebTransport        ${stack.webTransportUrl}/v1/browser (self-signed, pinned by the page; WebSocket is the fallback)`
    : '  WebTransport        off (SCANRELAY_DEMO_WEBTRANSPORT=on to offer it; see web-client/README.md)',
  ...stack.sites.map(
    (s) =>
      `  ${s.site.padEnd(19)} gateway ${s.gateway}, DICOM SCP 127.0.0.1:${s.dicomPort}, modality simulator working its worklist`,
  ),
  `  data directory      ${stack.dataDir}`,
  '',
  'Press Ctrl-C to stop.',
  '',
];
process.stdout.write(lines.join('\n'));

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`\n${signal}: stopping the demo…\n`);
  const force = setTimeout(() => {
    process.stderr.write('the demo did not stop within 15 s; exiting anyway\n');
    process.exit(1);
  }, 15_000);
  force.unref();
  stack.stop().then(
    () => {
      process.stdout.write('stopped.\n');
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`stopping failed: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
