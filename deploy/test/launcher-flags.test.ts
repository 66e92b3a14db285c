/**
 * The relay's shipped Node flags live in two launchers — the `scanrelay-relay` bin's shebang and the image's
 * ENTRYPOINT — and the bench reads them from the first. They must agree, and the memory setting must be there
 * (without it an idle connection costs ~7 KiB RSS instead of ~4 KiB on uWS: bench/README.md "Memory").
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

function shebangFlags(file: string = join(ROOT, 'relay', 'src', 'main.ts')): string[] {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0] ?? '';
  const match = /^#!\/usr\/bin\/env -S node (.*)$/.exec(first);
  return match?.[1] ? match[1].split(/\s+/) : [];
}

function entrypointFlags(): string[] {
  const dockerfile = readFileSync(join(ROOT, 'deploy', 'docker', 'relay.Dockerfile'), 'utf8');
  const line = dockerfile.split('\n').find((l) => l.startsWith('ENTRYPOINT '));
  const argv = JSON.parse(line?.slice('ENTRYPOINT '.length) ?? '[]') as string[];
  expect(argv[0]).toBe('node');
  expect(argv.at(-1)).toBe('relay/dist/main.js');
  return argv.slice(1, -1);
}

describe('relay launcher Node flags', () => {
  it('the bin shebang sets a 1 MiB young-generation semi-space', () => {
    expect(shebangFlags()).toContain('--max-semi-space-size=1');
  });

  it('the committed bin shim (what `scanrelay-relay` runs) has the same shebang flags as main.ts', () => {
    expect(shebangFlags(join(ROOT, 'relay', 'bin', 'scanrelay-relay.js'))).toEqual(shebangFlags());
  });

  it('the image ENTRYPOINT passes the same flags as the bin shebang', () => {
    expect(entrypointFlags()).toEqual(shebangFlags());
  });

  it('the shebang line runs: the kernel and env -S hand Node exactly those flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'launcher-'));
    try {
      const script = join(dir, 'probe.mjs');
      const first = readFileSync(join(ROOT, 'relay', 'src', 'main.ts'), 'utf8').split('\n', 1)[0];
      writeFileSync(script, `${first}\nprocess.stdout.write(JSON.stringify(process.execArgv));\n`, { mode: 0o755 });
      expect(JSON.parse(execFileSync(script, { encoding: 'utf8' }))).toEqual(shebangFlags());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
