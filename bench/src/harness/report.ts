/** The run's report: JSON (everything), Markdown (tables + targets) and an SVG chart, under bench/results/. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChurnResult } from '../scenarios/churn.js';
import type { CommandResult } from '../scenarios/command.js';
import type { ConnectionsResult } from '../scenarios/connections.js';
import type { FanoutStep } from '../scenarios/fanout.js';
import { median, type Ratio, ratio } from './stats.js';

export interface ArmStatus {
  name: string;
  ran: boolean;
  reason?: string;
}

export interface RunError {
  arm: string;
  scenario: string;
  round: number;
  message: string;
}

export interface Report {
  meta: {
    startedAt: string;
    finishedAt: string;
    node: string;
    quick: boolean;
    rounds: number;
    command: string;
    method: string;
  };
  arms: ArmStatus[];
  /** arm → rounds → steps */
  fanout: Record<string, FanoutStep[][]>;
  connections: Record<string, ConnectionsResult[]>;
  command: Record<string, CommandResult[]>;
  churn: Record<string, ChurnResult[]>;
  capacity: Record<string, ConnectionsResult>;
  summary: {
    fanout: FanoutRow[];
    connections: ConnectionsRow[];
    command: CommandRow[];
    targets: Target[];
  };
  errors: RunError[];
}

export interface FanoutRow {
  arm: string;
  offered: number;
  delivered: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  serverCpu: number;
  usPerDelivery: number;
  /** µs per delivery relative to the reference arm (bare-uws), per round. */
  vsReference: Ratio;
  lost: number;
  validRounds: number;
  rounds: number;
}

export interface ConnectionsRow {
  arm: string;
  connected: number;
  requested: number;
  rate: number;
  connectP99: number;
  rssPerConnectionKiB: number;
}

export interface CommandRow {
  arm: string;
  rate: number;
  completed: number;
  sent: number;
  p50: number;
  p99: number;
  max: number;
  serverCpu: number;
  validRounds: number;
  rounds: number;
}

export interface Target {
  name: string;
  measured: string;
  target: string;
  met: boolean | null;
}

export const REFERENCE_ARM = 'bare-uws';

export function summarise(r: Report): void {
  const rows: FanoutRow[] = [];
  const ref = r.fanout[REFERENCE_ARM];
  for (const [arm, rounds] of Object.entries(r.fanout)) {
    const steps = rounds[0]?.map((s) => s.offered) ?? [];
    steps.forEach((offered, i) => {
      const at = rounds.map((round) => round[i]).filter((s): s is FanoutStep => s !== undefined);
      const refAt = ref?.map((round) => round[i]).filter((s): s is FanoutStep => s !== undefined) ?? [];
      rows.push({
        arm,
        offered,
        delivered: median(at.map((s) => s.delivered)),
        p50: median(at.map((s) => s.latency.p50)),
        p99: median(at.map((s) => s.latency.p99)),
        p999: median(at.map((s) => s.latency.p999)),
        max: median(at.map((s) => s.latency.max)),
        serverCpu: median(at.map((s) => s.serverCpu)),
        usPerDelivery: median(at.map((s) => s.usPerDelivery)),
        vsReference: ratio(
          at.map((s) => s.usPerDelivery),
          refAt.map((s) => s.usPerDelivery),
        ),
        lost: at.reduce((a, s) => a + s.lost, 0),
        validRounds: at.filter((s) => s.valid).length,
        rounds: at.length,
      });
    });
  }
  const connections: ConnectionsRow[] = Object.entries(r.connections).map(([arm, rs]) => ({
    arm,
    connected: median(rs.map((x) => x.connected)),
    requested: rs[0]?.requested ?? 0,
    rate: median(rs.map((x) => x.rate)),
    connectP99: median(rs.map((x) => x.connectLatency.p99)),
    rssPerConnectionKiB: median(rs.map((x) => x.rssPerConnection / 1024)),
  }));
  const command: CommandRow[] = Object.entries(r.command).map(([arm, rs]) => ({
    arm,
    rate: rs[0]?.rate ?? 0,
    completed: rs.reduce((a, x) => a + x.completed, 0),
    sent: rs.reduce((a, x) => a + x.sent, 0),
    p50: median(rs.map((x) => x.latency.p50)),
    p99: median(rs.map((x) => x.latency.p99)),
    max: median(rs.map((x) => x.latency.max)),
    serverCpu: median(rs.map((x) => x.serverCpu)),
    validRounds: rs.filter((x) => x.valid).length,
    rounds: rs.length,
  }));
  r.summary = { fanout: rows, connections, command, targets: targets(r, rows, connections, command) };
}

function top(rows: FanoutRow[], arm: string): FanoutRow | undefined {
  const mine = rows.filter((x) => x.arm === arm);
  return mine[mine.length - 1];
}

function perRoundTop(r: Report, arm: string): number[] {
  return (r.fanout[arm] ?? []).map((round) => round[round.length - 1]?.usPerDelivery ?? Number.NaN);
}

function fmtRatio(x: Ratio): string {
  return Number.isFinite(x.median) ? `${x.median.toFixed(2)} (${x.min.toFixed(2)}–${x.max.toFixed(2)})` : 'n/a';
}

function targets(r: Report, rows: FanoutRow[], conns: ConnectionsRow[], cmd: CommandRow[]): Target[] {
  const out: Target[] = [];
  const cpuVs = (arm: string, refArm: string, label: string): void => {
    const x = ratio(perRoundTop(r, arm), perRoundTop(r, refArm));
    out.push({
      name: `${label}: server µs/delivery ${arm} ÷ ${refArm} (top step)`,
      measured: fmtRatio(x),
      target: '≤ 1.00',
      met: Number.isFinite(x.median) ? x.median <= 1 : null,
    });
  };
  cpuVs('scanrelay-uws', 'bare-uws', 'CPU per delivery, uWS');
  cpuVs('scanrelay-ws', 'bare-ws', 'CPU per delivery, ws');
  for (const [arm, limit] of [
    ['scanrelay-uws', 5],
    ['scanrelay-ws', 5],
    ['scanrelay-uws-2nodes-redis', 10],
  ] as const) {
    const row = top(rows, arm);
    out.push({
      name: `fan-out p99 ${arm} at ${row ? row.offered / 1000 : '?'}k deliveries/s`,
      measured: row ? `${row.p99.toFixed(2)} ms` : 'n/a',
      target: `≤ ${limit} ms`,
      met: row && Number.isFinite(row.p99) ? row.p99 <= limit : null,
    });
  }
  const perCpu = ratio(perRoundTop(r, 'socket.io+redis'), perRoundTop(r, 'scanrelay-uws-2nodes-redis'));
  out.push({
    name: 'deliveries per CPU-second, scanrelay-uws-2nodes-redis ÷ socket.io+redis',
    measured: fmtRatio(perCpu),
    target: '≥ 2.00',
    met: Number.isFinite(perCpu.median) ? perCpu.median >= 2 : null,
  });
  for (const [arm, kib] of [
    ['scanrelay-uws', 4],
    ['scanrelay-ws', 12],
  ] as const) {
    const row = conns.find((c) => c.arm === arm);
    out.push({
      name: `RSS per idle authenticated connection, ${arm}`,
      measured: row ? `${row.rssPerConnectionKiB.toFixed(1)} KiB` : 'n/a',
      target: `≤ ${kib} KiB`,
      met: row && Number.isFinite(row.rssPerConnectionKiB) ? row.rssPerConnectionKiB <= kib : null,
    });
  }
  const c = cmd.find((x) => x.arm === 'scanrelay-uws') ?? cmd[0];
  out.push({
    name: `command round trip p99 at ${c?.rate ?? '?'}/s (${c?.arm ?? 'n/a'})`,
    measured: c ? `${c.p99.toFixed(2)} ms` : 'n/a',
    target: '≤ 5 ms',
    met: c && Number.isFinite(c.p99) ? c.p99 <= 5 : null,
  });
  for (const [arm, cap] of Object.entries(r.capacity)) {
    out.push({
      name: `concurrent authenticated connections on one process, ${arm}`,
      measured: `${cap.stillOpen} of ${cap.requested}`,
      target: '≥ 15,000',
      met: cap.stillOpen >= 15_000,
    });
  }
  return out;
}

const n = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const k = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');

export function markdown(r: Report): string {
  const s = r.summary;
  const lines: string[] = [];
  lines.push(`# ScanRelay benchmark ${r.meta.quick ? '(quick)' : ''}`.trim(), '');
  lines.push(
    `Command: \`${r.meta.command}\` — ${r.meta.startedAt} → ${r.meta.finishedAt}, Node ${r.meta.node}, ${r.meta.rounds} round(s).`,
  );
  lines.push('', r.meta.method, '');
  lines.push('## Fan-out', '');
  lines.push(
    '| arm | offered/s | delivered/s | p50 ms | p99 ms | p99.9 ms | max ms | server CPU (cores) | server µs/delivery | vs bare-uws (min–max) | lost | valid rounds |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const x of s.fanout)
    lines.push(
      `| ${x.arm} | ${k(x.offered)} | ${k(x.delivered)} | ${n(x.p50, 2)} | ${n(x.p99, 2)} | ${n(x.p999, 2)} | ${n(x.max, 1)} | ${n(x.serverCpu, 2)} | ${n(x.usPerDelivery, 2)} | ${fmtRatio(x.vsReference)} | ${x.lost} | ${x.validRounds}/${x.rounds} |`,
    );
  if (s.connections.length) {
    lines.push('', '## Connect storm and idle connections', '');
    lines.push(
      '| arm | connected | connections/s | connect p99 ms | server RSS per idle connection |',
      '|---|---|---|---|---|',
    );
    for (const x of s.connections)
      lines.push(
        `| ${x.arm} | ${x.connected}/${x.requested} | ${k(x.rate)} | ${n(x.connectP99, 1)} | ${n(x.rssPerConnectionKiB, 1)} KiB |`,
      );
  }
  if (s.command.length) {
    lines.push('', '## Command round trip (browser → relay → gateway verifies ES256 → completed)', '');
    lines.push(
      '| arm | rate/s | completed | p50 ms | p99 ms | max ms | server CPU | valid rounds |',
      '|---|---|---|---|---|---|---|---|',
    );
    for (const x of s.command)
      lines.push(
        `| ${x.arm} | ${x.rate} | ${x.completed}/${x.sent} | ${n(x.p50, 2)} | ${n(x.p99, 2)} | ${n(x.max, 1)} | ${n(x.serverCpu, 2)} | ${x.validRounds}/${x.rounds} |`,
      );
  }
  const churn = Object.entries(r.churn);
  if (churn.length) {
    lines.push('', '## Churn (random drops + one node restart)', '');
    lines.push(
      '| arm | events published | browser drops | node restarts | resyncs | lost | duplicates |',
      '|---|---|---|---|---|---|---|',
    );
    for (const [arm, rs] of churn)
      for (const x of rs)
        lines.push(
          `| ${arm} | ${x.published} | ${x.drops} | ${x.restarts} | ${x.resyncs} | ${x.lost} | ${x.duplicates} |`,
        );
  }
  if (s.targets.length) {
    lines.push('', '## Targets (issue 6)', '', '| target | measured | goal | met |', '|---|---|---|---|');
    for (const t of s.targets)
      lines.push(
        `| ${t.name} | ${t.measured} | ${t.target} | ${t.met === null ? 'not measured' : t.met ? 'yes' : 'NO'} |`,
      );
  }
  const skipped = r.arms.filter((a) => !a.ran);
  if (skipped.length || r.errors.length) {
    lines.push('', '## Not run / errors', '');
    for (const a of skipped) lines.push(`- ${a.name}: not run — ${a.reason}`);
    for (const e of r.errors) lines.push(`- ${e.arm} / ${e.scenario} / round ${e.round}: ${e.message.split('\n')[0]}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Horizontal bars: server µs per delivery at the top step, median with min–max whiskers. */
export function svg(r: Report): string {
  const rows = r.summary.fanout.filter(
    (x, _i, all) => x.offered === Math.max(...all.filter((y) => y.arm === x.arm).map((y) => y.offered)),
  );
  const data = rows.map((x) => {
    const per = (r.fanout[x.arm] ?? [])
      .map((round) => round[round.length - 1]?.usPerDelivery ?? Number.NaN)
      .filter(Number.isFinite);
    return { arm: x.arm, med: x.usPerDelivery, min: Math.min(...per), max: Math.max(...per), offered: x.offered };
  });
  const width = 720;
  const rowH = 28;
  const left = 220;
  const height = 50 + rowH * data.length;
  const maxV = Math.max(1, ...data.map((d) => (Number.isFinite(d.max) ? d.max : 0))) * 1.1;
  const x = (v: number): number => left + ((width - left - 150) * v) / maxV;
  const esc = (s: string): string => s.replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c]!);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<text x="10" y="20" font-size="14">Server CPU µs per delivery at the top fan-out step (median, min–max over rounds; lower is better)</text>`,
  ];
  data.forEach((d, i) => {
    const y = 40 + i * rowH;
    const color = d.arm.startsWith('scanrelay') ? '#2b7bb9' : '#999';
    parts.push(`<text x="10" y="${y + 15}">${esc(d.arm)}</text>`);
    if (Number.isFinite(d.med)) {
      parts.push(
        `<rect x="${left}" y="${y + 3}" width="${Math.max(1, x(d.med) - left)}" height="${rowH - 10}" fill="${color}"/>`,
      );
      if (Number.isFinite(d.min) && Number.isFinite(d.max))
        parts.push(`<line x1="${x(d.min)}" x2="${x(d.max)}" y1="${y + 9}" y2="${y + 9}" stroke="#000"/>`);
      const labelX = Math.max(x(d.med), Number.isFinite(d.max) ? x(d.max) : 0) + 6;
      parts.push(
        `<text x="${labelX}" y="${y + 15}">${d.med.toFixed(2)} µs @ ${Math.round(d.offered / 1000)}k/s</text>`,
      );
    }
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

export async function writeReport(r: Report, outDir: string): Promise<{ json: string; md: string; svg: string }> {
  await mkdir(outDir, { recursive: true });
  const base = r.meta.quick ? 'quick' : 'latest';
  const paths = {
    json: join(outDir, `${base}.json`),
    md: join(outDir, `${base}.md`),
    svg: join(outDir, `${base}.svg`),
  };
  await writeFile(paths.json, `${JSON.stringify(r, null, 2)}\n`);
  await writeFile(paths.md, markdown(r));
  await writeFile(paths.svg, svg(r));
  return paths;
}
