/**
 * Child process for the kill -9 test of kept outcomes: claims replay-guard jtis and finishes them with
 * alternating outcomes, `concurrency` at a time, printing `done <jti>` once a finished command's outcome is
 * durable. One command (`stuck-<pid>`) is claimed and never finished (`running <jti>`): it was running when
 * the parent kills the process.
 *
 *   node outcome-writer.mjs <dir> <concurrency>
 */
import { type CommandOutcome, ReplayGuard } from '../../src/commands/replay-guard.js';
import { silentLogger } from '../../src/log.js';

const [dir, concurrencyText] = process.argv.slice(2);
const concurrency = Number(concurrencyText ?? '8');
const out = (line: string) => process.stdout.write(`${line}\n`);

/** The outcome the parent expects for command number `n`. */
export function outcomeFor(n: number): CommandOutcome {
  return n % 2 === 0
    ? { state: 'completed', detail: { result: { existing: false, n } } }
    : { state: 'failed', detail: { reason: 'dicom_error', message: `association refused (${n})` } };
}

if (dir) {
  const guard = await ReplayGuard.open({ dir, logger: silentLogger() });
  const stuck = `stuck-${process.pid}`;
  await guard.claim(stuck, Date.now() + 300_000);
  out(`running ${stuck}`);
  let n = 0;
  const loop = async () => {
    for (;;) {
      const i = n++;
      const jti = `jti-${i}`;
      await guard.claim(jti, Date.now() + 300_000);
      await guard.complete(jti, outcomeFor(i));
      out(`done ${jti}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
}
