/** Run settings: the full report (`npm run bench`) and the CI smoke (`--quick`). */
import type { FanoutConfig } from '../scenarios/fanout.js';

export interface RunConfig {
  quick: boolean;
  rounds: number;
  arms: string[] | undefined;
  scenarios: Set<ScenarioName>;
  outDir: string;
  fanout: FanoutConfig;
  /** Idle connections per arm (RSS per connection) and connect-storm size. */
  idleConnections: number;
  /** Concurrent connections held by one ScanRelay process (capacity check). */
  capacityConnections: number;
  command: { rate: number; durationMs: number; warmupMs: number; browsers: number };
  churn: { sites: number; browsersPerSite: number; rate: number; durationMs: number; drops: number };
  progress: boolean;
  /** Directory for V8 CPU profiles of the relay nodes (`--cpu-prof DIR`), or undefined. */
  cpuProfDir: string | undefined;
  /**
   * Node options for every relay node (`--relay-node-args "--max-semi-space-size=16"`, space-separated), in place
   * of the shipped launcher's flags (relay/src/main.ts shebang), to measure a runtime setting against them in
   * separate runs; undefined = the launcher's flags.
   */
  relayNodeArgs: string[] | undefined;
}

export const SCENARIOS = ['fanout', 'connections', 'command', 'churn', 'capacity'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export function parseArgs(argv: readonly string[], defaultOut: string): RunConfig {
  const flag = (name: string): boolean => argv.includes(`--${name}`);
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = flag('quick');
  // Offered command rate (commands/s) for the command round-trip scenario; 500 is issue 6's target rate.
  const commandRate = Number(value('command-rate') ?? 500);
  if (!Number.isInteger(commandRate) || commandRate < 1) throw new Error('--command-rate must be a positive integer');
  const list = (name: string): string[] | undefined =>
    value(name)
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const scenarios = new Set((list('scenarios') ?? [...SCENARIOS]) as ScenarioName[]);
  for (const s of scenarios)
    if (!SCENARIOS.includes(s))
      throw new Error(`--scenarios: unknown scenario "${s}" (known: ${SCENARIOS.join(', ')})`);
  const rounds = Number(value('rounds') ?? (quick ? 1 : 3));
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const stepSeconds = value('step-seconds');
  return {
    quick,
    rounds,
    arms: list('arms'),
    scenarios,
    outDir: value('out') ?? defaultOut,
    progress: flag('progress') || process.stderr.isTTY === true,
    cpuProfDir: value('cpu-prof'),
    relayNodeArgs: value('relay-node-args')?.split(' ').filter(Boolean),
    fanout: quick
      ? { topics: 2, subscribers: 10, steps: [2_000], stepMs: 1_000, warmupMs: 300, sampleEvery: 1 }
      : {
          topics: 10,
          subscribers: 100,
          steps: (list('steps') ?? ['25000', '50000', '100000']).map(Number),
          stepMs: Number(stepSeconds ?? 5) * 1000,
          warmupMs: 3_000,
          sampleEvery: 10,
        },
    idleConnections: quick ? 200 : 5_000,
    capacityConnections: quick ? 300 : 15_000,
    command: quick
      ? { rate: 50, durationMs: 1_000, warmupMs: 200, browsers: 2 }
      : { rate: commandRate, durationMs: 5_000, warmupMs: 1_000, browsers: 10 },
    churn: quick
      ? { sites: 2, browsersPerSite: 5, rate: 50, durationMs: 2_000, drops: 4 }
      : { sites: 5, browsersPerSite: 20, rate: 200, durationMs: 10_000, drops: 40 },
  };
}
