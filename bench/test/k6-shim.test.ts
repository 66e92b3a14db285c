/**
 * The k6 scripts, built with esbuild exactly as for k6 but with the k6 modules mapped onto bench/k6/shim,
 * run briefly against a real relay process (both codecs): they must connect, authenticate, receive events or
 * command statuses, and report their metrics. k6 itself is not installed here (licence); this proves the
 * scripts speak protocol v1. No timing is asserted.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildForK6, buildForShim, K6_SCRIPTS } from '../k6/build.js';
import { enrol, makeKeys } from '../k6/prepare.js';
import { runK6Script } from '../k6/shim/runner.js';
import { startRelayNode } from '../src/harness/scanrelay.js';

let dir: string;
let relay: Awaited<ReturnType<typeof startRelayNode>> | undefined;
let benchFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scanrelay-k6-'));
  const manage = await makeKeys(dir);
  relay = await startRelayNode({ transport: 'ws', manage, dataDir: join(dir, 'data') });
  await enrol(dir, `http://127.0.0.1:${relay.port}`, 2, manage);
  benchFile = join(dir, 'bench.json');
}, 60_000);

afterAll(async () => {
  await relay?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('k6 scripts build for k6', () => {
  it.each(K6_SCRIPTS)('%s bundles msgpackr and keeps the k6 modules external', async (script) => {
    const out = await buildForK6(script, join(dir, 'k6-dist'));
    const { readFile } = await import('node:fs/promises');
    const code = await readFile(out, 'utf8');
    expect(code).toMatch(/from "k6\/websockets"/);
    expect(code).toMatch(/from "k6\/metrics"/);
    expect(code).not.toMatch(/from "msgpackr"/);
  });
});

describe.each(['json', 'msgpack'])('k6 scripts under the shim, codec %s', (codec) => {
  it('fanout: browsers authenticate, subscribe and receive every event', async () => {
    const bundle = await buildForShim('fanout', join(dir, `shim-${codec}`));
    const summary = await runK6Script(bundle, {
      env: {
        BENCH: benchFile,
        CODEC: codec,
        SITES: '2',
        SUBSCRIBERS: '3',
        RATE: '20',
        DURATION: '1',
        LEAD: '0.5',
        TAIL: '1',
      },
      maxDurationMs: 30_000,
    });
    expect(summary.errors).toEqual([]);
    expect(summary.interrupted).toBe(0);
    const m = summary.metrics;
    expect(m.auth_ok!.values.rate).toBe(1);
    expect(m.auth_ok!.count).toBe(2 * 3 + 2);
    expect(m.events_published!.values.count).toBe(2 * 20);
    expect(m.events_received!.values.count).toBe(2 * 3 * 20);
    expect(m.events_lost!.values.count).toBe(0);
    expect(m.event_latency!.count).toBe(2 * 3 * 20);
    expect(m.checks!.values.rate).toBe(1);
    expect(m.ws_sessions!.values.count).toBe(8);
    expect(m.ws_msgs_received!.values.count).toBeGreaterThan(120);
  }, 40_000);

  it('command: every command is verified (ES256) by the gateway VU and completes', async () => {
    const bundle = await buildForShim('command', join(dir, `shim-${codec}`));
    const summary = await runK6Script(bundle, {
      env: { BENCH: benchFile, CODEC: codec, BROWSERS: '2', RATE: '20', DURATION: '1', TAIL: '1' },
      maxDurationMs: 30_000,
    });
    expect(summary.errors).toEqual([]);
    const m = summary.metrics;
    expect(m.commands_sent!.values.count).toBe(20);
    expect(m.commands_completed!.values.count).toBe(20);
    expect(m.commands_failed).toBeUndefined();
    expect(m.gateway_signature_ok!.values).toMatchObject({ rate: 1, passes: 20 });
    expect(m.command_rtt!.count).toBe(20);
  }, 40_000);

  it('churn: browsers dropped every few hundred ms resume with since and miss nothing', async () => {
    const bundle = await buildForShim('churn', join(dir, `shim-${codec}`));
    const summary = await runK6Script(bundle, {
      env: {
        BENCH: benchFile,
        CODEC: codec,
        SITES: '2',
        SUBSCRIBERS: '2',
        RATE: '30',
        DURATION: '1.5',
        DROP_EVERY: '0.3',
        LEAD: '0.5',
        TAIL: '1',
      },
      maxDurationMs: 30_000,
    });
    expect(summary.errors).toEqual([]);
    const m = summary.metrics;
    expect(m.reconnects!.values.count).toBeGreaterThan(4);
    expect(m.events_lost!.values.count).toBe(0);
    expect(m.resumed_without_resync!.values.rate).toBe(1);
  }, 40_000);

  it('connections: every VU authenticates, subscribes and holds its socket', async () => {
    const bundle = await buildForShim('connections', join(dir, `shim-${codec}`));
    const summary = await runK6Script(bundle, {
      env: { BENCH: benchFile, CODEC: codec, CONNECTIONS: '20', HOLD: '0.5' },
      maxDurationMs: 30_000,
    });
    expect(summary.errors).toEqual([]);
    expect(summary.metrics.connected!.values).toMatchObject({ rate: 1, passes: 20 });
    expect(summary.metrics.connect_ready!.count).toBe(20);
    expect(summary.iterations).toBe(20);
  }, 40_000);
});
