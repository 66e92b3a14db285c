/**
 * Child process for the kill -9 tests: appends outbox events / claims replay-guard jtis as fast as it can,
 * `concurrency` at a time, and prints `durable <n>` after each one is confirmed durable. The parent kills it
 * with SIGKILL mid-stream and checks that everything confirmed survived.
 *
 *   node durable-writer.mjs outbox <dir> <concurrency>
 *   node durable-writer.mjs guard <dir> <concurrency>
 */
import { ReplayGuard } from '../../src/commands/replay-guard.js';
import { silentLogger } from '../../src/log.js';
import { Outbox } from '../../src/outbox/outbox.js';

const [mode, dir, concurrencyText] = process.argv.slice(2);
const concurrency = Number(concurrencyText ?? '8');
const logger = silentLogger();
const out = (line: string) => process.stdout.write(`${line}\n`);

if (mode === 'outbox') {
  // Small segments so that the kill also lands around segment rolls.
  const outbox = await Outbox.open({ dir: dir!, logger, segmentBytes: 4096 });
  out(`ready ${outbox.status().last}`);
  const loop = async () => {
    for (;;) {
      const e = await outbox.append({ kind: 'images.received', subject: 'ACC1', at: Date.now(), data: { count: 1 } });
      out(`durable ${e.seq}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
} else if (mode === 'guard') {
  const guard = await ReplayGuard.open({ dir: dir!, logger });
  out('ready');
  let n = 0;
  const loop = async () => {
    for (;;) {
      const jti = `jti-${process.pid}-${n++}`;
      await guard.claim(jti, Date.now() + 300_000);
      out(`durable ${jti}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
}
