/**
 * Command round trip on ScanRelay: browsers send `command {ref, token}` at a fixed rate; a bench gateway
 * verifies each ES256 command token itself (jose, pinned manage key, exact aud/iss/typ) and answers
 * `verified`, `running`, `completed`; latency runs from the scheduled send time to the browser's `completed`.
 */
import { TOKEN_TYP } from '@scanrelay/protocol';
import { importJWK, jwtVerify } from 'jose';
import { type ArmInstance, type RelayClient, type RelayMsg, relayBrowser, relayGateway } from '../harness/arms.js';
import { type LoadHealth, LoadMonitor, sleep } from '../harness/loadgen.js';
import { cpuSeconds } from '../harness/proc.js';
import { ISSUER } from '../harness/scanrelay.js';
import { Latency, type LatencySummary } from '../harness/stats.js';
import { waitUntil } from './fanout.js';

export interface CommandResult {
  rate: number;
  sent: number;
  completed: number;
  failed: number;
  latency: LatencySummary;
  serverCpu: number;
  load: LoadHealth;
  valid: boolean;
  invalidReason?: string;
}

export async function runCommand(
  arm: ArmInstance,
  cfg: { rate: number; durationMs: number; warmupMs: number; browsers: number },
): Promise<CommandResult> {
  const relay = arm.relay;
  if (!relay) throw new Error('the command scenario needs a ScanRelay arm');
  const gw = relay.gateways[0]!;
  const key = await importJWK(relay.manage.key.publicJwk, 'ES256');
  const gateway = await relayGateway(relay.gatewayUrl(), gw);
  gateway.onMessage = (m: RelayMsg) => {
    if (m.type !== 'command') return;
    const command = String(m.command);
    void jwtVerify(String(m.token), key, {
      algorithms: ['ES256'],
      issuer: ISSUER,
      audience: gw.id,
      typ: TOKEN_TYP.command,
      requiredClaims: ['exp', 'iat', 'jti', 'site', 'cmd'],
      maxTokenAge: '5m',
    }).then(
      () => {
        gateway.send({ type: 'command.status', command, state: 'verified' });
        gateway.send({ type: 'command.status', command, state: 'running' });
        gateway.send({ type: 'command.status', command, state: 'completed', detail: { ok: true } });
      },
      () => gateway.send({ type: 'command.status', command, state: 'rejected', detail: { reason: 'signature' } }),
    );
  };
  const sub = 'user-0';
  const browsers: RelayClient[] = [];
  for (let i = 0; i < cfg.browsers; i++)
    browsers.push(await relayBrowser(relay.browserUrl(), await relay.manage.session(sub, [gw.site])));
  const latency = new Latency();
  const pending = new Map<string, number>();
  let completed = 0;
  let failed = 0;
  for (const b of browsers) {
    b.onMessage = (m) => {
      if (m.type !== 'command.status') return;
      const ref = String(m.ref);
      const scheduled = pending.get(ref);
      if (scheduled === undefined) return;
      if (m.state === 'completed') {
        latency.recordMs(performance.now() - scheduled);
        completed++;
        pending.delete(ref);
      } else if (m.state === 'rejected' || m.state === 'failed' || m.state === 'expired') {
        failed++;
        pending.delete(ref);
      }
    };
  }
  const run = async (durationMs: number, record: boolean): Promise<number> => {
    const count = Math.floor((cfg.rate * durationMs) / 1000);
    // Tokens are minted ahead (the manage app's work, not the relay's); one per command, unique jti.
    const tokens: string[] = [];
    for (let i = 0; i < count; i++) tokens.push(await relay.manage.command(gw.id, gw.site, sub));
    const period = 1000 / cfg.rate;
    const t0 = performance.now() + 5;
    let i = 0;
    while (i < count) {
      const now = performance.now();
      while (i < count && t0 + i * period <= now) {
        const ref = `${record ? 'r' : 'w'}${i}`;
        pending.set(ref, record ? t0 + i * period : Number.NEGATIVE_INFINITY);
        browsers[i % browsers.length]!.send({ type: 'command', ref, token: tokens[i]! });
        i++;
      }
      await waitUntil(t0 + i * period);
    }
    const deadline = performance.now() + 3_000;
    while (pending.size > 0 && performance.now() < deadline) await sleep(5);
    return count;
  };
  try {
    await run(cfg.warmupMs, false);
    latency.reset();
    completed = 0;
    failed = 0;
    pending.clear();
    const pids = arm.pids();
    const cpu0 = pids.reduce((a, p) => a + cpuSeconds(p), 0);
    const monitor = new LoadMonitor();
    monitor.start();
    const w0 = performance.now();
    const sent = await run(cfg.durationMs, true);
    const wall = (performance.now() - w0) / 1000;
    const load = monitor.stop();
    const serverCpu = (pids.reduce((a, p) => a + cpuSeconds(p), 0) - cpu0) / wall;
    const reasons: string[] = [];
    if (!load.valid && load.reason) reasons.push(load.reason);
    if (completed !== sent) reasons.push(`${sent - completed} commands did not complete`);
    return {
      rate: cfg.rate,
      sent,
      completed,
      failed,
      latency: latency.summary(),
      serverCpu,
      load,
      valid: reasons.length === 0,
      ...(reasons.length ? { invalidReason: reasons.join('; ') } : {}),
    };
  } finally {
    for (const b of browsers) b.close();
    gateway.close();
  }
}
