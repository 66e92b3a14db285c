/**
 * k6 churn: gateways publish steadily while every browser drops its socket every DROP_EVERY seconds and
 * resumes with `subscribe {site, since: <last position>}`. Every browser must still see every event once.
 * (Restarting a relay node mid-run is outside k6's reach: do it by hand, or use the Node harness's churn.)
 *
 *   k6 run -e BENCH=/tmp/k6-bench/bench.json -e RATE=20 -e SUBSCRIBERS=20 -e DURATION=30 -e DROP_EVERY=3 dist/churn.js
 */
import exec from 'k6/execution';
import { Counter, Rate } from 'k6/metrics';
import { clearInterval, setInterval, setTimeout } from 'k6/timers';
import { WebSocket } from 'k6/websockets';
import { decode, encode, Minter, SUBPROTOCOL } from './lib/relay.js';

const bench = JSON.parse(open(__ENV.BENCH));
const CODEC = __ENV.CODEC === 'msgpack' ? 'msgpack' : 'json';
const SITES = Math.min(Number(__ENV.SITES ?? bench.gateways.length), bench.gateways.length);
const SUBSCRIBERS = Number(__ENV.SUBSCRIBERS ?? 5);
const RATE = Number(__ENV.RATE ?? 20);
const DURATION = Number(__ENV.DURATION ?? 10);
const DROP_EVERY = Number(__ENV.DROP_EVERY ?? 2);
const LEAD = Number(__ENV.LEAD ?? 2);
const TAIL = Number(__ENV.TAIL ?? 3);
const SETTLE = Number(__ENV.SETTLE ?? 10);
const EXPECTED = Math.floor(RATE * DURATION);

const lost = new Counter('events_lost');
const duplicates = new Counter('events_duplicated');
const reconnects = new Counter('reconnects');
const resumed = new Rate('resumed_without_resync');
const minter = new Minter(bench);

export const options = {
  scenarios: {
    browsers: {
      executor: 'per-vu-iterations',
      vus: SITES * SUBSCRIBERS,
      iterations: 1,
      exec: 'browser',
      maxDuration: `${LEAD + DURATION + TAIL + SETTLE + 30}s`,
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
  thresholds: { events_lost: ['count==0'], resumed_without_resync: ['rate==1'] },
};

export async function browser() {
  const site = bench.gateways[exec.scenario.iterationInTest % SITES].site;
  const token = await minter.session(`k6-churn-${exec.vu.idInTest}`, [site]);
  const seen = new Set();
  // The first subscription starts "from now": events the gateway sent before it (the snapshot's seq for the
  // subject) were never owed to this browser, so a slow first connect on a loaded machine is not a loss.
  let owedAfter = 0;
  let range;
  let position;
  let socket;
  let done = false;
  const connect = () => {
    const ws = new WebSocket(`${bench.relay}/v1/browser`, [SUBPROTOCOL[CODEC]], { headers: { Origin: bench.origin } });
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => ws.send(encode(CODEC, { type: 'hello', token }));
    ws.onmessage = (e) => {
      const m = decode(CODEC, e.data);
      if (m.type === 'welcome')
        ws.send(encode(CODEC, { type: 'subscribe', site, ...(position ? { since: position } : {}) }));
      else if (m.type === 'subscribed') {
        if (!position) for (const e of m.snapshot ?? []) if (e.subject === 'K6') owedAfter = Math.max(owedAfter, e.seq);
        resumed.add(true);
      } else if (m.type === 'resync') resumed.add(false);
      else if (m.type === 'event' && m.kind === 'images.received') {
        if (seen.has(m.seq)) duplicates.add(1);
        else seen.add(m.seq);
        range ??= m.data;
        position = m.position;
      }
    };
    ws.onclose = () => {
      if (!done) {
        reconnects.add(1);
        connect();
      }
    };
    socket = ws;
  };
  // Events this browser must see: the run's seqs after its first subscription point (all of them when it
  // subscribed before the gateway started; EXPECTED when it saw none, so a browser that got nothing counts all).
  const owedEvents = () => (range ? range.last - Math.max(range.first - 1, owedAfter) : EXPECTED);
  connect();
  const dropper = setInterval(() => socket.close(), DROP_EVERY * 1000 + Math.floor(Math.random() * 500));
  // At the end stop dropping, then give late events (a loaded gateway's timer drifts; a browser may be
  // mid-reconnect) up to SETTLE more seconds: "lost" means never arrived, not arrived late.
  setTimeout(
    () => {
      clearInterval(dropper);
      const settleUntil = Date.now() + SETTLE * 1000;
      const finish = setInterval(() => {
        const owed = owedEvents();
        if (seen.size < owed && Date.now() < settleUntil) return;
        clearInterval(finish);
        done = true;
        lost.add(Math.max(0, owed - seen.size));
        socket.close();
      }, 100);
    },
    (LEAD + DURATION + TAIL) * 1000,
  );
}

export async function gateway() {
  const gw = bench.gateways[exec.scenario.iterationInTest % SITES];
  const token = await minter.assertion(gw);
  const ws = new WebSocket(`${bench.relay}/v1/gateway`, [SUBPROTOCOL[CODEC]]);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => ws.send(encode(CODEC, { type: 'hello', token }));
  ws.onmessage = (e) => {
    const m = decode(CODEC, e.data);
    if (m.type !== 'welcome') return;
    let seq = m.acked;
    const first = m.acked + 1;
    const last = m.acked + EXPECTED;
    const timer = setInterval(() => {
      if (seq >= last) {
        clearInterval(timer);
        setTimeout(() => ws.close(), 1000);
        return;
      }
      seq++;
      ws.send(
        encode(CODEC, {
          type: 'event',
          seq,
          kind: 'images.received',
          subject: 'K6',
          at: Date.now(),
          data: { n: seq, first, last },
        }),
      );
    }, 1000 / RATE);
  };
}
