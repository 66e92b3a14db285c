/**
 * k6 fan-out: one gateway VU per site publishes `images.received` events at RATE/s for DURATION seconds;
 * SUBSCRIBERS browser VUs per site say hello, subscribe and measure each event's latency from its send time.
 *
 *   k6 run -e BENCH=/tmp/k6-bench/bench.json -e CODEC=msgpack -e RATE=100 -e SUBSCRIBERS=100 dist/fanout.js
 *
 * Metrics: event_latency (ms), events_received, events_published, events_lost (seq gaps per browser),
 * auth_ok (rate), plus k6's ws_* built-ins. Thresholds fail the run on any loss.
 */
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import { clearInterval, setInterval, setTimeout } from 'k6/timers';
import { WebSocket } from 'k6/websockets';
import { decode, encode, Minter, PAD, SUBPROTOCOL } from './lib/relay.js';

const bench = JSON.parse(open(__ENV.BENCH));
const CODEC = __ENV.CODEC === 'msgpack' ? 'msgpack' : 'json';
const SITES = Math.min(Number(__ENV.SITES ?? bench.gateways.length), bench.gateways.length);
const SUBSCRIBERS = Number(__ENV.SUBSCRIBERS ?? 10);
const RATE = Number(__ENV.RATE ?? 10);
const DURATION = Number(__ENV.DURATION ?? 10);
const EXPECTED = Math.floor(RATE * DURATION);
/** Seconds browsers connect ahead of the gateways, and stay after the last event. */
const LEAD = Number(__ENV.LEAD ?? 2);
const TAIL = Number(__ENV.TAIL ?? 3);

const latency = new Trend('event_latency', true);
const received = new Counter('events_received');
const published = new Counter('events_published');
const lost = new Counter('events_lost');
const authOk = new Rate('auth_ok');
const minter = new Minter(bench);

export const options = {
  scenarios: {
    browsers: {
      executor: 'per-vu-iterations',
      vus: SITES * SUBSCRIBERS,
      iterations: 1,
      exec: 'browser',
      maxDuration: `${DURATION + 30}s`,
    },
    gateways: {
      executor: 'per-vu-iterations',
      vus: SITES,
      iterations: 1,
      exec: 'gateway',
      startTime: `${LEAD}s`,
      maxDuration: `${DURATION + 30}s`,
    },
  },
  thresholds: { events_lost: ['count==0'], auth_ok: ['rate==1'], event_latency: ['p(99)<50'] },
};

function connect(endpoint, onMessage) {
  const params = endpoint === 'browser' ? { headers: { Origin: bench.origin } } : {};
  const ws = new WebSocket(`${bench.relay}/v1/${endpoint}`, [SUBPROTOCOL[CODEC]], params);
  ws.binaryType = 'arraybuffer';
  ws.onmessage = (e) => onMessage(ws, decode(CODEC, e.data));
  return ws;
}

export async function browser() {
  const site = bench.gateways[exec.scenario.iterationInTest % SITES].site;
  const token = await minter.session(`k6-${exec.vu.idInTest}`, [site]);
  const seen = new Set();
  const ws = connect('browser', (socket, m) => {
    if (m.type === 'welcome') {
      authOk.add(true);
      socket.send(encode(CODEC, { type: 'subscribe', site }));
    } else if (m.type === 'subscribed') {
      check(m, { 'subscribed to its site': (x) => x.site === site });
    } else if (m.type === 'event' && m.kind === 'images.received') {
      received.add(1);
      seen.add(m.seq);
      latency.add(Date.now() - m.data.ts);
    } else if (m.type === 'error') {
      authOk.add(false);
      socket.close();
    }
  });
  ws.onopen = () => ws.send(encode(CODEC, { type: 'hello', token }));
  // Browsers join LEAD s before the gateways start and leave TAIL s after the last event was sent.
  setTimeout(
    () => {
      // Each gateway sends EXPECTED events, continuing its seq after what the relay already holds.
      lost.add(Math.max(0, EXPECTED - seen.size));
      ws.close();
    },
    (LEAD + DURATION + TAIL) * 1000,
  );
}

export async function gateway() {
  const gw = bench.gateways[exec.scenario.iterationInTest % SITES];
  const token = await minter.assertion(gw);
  let seq = 0;
  let timer;
  const ws = connect('gateway', (socket, m) => {
    if (m.type !== 'welcome') return;
    authOk.add(true);
    seq = m.acked;
    const last = m.acked + EXPECTED;
    timer = setInterval(() => {
      if (seq >= last) {
        clearInterval(timer);
        setTimeout(() => socket.close(), 1000);
        return;
      }
      seq++;
      socket.send(
        encode(CODEC, {
          type: 'event',
          seq,
          kind: 'images.received',
          subject: 'K6',
          at: Date.now(),
          data: { ts: Date.now(), pad: PAD },
        }),
      );
      published.add(1);
    }, 1000 / RATE);
  });
  ws.onopen = () => ws.send(encode(CODEC, { type: 'hello', token }));
}
