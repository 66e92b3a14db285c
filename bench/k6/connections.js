/**
 * k6 connect storm and idle connections: every VU opens a browser socket, authenticates (hello with a session
 * token), subscribes to a site and holds the connection for HOLD seconds. Watch the relay's RSS meanwhile
 * (e.g. `ps -o rss= -p <pid>`) to get memory per idle authenticated connection.
 *
 *   k6 run -e BENCH=/tmp/k6-bench/bench.json -e CONNECTIONS=5000 -e HOLD=30 dist/connections.js
 */
import { check } from 'k6';
import exec from 'k6/execution';
import { Rate, Trend } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { WebSocket } from 'k6/websockets';
import { decode, encode, Minter, SUBPROTOCOL } from './lib/relay.js';

const bench = JSON.parse(open(__ENV.BENCH));
const CODEC = __ENV.CODEC === 'msgpack' ? 'msgpack' : 'json';
const CONNECTIONS = Number(__ENV.CONNECTIONS ?? 100);
const HOLD = Number(__ENV.HOLD ?? 5);

const ready = new Trend('connect_ready', true);
const connected = new Rate('connected');
const minter = new Minter(bench);

export const options = {
  scenarios: {
    storm: {
      executor: 'per-vu-iterations',
      vus: CONNECTIONS,
      iterations: 1,
      exec: 'hold',
      maxDuration: `${HOLD + 60}s`,
    },
  },
  thresholds: { connected: ['rate==1'] },
};

export async function hold() {
  const site = bench.gateways[exec.scenario.iterationInTest % bench.gateways.length].site;
  const token = await minter.session(`k6-idle-${exec.vu.idInTest}`, [site]);
  const t0 = Date.now();
  let ok = false;
  const ws = new WebSocket(`${bench.relay}/v1/browser`, [SUBPROTOCOL[CODEC]], { headers: { Origin: bench.origin } });
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => ws.send(encode(CODEC, { type: 'hello', token }));
  ws.onmessage = (e) => {
    const m = decode(CODEC, e.data);
    if (m.type === 'welcome') ws.send(encode(CODEC, { type: 'subscribe', site }));
    else if (m.type === 'subscribed') {
      ok = true;
      ready.add(Date.now() - t0);
      connected.add(true);
      setTimeout(() => ws.close(), HOLD * 1000);
    } else if (m.type === 'error') check(m, { 'authenticated and subscribed': () => false });
  };
  ws.onclose = () => {
    if (!ok) connected.add(false);
  };
}
