/**
 * CI smoke of the benchmark harness: `--quick` runs every arm this runtime supports for a few seconds each,
 * through the built harness exactly as `npm run bench -- --quick` does, and the report must be complete and
 * lossless. Timings are NOT asserted (they belong to the report, not to a test).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Report } from '../src/harness/report.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
let out: string;
let report: Report;
let markdown: string;
let svg: string;

beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), 'scanrelay-bench-test-'));
  const child = spawn(process.execPath, ['bench/dist/src/harness/main.js', '--quick', '--out', out], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr.on('data', (c: Buffer) => (log += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`bench --quick exited with ${code}:\n${log.slice(-4000)}`);
  report = JSON.parse(await readFile(join(out, 'quick.json'), 'utf8')) as Report;
  markdown = await readFile(join(out, 'quick.md'), 'utf8');
  svg = await readFile(join(out, 'quick.svg'), 'utf8');
}, 240_000);

afterAll(async () => {
  if (out) await rm(out, { recursive: true, force: true });
});

const nativeUws = ['93', '108', '115'].includes(process.versions.modules);

describe('bench --quick', () => {
  it('runs every arm this runtime supports and explains the others', () => {
    const names = report.arms.map((a) => a.name);
    expect(names).toEqual([
      'bare-uws',
      'bare-ws',
      'socket.io',
      'socket.io+redis',
      'centrifuge',
      'scanrelay-uws',
      'scanrelay-ws',
      'scanrelay-uws-2nodes-redis',
    ]);
    for (const arm of report.arms) {
      const needsUws = arm.name.includes('uws');
      if (needsUws && !nativeUws) expect(arm.reason).toMatch(/Node 20/);
      else expect(arm, `${arm.name}: ${arm.reason}`).toMatchObject({ ran: true });
    }
    expect(report.errors).toEqual([]);
  });

  it('reports fan-out per arm with latency percentiles, server CPU and zero loss', () => {
    for (const arm of report.arms.filter((a) => a.ran)) {
      const rounds = report.fanout[arm.name];
      expect(rounds, arm.name).toHaveLength(1);
      for (const step of rounds![0]!) {
        expect(step.sent).toBeGreaterThan(0);
        expect(step.lost, `${arm.name} lost deliveries`).toBe(0);
        expect(step.outOfOrder, `${arm.name} reordered deliveries`).toBe(0);
        expect(step.received).toBe(step.expected);
        expect(step.latency.count).toBeGreaterThan(0);
        expect(step.latency.p50).toBeLessThanOrEqual(step.latency.p99);
        expect(step.latency.p99).toBeLessThanOrEqual(step.latency.max);
        expect(step.serverCpu).toBeGreaterThanOrEqual(0);
        expect(typeof step.valid).toBe('boolean');
      }
    }
    expect(report.summary.fanout.length).toBeGreaterThan(0);
  });

  it('measures connections, command round trips and churn on ScanRelay without losing anything', () => {
    for (const arm of report.arms.filter((a) => a.ran)) {
      const conns = report.connections[arm.name]![0]!;
      expect(conns.connected, arm.name).toBe(conns.requested);
      expect(conns.rssAfterBytes).toBeGreaterThan(0);
    }
    for (const arm of report.arms.filter((a) => a.ran && a.name.startsWith('scanrelay'))) {
      const cmd = report.command[arm.name]![0]!;
      expect(cmd.completed, `${arm.name} commands`).toBe(cmd.sent);
      expect(cmd.failed).toBe(0);
    }
    const churn = Object.values(report.churn).flat();
    expect(churn).toHaveLength(1);
    expect(churn[0]!.restarts).toBe(1);
    expect(churn[0]!.drops).toBeGreaterThan(0);
    expect(churn[0]!.lost).toBe(0);
    for (const cap of Object.values(report.capacity)) expect(cap.stillOpen).toBe(cap.requested);
  });

  it('writes the Markdown table, the targets and an SVG chart', () => {
    expect(markdown).toContain('## Fan-out');
    expect(markdown).toContain('| arm | offered/s | delivered/s | p50 ms | p99 ms');
    expect(markdown).toContain('## Targets (issue 6)');
    expect(report.summary.targets.length).toBeGreaterThanOrEqual(8);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('scanrelay-ws');
  });
});
