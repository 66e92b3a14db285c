#!/usr/bin/env node
/**
 * The ScanRelay benchmark harness. `npm run bench` runs the full report; `--quick` a few seconds per arm
 * (CI). Options: `--arms a,b`, `--scenarios fanout,connections,command,churn,capacity`, `--rounds N`,
 * `--steps 25000,50000,100000`, `--step-seconds S`, `--out DIR`, `--progress`, `--cpu-prof DIR` (V8 CPU
 * profiles of the relay nodes, written when they stop), `--relay-node-args "…"` (Node options for the relay nodes).
 *
 * Method (shared/BENCH.md): the system under test runs pinned to CPU 1 and this process (the load generator)
 * to CPU 0; arms run interleaved in rotated order each round; warm-up is not recorded; latency is measured
 * from scheduled send times; steps where this process saturates are marked invalid; every process started is
 * stopped, also on Ctrl-C.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runChurn } from '../scenarios/churn.js';
import { runCommand } from '../scenarios/command.js';
import { runConnections } from '../scenarios/connections.js';
import { runFanout } from '../scenarios/fanout.js';
import { ARMS, type ArmInstance, type ArmSpec, churnArm as makeChurnArm } from './arms.js';
import { parseArgs, type RunConfig } from './config.js';
import { pinSelf, REPO_ROOT, stopAll } from './proc.js';
import { Progress } from './progress.js';
import { type Report, summarise, writeReport } from './report.js';
import { launcherNodeArgs, setRelayNodeArgs } from './scanrelay.js';

const METHOD =
  'Loopback only. System under test pinned to CPU 1 (relay/peer and Redis), load generator pinned to CPU 0; ' +
  'server CPU from /proc/<pid>/stat utime+stime of every process of the arm over the step; warm-up not recorded; ' +
  'arms interleaved in rotated order per round; latency from the scheduled send time (hdr-histogram), sampled on ' +
  'one subscriber in 10; a step is invalid when the load generator passes 75 % CPU or 5 ms event-loop delay p99, ' +
  'or when any delivery is lost. Medians across rounds; ratios per round with their min–max.';

function append<T>(table: Record<string, T[]>, key: string, value: T): void {
  const list = table[key] ?? [];
  list.push(value);
  table[key] = list;
}

function isRelayArm(a: ArmSpec): boolean {
  return a.name.startsWith('scanrelay');
}

export async function runBench(cfg: RunConfig, command: string): Promise<Report> {
  const startedAt = new Date().toISOString();
  const arms = ARMS.filter((a) => !cfg.arms || cfg.arms.includes(a.name));
  const report: Report = {
    meta: {
      startedAt,
      finishedAt: '',
      node: process.versions.node,
      quick: cfg.quick,
      rounds: cfg.rounds,
      command,
      method: METHOD,
    },
    arms: [],
    fanout: {},
    connections: {},
    command: {},
    churn: {},
    capacity: {},
    summary: { fanout: [], connections: [], command: [], targets: [] },
    errors: [],
  };
  const runnable: ArmSpec[] = [];
  for (const a of arms) {
    const reason = a.unavailable();
    report.arms.push({ name: a.name, ran: !reason, ...(reason ? { reason } : {}) });
    if (!reason) runnable.push(a);
  }
  const perRound = runnable.reduce(
    (n, a) =>
      n +
      (cfg.scenarios.has('fanout') ? 1 : 0) +
      (cfg.scenarios.has('connections') ? 1 : 0) +
      (isRelayArm(a) && cfg.scenarios.has('command') ? 1 : 0),
    0,
  );
  const relayArms = runnable.filter(isRelayArm);
  const churnCandidate = makeChurnArm();
  const churnUnavailable = churnCandidate.unavailable();
  const churnArm = churnUnavailable ? undefined : churnCandidate;
  if (churnUnavailable && cfg.scenarios.has('churn'))
    report.errors.push({
      arm: churnCandidate.name,
      scenario: 'churn',
      round: 0,
      message: `not run: ${churnUnavailable}`,
    });
  const tail =
    (cfg.scenarios.has('churn') && churnArm ? 1 : 0) +
    (cfg.scenarios.has('capacity') ? relayArms.filter((a) => !a.name.includes('redis')).length : 0);
  const progress = new Progress(perRound * cfg.rounds + tail, cfg.progress);

  const withArm = async <T>(
    arm: ArmSpec,
    scenario: string,
    round: number,
    topics: number,
    fn: (inst: ArmInstance) => Promise<T>,
  ): Promise<T | undefined> => {
    let inst: ArmInstance | undefined;
    try {
      inst = await arm.start(topics);
      return await fn(inst);
    } catch (err) {
      report.errors.push({ arm: arm.name, scenario, round, message: (err as Error).message });
      return undefined;
    } finally {
      await inst?.stop().catch(() => undefined);
    }
  };

  for (let round = 0; round < cfg.rounds; round++) {
    // Rotate the order each round (A B C, B C A, …) so drift and heat do not favour one arm.
    const order = runnable.map((_, i) => runnable[(i + round) % runnable.length]!);
    for (const arm of order) {
      const label = (s: string): string => `round ${round + 1}/${cfg.rounds} ${arm.name} ${s}`;
      if (cfg.scenarios.has('fanout')) {
        progress.note(label('fan-out'));
        const steps = await withArm(arm, 'fanout', round, cfg.fanout.topics, (inst) =>
          runFanout(inst, cfg.fanout, (s) => progress.note(label(`fan-out ${s}`))),
        );
        if (steps) append(report.fanout, arm.name, steps);
        progress.tick(label('fan-out done'));
      }
      if (cfg.scenarios.has('connections')) {
        progress.note(label('connections'));
        const r = await withArm(arm, 'connections', round, cfg.fanout.topics, (inst) =>
          runConnections(inst, cfg.idleConnections, cfg.fanout.topics),
        );
        if (r) append(report.connections, arm.name, r);
        progress.tick(label('connections done'));
      }
      if (isRelayArm(arm) && cfg.scenarios.has('command')) {
        progress.note(label('command'));
        const r = await withArm(arm, 'command', round, 1, (inst) => runCommand(inst, cfg.command));
        if (r) append(report.command, arm.name, r);
        progress.tick(label('command done'));
      }
    }
  }
  if (cfg.scenarios.has('churn') && churnArm) {
    progress.note(`${churnArm.name} churn`);
    const r = await withArm(churnArm, 'churn', 0, cfg.churn.sites, (inst) => runChurn(inst, cfg.churn));
    if (r) append(report.churn, churnArm.name, r);
    progress.tick(`${churnArm.name} churn done`);
  }
  if (cfg.scenarios.has('capacity')) {
    for (const arm of relayArms.filter((a) => !a.name.includes('redis'))) {
      progress.note(`${arm.name} capacity`);
      const r = await withArm(arm, 'capacity', 0, cfg.fanout.topics, (inst) =>
        runConnections(inst, cfg.capacityConnections, cfg.fanout.topics, { concurrency: 200, holdMs: 2_000 }),
      );
      if (r) report.capacity[arm.name] = r;
      progress.tick(`${arm.name} capacity done`);
    }
  }
  progress.end();
  report.meta.finishedAt = new Date().toISOString();
  summarise(report);
  return report;
}

async function main(): Promise<void> {
  const defaultOut = join(REPO_ROOT, 'bench', 'results');
  let cfg: RunConfig;
  try {
    cfg = parseArgs(process.argv.slice(2), defaultOut);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(64);
  }
  const onSignal = (): void => {
    process.stderr.write('\nbench: interrupted, stopping every process it started\n');
    void stopAll().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  setRelayNodeArgs([
    ...(cfg.relayNodeArgs ?? launcherNodeArgs()),
    ...(cfg.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cfg.cpuProfDir}`] : []),
  ]);
  if (!pinSelf())
    process.stderr.write('bench: taskset not available; running unpinned (figures are less comparable)\n');
  const command = `npm run bench --${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
  try {
    const report = await runBench(cfg, command);
    const paths = await writeReport(report, cfg.outDir);
    process.stdout.write(`${paths.md}\n${paths.json}\n${paths.svg}\n`);
  } finally {
    await stopAll();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) void main();
