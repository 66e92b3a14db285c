/**
 * k6 command round trip: browser VUs send `command {ref, token}` (ES256 command tokens minted in-script) at
 * RATE/s in total; one gateway VU verifies each token's ES256 signature with WebCrypto against the manage
 * app's public key and answers verified → running → completed. command_rtt runs from send to `completed`.
 *
 *   k6 run -e BENCH=/tmp/k6-bench/bench.json -e RATE=500 -e DURATION=10 dist/command.js
 */
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import { clearInterval, setInterval, setTimeout } from 'k6/timers';
import { WebSocket } from 'k6/websockets';
import { decode, encode, Minter, SUBPROTOCOL } from './lib/relay.js';

const bench = JSON.parse(open(__ENV.BENCH));
const CODEC = __ENV.CODEC === 'msgpack' ? 'msgpack' : 'json';
const BROWSERS = Number(__ENV.BROWSERS ?? 5);
const RATE = Number(__ENV.RATE ?? 50);
const DURATION = Number(__ENV.DURATION ?? 5);
const PER_BROWSER = Math.floor((RATE * DURATION) / BROWSERS);
/** Seconds the sockets stay open after the last command, for late statuses. */
const TAIL = Number(__ENV.TAIL ?? 3);

const rtt = new Trend('command_rtt', true);
const completed = new Counter('commands_completed');
const sent = new Counter('commands_sent');
const failed = new Counter('commands_failed');
const verified = new Rate('gateway_signature_ok');
const minter = new Minter(bench);
const gw = bench.gateways[0];

export const options = {
  scenarios: {
    gateway: {
      executor: 'per-vu-iterations',
      vus: 1,
      iterations: 1,
      exec: 'gateway',
      maxDuration: `${DURATION + 30}s`,
    },
    browsers: {
      executor: 'per-vu-iterations',
      vus: BROWSERS,
      iterations: 1,
      exec: 'browser',
      startTime: '1s',
      maxDuration: `${DURATION + 30}s`,
    },
  },
  thresholds: { commands_failed: ['count==0'], gateway_signature_ok: ['rate==1'], command_rtt: ['p(99)<50'] },
};

function b64urlDecode(text) {
  const s = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

async function verifier() {
  const { kty, crv, x, y } = bench.manage.privateJwk;
  const key = await crypto.subtle.importKey('jwk', { kty, crv, x, y }, { name: 'ECDSA', namedCurve: 'P-256' }, false, [
    'verify',
  ]);
  return async (token) => {
    const [h, p, sig] = token.split('.');
    const header = JSON.parse(new TextDecoder().decode(b64urlDecode(h)));
    const claims = JSON.parse(new TextDecoder().decode(b64urlDecode(p)));
    if (header.alg !== 'ES256' || header.typ !== 'scanrelay-command+jwt') return false;
    if (claims.aud !== gw.id || claims.iss !== bench.issuer || claims.exp * 1000 < Date.now()) return false;
    return crypto.subtle.verify(
      { name: 'ECDSA', hash: 'SHA-256' },
      key,
      b64urlDecode(sig),
      new TextEncoder().encode(`${h}.${p}`),
    );
  };
}

export async function gateway() {
  const verify = await verifier();
  const token = await minter.assertion(gw);
  const ws = new WebSocket(`${bench.relay}/v1/gateway`, [SUBPROTOCOL[CODEC]]);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => ws.send(encode(CODEC, { type: 'hello', token }));
  ws.onmessage = async (e) => {
    const m = decode(CODEC, e.data);
    if (m.type !== 'command') return;
    const ok = await verify(m.token);
    verified.add(ok);
    const status = (state, extra = {}) =>
      ws.send(encode(CODEC, { type: 'command.status', command: m.command, state, ...extra }));
    if (!ok) return status('rejected', { detail: { reason: 'signature' } });
    status('verified');
    status('running');
    status('completed', { detail: { ok: true } });
  };
  setTimeout(() => ws.close(), (1 + DURATION + 2 * TAIL) * 1000);
}

export async function browser() {
  const sub = `k6-cmd-${exec.vu.idInTest}`;
  const session = await minter.session(sub, [gw.site]);
  const tokens = [];
  for (let i = 0; i < PER_BROWSER; i++) tokens.push(await minter.command(gw, gw.site, sub));
  const pending = new Map();
  const ws = new WebSocket(`${bench.relay}/v1/browser`, [SUBPROTOCOL[CODEC]], { headers: { Origin: bench.origin } });
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => ws.send(encode(CODEC, { type: 'hello', token: session }));
  ws.onmessage = (e) => {
    const m = decode(CODEC, e.data);
    if (m.type === 'welcome') {
      let i = 0;
      const timer = setInterval(
        () => {
          if (i >= tokens.length) {
            clearInterval(timer);
            setTimeout(() => ws.close(), TAIL * 1000);
            return;
          }
          const ref = `c${i}`;
          pending.set(ref, Date.now());
          ws.send(encode(CODEC, { type: 'command', ref, token: tokens[i++] }));
          sent.add(1);
        },
        (1000 * BROWSERS) / RATE,
      );
    } else if (m.type === 'command.status' && pending.has(m.ref)) {
      if (m.state === 'completed') {
        rtt.add(Date.now() - pending.get(m.ref));
        completed.add(1);
        pending.delete(m.ref);
      } else if (['rejected', 'failed', 'expired'].includes(m.state)) {
        failed.add(1);
        pending.delete(m.ref);
      }
    } else if (m.type === 'error') {
      check(m, { 'no relay error': () => false });
    }
  };
}
