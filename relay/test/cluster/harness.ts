/**
 * Multi-node harness: relay nodes as child processes of the built `scanrelay-relay` bin (so a node can be
 * killed with SIGKILL), and resilient fake clients — a gateway with an outbox that resumes from
 * `welcome.acked`, and browsers that reconnect to the next node and resume with `since` — which record
 * everything needed to prove "zero lost, zero doubled".
 *
 * The fake gateway stands in for the other side of the wire only; the relay nodes, Redis and the sockets are
 * real. Run `npx tsc -b relay` first (the suite's npm script does).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Msg, TestClient } from '../helpers/client.js';
import { freePort } from '../helpers/redis.js';

export const RELAY_BIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
export const ORIGIN = 'https://manage.scanrelay.test';

export interface NodeProcess {
  nodeId: string;
  port: number;
  url(endpoint: 'browser' | 'gateway'): string;
  /** SIGKILL (no shutdown, no 1001): the node simply vanishes. */
  kill(): Promise<void>;
  /** SIGTERM and wait for exit. Idempotent. */
  stop(): Promise<void>;
  readonly alive: boolean;
  /** Everything the node wrote to stderr and stdout (JSON log lines), for failure messages. */
  output(): string;
}

const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of started) c.kill('SIGKILL');
});

/** Start one node of the built bin with `env` (SCANRELAY_* settings) and wait for /readyz. */
export async function startNode(nodeId: string, env: Record<string, string>): Promise<NodeProcess> {
  if (!existsSync(RELAY_BIN)) throw new Error(`${RELAY_BIN} is missing: run \`npx tsc -b relay\` first`);
  const port = await freePort();
  const child = spawn(process.execPath, [RELAY_BIN], {
    env: {
      PATH: process.env.PATH ?? '',
      SCANRELAY_HOST: '127.0.0.1',
      SCANRELAY_PORT: String(port),
      SCANRELAY_NODE_ID: nodeId,
      SCANRELAY_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.add(child);
  let out = '';
  const collect = (d: Buffer): void => {
    out = (out + d.toString()).slice(-200_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => started.delete(child));
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (!alive()) throw new Error(`relay node ${nodeId} exited at start-up:\n${out}`);
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`relay node ${nodeId} not ready within 20 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    nodeId,
    port,
    url: (endpoint) => `ws://127.0.0.1:${port}/v1/${endpoint}`,
    get alive() {
      return alive();
    },
    async kill() {
      if (alive()) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (alive()) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
    output: () => out,
  };
}

/** Reconnect bookkeeping shared by the resilient clients. */
export interface Outage {
  /** When the socket closed, ms (Date.now). */
  lostAt: number;
  /** When the next welcome arrived, ms; undefined while still out. */
  backAt?: number;
}

abstract class Resilient {
  client: TestClient | undefined;
  readonly outages: Outage[] = [];
  readonly errors: Msg[] = [];
  #next = 0;
  #stopped = false;
  #connecting = false;

  constructor(protected readonly urls: () => string[]) {}

  /** Connect (to the first URL that accepts) and keep reconnecting until `stop()`. */
  async start(): Promise<void> {
    await this.#connect();
  }

  stop(): void {
    this.#stopped = true;
    this.client?.close();
  }

  get online(): boolean {
    return this.client !== undefined && this.#welcomed;
  }

  #welcomed = false;

  protected abstract hello(): Promise<string>;
  protected abstract onWelcome(welcome: Msg): void;
  protected abstract onMessage(msg: Msg): void;
  protected abstract endpoint(): 'browser' | 'gateway';

  async #connect(): Promise<void> {
    if (this.#connecting || this.#stopped) return;
    this.#connecting = true;
    try {
      for (;;) {
        if (this.#stopped) return;
        const urls = this.urls();
        const url = urls[this.#next++ % urls.length]!;
        try {
          const client = await TestClient.connect(url, this.endpoint() === 'browser' ? { origin: ORIGIN } : {});
          client.send({ type: 'hello', token: await this.hello() });
          const first = await Promise.race([client.next('welcome'), client.closed.then(() => undefined)]);
          if (!first) continue;
          this.client = client;
          this.#welcomed = true;
          const outage = this.outages.at(-1);
          if (outage && outage.backAt === undefined) outage.backAt = Date.now();
          this.#pump(client);
          void client.closed.then(() => this.#lost(client));
          this.onWelcome(first);
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
        }
      }
    } finally {
      this.#connecting = false;
    }
  }

  #pump(client: TestClient): void {
    const flush = (): void => {
      for (const msg of client.drain()) {
        if (msg.type === 'error') this.errors.push(msg);
        this.onMessage(msg);
      }
    };
    // TestClient's own listener (registered first) has queued the frame by the time this one runs.
    client.ws.on('message', flush);
    queueMicrotask(flush);
  }

  #lost(client: TestClient): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.#welcomed = false;
    if (this.#stopped) return;
    this.outages.push({ lostAt: Date.now() });
    void this.#connect();
  }
}

/**
 * A gateway with an in-memory outbox: events stay until acked, are re-sent after every welcome from
 * `acked + 1`, and again if an ack does not come within `resendAfterMs`. Commands are answered
 * `completed` at once; like the real agent's replay guard, a jti that arrives again is answered
 * `rejected {reason: 'replayed'}` and not executed. `deliveries` counts arrivals per jti.
 */
export class ResilientGateway extends Resilient {
  readonly outbox = new Map<number, Msg>();
  acked = 0;
  nextSeq = 1;
  readonly deliveries = new Map<string, number>();
  /** Which connection (1 = first welcome) carried each command's `completed`. */
  readonly completedOn = new Map<string, number>();
  /** Connections that reached welcome so far. */
  link = 0;
  #lastAckAt = Date.now();
  #timer: ReturnType<typeof setInterval>;

  constructor(
    urls: () => string[],
    private readonly assertion: () => Promise<string>,
    private readonly resendAfterMs = 2_000,
  ) {
    super(urls);
    this.#timer = setInterval(() => this.#checkAcks(), 250);
    this.#timer.unref();
  }

  protected endpoint(): 'gateway' {
    return 'gateway';
  }

  protected hello(): Promise<string> {
    return this.assertion();
  }

  /** Produce one event (kept until acked). */
  emit(): number {
    const seq = this.nextSeq++;
    const event: Msg = {
      type: 'event',
      seq,
      kind: 'images.received',
      subject: `ACC${seq % 7}`,
      at: Date.now(),
      data: { count: seq },
    };
    this.outbox.set(seq, event);
    if (this.online) this.client!.send(event);
    return seq;
  }

  protected onWelcome(welcome: Msg): void {
    this.link++;
    this.#ack(Number(welcome.acked));
    this.#resend();
  }

  protected onMessage(msg: Msg): void {
    if (msg.type === 'event.ack') this.#ack(Number(msg.seq));
    else if (msg.type === 'command') {
      const jti = String(msg.command);
      const seen = this.deliveries.get(jti) ?? 0;
      this.deliveries.set(jti, seen + 1);
      if (seen === 0) this.completedOn.set(jti, this.link);
      this.client?.send(
        seen === 0
          ? { type: 'command.status', command: jti, state: 'completed', detail: { ok: true } }
          : { type: 'command.status', command: jti, state: 'rejected', detail: { reason: 'replayed' } },
      );
    }
  }

  override stop(): void {
    clearInterval(this.#timer);
    super.stop();
  }

  #ack(seq: number): void {
    if (seq <= this.acked) return;
    for (let s = this.acked + 1; s <= seq; s++) this.outbox.delete(s);
    this.acked = seq;
    this.#lastAckAt = Date.now();
  }

  #resend(): void {
    this.#lastAckAt = Date.now();
    const seqs = [...this.outbox.keys()].sort((a, b) => a - b);
    for (const s of seqs) this.client?.send(this.outbox.get(s)!);
  }

  #checkAcks(): void {
    if (this.online && this.outbox.size > 0 && Date.now() - this.#lastAckAt > this.resendAfterMs) this.#resend();
  }
}

/**
 * A browser watching one site: subscribes after every welcome with `since` = the last position it saw, and
 * records every gateway event seq (duplicates counted) and every command.status event.
 */
export class ResilientWatcher extends Resilient {
  position: string | undefined;
  readonly seqs: number[] = [];
  /** Every gateway event as received: seq and position. */
  readonly positions: { seq: number; position: string }[] = [];
  readonly resyncs: Msg[] = [];
  /** jti → states seen on the site channel, in order. */
  readonly commandStates = new Map<string, string[]>();
  #subscribed = false;

  constructor(
    urls: () => string[],
    private readonly session: () => Promise<string>,
    private readonly site: string,
  ) {
    super(urls);
  }

  get subscribed(): boolean {
    return this.online && this.#subscribed;
  }

  protected endpoint(): 'browser' {
    return 'browser';
  }

  protected hello(): Promise<string> {
    return this.session();
  }

  protected onWelcome(): void {
    this.#subscribed = false;
    this.client?.send({ type: 'subscribe', site: this.site, ...(this.position ? { since: this.position } : {}) });
  }

  protected onMessage(msg: Msg): void {
    switch (msg.type) {
      case 'subscribed':
        this.#subscribed = true;
        if (!this.position) this.position = String(msg.position);
        return;
      case 'resync':
        this.resyncs.push(msg);
        this.#subscribed = true;
        this.position = String(msg.position);
        return;
      case 'event': {
        this.position = String(msg.position);
        if (msg.kind === 'command.status') {
          const data = msg.data as { command: string; state: string };
          const list = this.commandStates.get(data.command) ?? [];
          list.push(data.state);
          this.commandStates.set(data.command, list);
        } else if (msg.kind === 'images.received') {
          this.seqs.push(Number(msg.seq));
          this.positions.push({ seq: Number(msg.seq), position: String(msg.position) });
        }
        return;
      }
    }
  }
}

/**
 * A browser sending commands: each token is sent once; if its socket dies before `accepted` (or an error) came
 * back, or nothing came back within 2 s (a status routed over pub/sub can be lost while Redis restarts), it is
 * sent again, where "already used" means the first send was accepted.
 */
export class ResilientCommander extends Resilient {
  /** jti → token, for every command not yet acknowledged by the relay. */
  readonly pending = new Map<string, { ref: string; token: string; sentAt: number }>();
  readonly accepted = new Set<string>();
  /** Refusals other than "already used" (a bug in this scenario). */
  readonly refused: Msg[] = [];
  #refs = 0;
  #timer: ReturnType<typeof setInterval>;

  constructor(
    urls: () => string[],
    private readonly session: () => Promise<string>,
  ) {
    super(urls);
    this.#timer = setInterval(() => {
      for (const p of this.pending.values()) {
        if (this.online && Date.now() - p.sentAt > 2_000) this.#send(p);
      }
    }, 250);
    this.#timer.unref();
  }

  override stop(): void {
    clearInterval(this.#timer);
    super.stop();
  }

  #send(p: { ref: string; token: string; sentAt: number }): void {
    p.sentAt = Date.now();
    this.client?.send({ type: 'command', ref: p.ref, token: p.token });
  }

  protected endpoint(): 'browser' {
    return 'browser';
  }

  protected hello(): Promise<string> {
    return this.session();
  }

  send(jti: string, token: string): void {
    const p = { ref: `c${++this.#refs}`, token, sentAt: Date.now() };
    this.pending.set(jti, p);
    if (this.online) this.#send(p);
  }

  protected onWelcome(): void {
    for (const p of this.pending.values()) this.#send(p);
  }

  protected onMessage(msg: Msg): void {
    const entry = [...this.pending.entries()].find(([, p]) => p.ref === msg.ref);
    if (!entry) return;
    const [jti] = entry;
    if (msg.type === 'command.status') {
      this.pending.delete(jti);
      this.accepted.add(jti);
    } else if (msg.type === 'error') {
      if (msg.code === 'internal') {
        // The relay could not check or record it (backend down): send the same token again shortly.
        const again = this.pending.get(jti)!;
        setTimeout(() => {
          if (this.online && this.pending.get(jti) === again) this.#send(again);
        }, 200);
        return;
      }
      this.pending.delete(jti);
      if (String(msg.message).includes('already used')) this.accepted.add(jti);
      else this.refused.push(msg);
    }
  }
}

/** Wait for `check`, polling; fail with `what` and `detail()` after `timeoutMs`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
  detail: () => string = () => '',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} ${detail()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
