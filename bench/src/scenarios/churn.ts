/**
 * Churn on ScanRelay: gateways publish steadily; browsers are dropped at random and reconnect with
 * `subscribe {site, since: <last position>}`; in the middle one relay node is restarted (the browsers' node
 * on the two-node arm, whose clients then resume on the other node). Gateways keep every event until acked
 * and resend after `welcome.acked`, as the agent's outbox does. At the end every browser must have seen every
 * `seq` of its site: loss must be 0.
 */
import { type ArmInstance, type RelayClient, type RelayMsg, relayBrowser, relayGateway } from '../harness/arms.js';
import { sleep } from '../harness/loadgen.js';
import type { EnrolledGateway } from '../harness/scanrelay.js';

export interface ChurnResult {
  sites: number;
  browsers: number;
  published: number;
  drops: number;
  restarts: number;
  resyncs: number;
  lost: number;
  duplicates: number;
  valid: boolean;
  invalidReason?: string;
}

interface Watcher {
  site: string;
  seen: Set<number>;
  duplicates: number;
  position: string | undefined;
  client: RelayClient | undefined;
  resyncs: number;
}

/** A gateway with an outbox: events stay until acked and are resent after a reconnect. */
class BenchGateway {
  seq = 0;
  private client: RelayClient | undefined;
  private readonly unacked = new Map<number, Record<string, unknown>>();
  private connecting: Promise<void> | undefined;

  constructor(
    private readonly gw: EnrolledGateway,
    private readonly url: () => string,
  ) {}

  async connect(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const c = await relayGateway(this.url(), this.gw);
        c.onMessage = (m: RelayMsg) => {
          if (m.type === 'event.ack')
            for (const s of [...this.unacked.keys()]) if (s <= Number(m.seq)) this.unacked.delete(s);
        };
        c.ws.on('close', () => {
          if (this.client === c) {
            this.client = undefined;
            this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
          }
        });
        this.client = c;
        for (const e of this.unacked.values()) c.send(e);
        return;
      } catch (err) {
        if (attempt > 200) throw err;
        await sleep(50);
      }
    }
  }

  publish(): void {
    const e = {
      type: 'event',
      seq: ++this.seq,
      kind: 'images.received',
      subject: 'CHURN1',
      at: Date.now(),
      data: { n: this.seq },
    };
    this.unacked.set(this.seq, e);
    this.client?.send(e);
  }

  get pending(): number {
    return this.unacked.size;
  }

  close(): void {
    const c = this.client;
    this.client = undefined;
    c?.close();
  }
}

export async function runChurn(
  arm: ArmInstance,
  cfg: { sites: number; browsersPerSite: number; rate: number; durationMs: number; drops: number },
  random: () => number = Math.random,
): Promise<ChurnResult> {
  const relay = arm.relay;
  if (!relay) throw new Error('the churn scenario needs a ScanRelay arm');
  const sites = Math.min(cfg.sites, relay.gateways.length);
  const twoNodes = relay.browserUrl(0) !== relay.browserUrl();
  let browserNodeDown = false;
  const gateways = relay.gateways.slice(0, sites).map((g) => new BenchGateway(g, () => relay.gatewayUrl(0)));
  for (const g of gateways) await g.connect();

  const watchers: Watcher[] = [];
  const attach = async (w: Watcher): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      try {
        // While the browsers' node restarts, resume on the other one (as a client behind a balancer would).
        const url = twoNodes && browserNodeDown ? relay.browserUrl(0) : relay.browserUrl();
        const c = await relayBrowser(url, await relay.manage.session(`churn-${w.site}`, [w.site]));
        c.onEvent = (m) => {
          if (m.kind !== 'images.received') return;
          const seq = Number(m.seq);
          if (w.seen.has(seq)) w.duplicates++;
          else w.seen.add(seq);
          w.position = String(m.position);
        };
        const reply = await c.request(
          { type: 'subscribe', site: w.site, ...(w.position ? { since: w.position } : {}) },
          ['subscribed', 'resync'],
        );
        if (reply.type === 'resync') w.resyncs++;
        w.client = c;
        c.ws.on('close', () => {
          if (w.client === c) {
            w.client = undefined;
            void attach(w);
          }
        });
        return;
      } catch (err) {
        if (attempt > 200) throw err;
        await sleep(50);
      }
    }
  };
  for (let s = 0; s < sites; s++)
    for (let b = 0; b < cfg.browsersPerSite; b++) {
      const w: Watcher = {
        site: relay.gateways[s]!.site,
        seen: new Set(),
        duplicates: 0,
        position: undefined,
        client: undefined,
        resyncs: 0,
      };
      watchers.push(w);
      await attach(w);
    }

  let drops = 0;
  let restarts = 0;
  const period = (1000 * sites) / cfg.rate;
  const dropEvery = cfg.durationMs / Math.max(1, cfg.drops);
  const t0 = performance.now();
  let nextDrop = t0 + dropEvery * random();
  let restarted = false;
  let i = 0;
  while (performance.now() - t0 < cfg.durationMs) {
    const now = performance.now();
    while (t0 + i * period <= now) {
      for (const g of gateways) g.publish();
      i++;
    }
    if (now >= nextDrop) {
      const w = watchers[Math.floor(random() * watchers.length)]!;
      w.client?.close();
      drops++;
      nextDrop = now + dropEvery * (0.5 + random());
    }
    if (!restarted && now - t0 >= cfg.durationMs / 2) {
      restarted = true;
      const node = twoNodes ? 1 : 0;
      browserNodeDown = twoNodes;
      void relay.restartNode(node).then(() => {
        browserNodeDown = false;
        restarts++;
      });
    }
    await sleep(2);
  }
  // Let everything settle: gateways flush their outboxes, browsers catch up.
  const published = gateways.reduce((a, g) => a + g.seq, 0);
  const deadline = performance.now() + 15_000;
  const complete = (): boolean =>
    gateways.every((g) => g.pending === 0) &&
    watchers.every(
      (w) => w.client !== undefined && w.seen.size >= gateways.find((_, s) => relay.gateways[s]!.site === w.site)!.seq,
    );
  while (!complete() && performance.now() < deadline) await sleep(20);
  while (restarted && restarts === 0 && performance.now() < deadline) await sleep(20);
  let lost = 0;
  let duplicates = 0;
  let resyncs = 0;
  for (const w of watchers) {
    const g = gateways[relay.gateways.findIndex((x) => x.site === w.site)]!;
    for (let s = 1; s <= g.seq; s++) if (!w.seen.has(s)) lost++;
    duplicates += w.duplicates;
    resyncs += w.resyncs;
  }
  for (const w of watchers) {
    const c = w.client;
    w.client = undefined;
    c?.close();
  }
  for (const g of gateways) g.close();
  const reasons: string[] = [];
  if (lost > 0) reasons.push(`${lost} events never reached a browser`);
  if (restarts !== 1) reasons.push('the node restart did not complete');
  return {
    sites,
    browsers: watchers.length,
    published,
    drops,
    restarts,
    resyncs,
    lost,
    duplicates,
    valid: reasons.length === 0,
    ...(reasons.length ? { invalidReason: reasons.join('; ') } : {}),
  };
}
