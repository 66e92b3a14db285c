/**
 * The import rules of the relay's layers (relay/README.md "Map"), checked on the source text so they stay kept:
 *
 *   core/      owns its contracts (transport.ts, settings.ts); never imports transport/ or config.ts
 *   ports/     implement the core's storage contracts; never import core/
 *   auth/      verifies tokens; never imports core/
 *   clock.ts   a leaf every layer may import
 *   gateway-agent/src, web-client/src  talk to the relay over the wire only: no import of relay/src
 *
 * Every `import … from`, `export … from`, bare `import '…'` and dynamic `import('…')` is resolved (relative
 * paths against the importing file; `@scanrelay/relay` to relay/src) and held against the rules.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Every .ts file under `dir` (relative to the repository root), posix-style paths. */
function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (abs: string): void => {
    for (const entry of readdirSync(abs, { withFileTypes: true })) {
      const path = join(abs, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules' && entry.name !== 'dist') walk(path);
      } else if (entry.name.endsWith('.ts')) out.push(relative(ROOT, path).split(sep).join('/'));
    }
  };
  walk(join(ROOT, dir));
  return out;
}

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s*)['"]([^'"]+)['"]/gm;

/** The import specifiers of one source text (comments are dropped first so prose does not count). */
export function specifiers(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  return [...code.matchAll(SPECIFIER)].map((m) => m[1] as string);
}

/** Where an import points, as a repository-relative path (package names other than ours stay as they are). */
function target(from: string, spec: string): string {
  if (spec === '@scanrelay/relay' || spec.startsWith('@scanrelay/relay/')) return 'relay/src/index.ts';
  if (!spec.startsWith('.')) return spec;
  const abs = resolve(ROOT, dirname(from), spec.replace(/\.js$/, '.ts'));
  return relative(ROOT, abs).split(sep).join('/');
}

interface Rule {
  /** Files the rule applies to (repository-relative prefix). */
  from: string;
  /** Forbidden targets: a folder prefix ending in `/` or an exact file. */
  not: string[];
  why: string;
}

const RULES: Rule[] = [
  { from: 'relay/src/core/', not: ['relay/src/transport/', 'relay/src/config.ts'], why: 'the core owns its contracts' },
  {
    from: 'relay/src/ports/',
    not: ['relay/src/core/'],
    why: 'ports implement core contracts; they do not use the core',
  },
  { from: 'relay/src/auth/', not: ['relay/src/core/'], why: 'auth is a leaf service of the core' },
  { from: 'gateway-agent/src/', not: ['relay/src/'], why: 'the gateway speaks to the relay over the wire only' },
  { from: 'web-client/src/', not: ['relay/src/'], why: 'the browser SDK must not pull in the server' },
];

function matches(path: string, pattern: string): boolean {
  return pattern.endsWith('/') ? path.startsWith(pattern) : path === pattern;
}

/** Every broken rule in the given files, as `file → target (why)`. */
export function violations(files: readonly string[], read: (file: string) => string): string[] {
  const found: string[] = [];
  for (const file of files) {
    const rules = RULES.filter((r) => file.startsWith(r.from));
    if (rules.length === 0) continue;
    for (const spec of specifiers(read(file))) {
      const to = target(file, spec);
      for (const rule of rules) {
        if (rule.not.some((p) => matches(to, p))) found.push(`${file} → ${to} (${rule.why})`);
      }
    }
  }
  return found;
}

const readRepo = (file: string): string => readFileSync(join(ROOT, file), 'utf8');
const ALL = ['relay/src', 'gateway-agent/src', 'web-client/src'].flatMap(sources);

describe('architecture: imports point inward', () => {
  it('finds the source files it scans', () => {
    expect(ALL).toContain('relay/src/core/node.ts');
    expect(ALL).toContain('relay/src/ports/bus.ts');
    expect(ALL).toContain('gateway-agent/src/agent.ts');
    expect(ALL).toContain('web-client/src/client.ts');
  });

  it('no core/ → transport/ or config.ts, ports/ or auth/ → core/, gateway or browser SDK → relay/src', () => {
    expect(violations(ALL, readRepo)).toEqual([]);
  });

  it('the scanner sees every import form and reports a broken rule', () => {
    const fake: Record<string, string> = {
      'relay/src/core/x.ts': [
        "import type { RelayConfig } from '../config.js';",
        "export { createWsTransport } from '../transport/ws.js';",
        "const m = await import('../transport/uws.js');",
        "// import { ignored } from '../config.js';",
        "import type { Clock } from '../clock.js';",
      ].join('\n'),
      'relay/src/ports/y.ts': "import '../core/node.js';",
      'relay/src/auth/z.ts': "import { Clock } from '../core/clock.js';",
      'web-client/src/w.ts': "import { createRelay } from '@scanrelay/relay';",
      'gateway-agent/src/g.ts': "import { x } from '../../relay/src/auth/activation.js';",
    };
    expect(violations(Object.keys(fake), (f) => fake[f] as string)).toEqual([
      'relay/src/core/x.ts → relay/src/config.ts (the core owns its contracts)',
      'relay/src/core/x.ts → relay/src/transport/ws.ts (the core owns its contracts)',
      'relay/src/core/x.ts → relay/src/transport/uws.ts (the core owns its contracts)',
      'relay/src/ports/y.ts → relay/src/core/node.ts (ports implement core contracts; they do not use the core)',
      'relay/src/auth/z.ts → relay/src/core/clock.ts (auth is a leaf service of the core)',
      'web-client/src/w.ts → relay/src/index.ts (the browser SDK must not pull in the server)',
      'gateway-agent/src/g.ts → relay/src/auth/activation.ts (the gateway speaks to the relay over the wire only)',
    ]);
  });
});
