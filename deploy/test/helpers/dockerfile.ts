/**
 * A small Dockerfile reader for structural checks (no Docker engine here): instructions with continuation
 * lines joined, grouped into build stages.
 */
import { readFileSync } from 'node:fs';

export interface Instruction {
  /** Upper-case keyword, e.g. `COPY`. */
  op: string;
  /** Everything after the keyword, continuation lines joined with spaces. */
  args: string;
  line: number;
}

export interface Stage {
  /** Image or earlier stage it starts from (ARGs left unexpanded). */
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  globalArgs: Record<string, string>;
  stages: Stage[];
}

export function parseDockerfile(path: string): Dockerfile {
  const lines = readFileSync(path, 'utf8').split('\n');
  const instructions: Instruction[] = [];
  let buf = '';
  let start = 0;
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (buf === '' && (line === '' || line.startsWith('#'))) return;
    if (buf !== '' && line.startsWith('#')) return;
    if (buf === '') start = i + 1;
    if (line.endsWith('\\')) {
      buf += `${line.slice(0, -1).trim()} `;
      return;
    }
    buf += line;
    const m = /^(\S+)\s*(.*)$/s.exec(buf);
    if (m) instructions.push({ op: (m[1] as string).toUpperCase(), args: (m[2] as string).trim(), line: start });
    buf = '';
  });
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      stages.push({ from: m?.[1] ?? ins.args, name: m?.[2], instructions: [] });
    } else if (stages.length === 0) {
      if (ins.op === 'ARG') {
        const [k = '', v = ''] = ins.args.split('=');
        globalArgs[k] = v;
      }
    } else {
      stages[stages.length - 1]?.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** Expand `${NAME}` / `$NAME` with the global ARG defaults. */
export function expandArgs(value: string, args: Record<string, string>): string {
  return value.replace(
    /\$\{(\w+)\}|\$(\w+)/g,
    (_, a: string | undefined, b: string | undefined) => args[(a ?? b) as string] ?? '',
  );
}

/** Source paths of a `COPY` without `--from` (relative to the build context). */
export function copySources(ins: Instruction): string[] | undefined {
  if (ins.op !== 'COPY' || /--from=/.test(ins.args)) return undefined;
  const parts = ins.args.split(/\s+/).filter((p) => !p.startsWith('--'));
  return parts.slice(0, -1);
}
