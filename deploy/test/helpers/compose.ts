/**
 * Reads deploy/compose/compose.yaml the way `docker compose` does, for tests that start the same services as
 * plain processes: YAML merge keys (`<<: *anchor`), `${VAR}` interpolation with compose's operators, and the
 * host files behind each service's bind mounts and secrets.
 *
 * ```ts
 * const compose = loadCompose({ SCANRELAY_REDIS_PASSWORD: 'x' });
 * const env = serviceEnvironment(compose, 'relay1');          // { SCANRELAY_PORT: '8080', ... }
 * const conf = hostPathOf(compose, 'redis', '/usr/local/etc/redis/redis.conf');
 * ```
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const DEPLOY_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const REPO_ROOT = resolve(DEPLOY_DIR, '..');
export const COMPOSE_FILE = resolve(DEPLOY_DIR, 'compose/compose.yaml');

/** The parts of a compose service the tests read. */
export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string } | string;
  command?: string[] | string;
  environment?: Record<string, string | number | boolean | null> | string[];
  volumes?: (string | { type: string; source?: string; target: string })[];
  secrets?: (string | { source: string; target?: string })[];
  healthcheck?: { test: string[] | string };
  depends_on?: Record<string, unknown> | string[];
  profiles?: string[];
  ports?: (string | number)[];
  [key: string]: unknown;
}

export interface ComposeFile {
  name?: string;
  services: Record<string, ComposeService>;
  secrets?: Record<string, { file?: string; environment?: string }>;
  volumes?: Record<string, unknown>;
  /** Directory the relative paths of the file are resolved against. */
  dir: string;
}

/** A `${...}` that cannot be resolved (`:?` / `?` operators, or a malformed expression). */
export class ComposeInterpolationError extends Error {
  readonly code = 'compose_interpolation' as const;
}

/**
 * Compose's interpolation of one string: `$$` → `$`; `${VAR}`/`$VAR`; `${VAR:-default}` (unset or empty),
 * `${VAR-default}` (unset); `${VAR:?message}` / `${VAR?message}` (error); `${VAR:+alt}` / `${VAR+alt}`.
 */
export function interpolate(value: string, vars: Readonly<Record<string, string | undefined>>): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, braced: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
      if (match === '$$') return '$';
      const name = (braced ?? bare) as string;
      const v = vars[name];
      const unset = v === undefined;
      const emptyOrUnset = unset || v === '';
      switch (op) {
        case undefined:
          return v ?? '';
        case ':-':
          return emptyOrUnset ? interpolate(arg ?? '', vars) : (v as string);
        case '-':
          return unset ? interpolate(arg ?? '', vars) : (v as string);
        case ':?':
        case '?':
          if (op === ':?' ? emptyOrUnset : unset)
            throw new ComposeInterpolationError(`compose.yaml: required variable ${name} is missing: ${arg ?? ''}`);
          return v as string;
        case ':+':
          return emptyOrUnset ? '' : interpolate(arg ?? '', vars);
        case '+':
          return unset ? '' : interpolate(arg ?? '', vars);
        default:
          throw new ComposeInterpolationError(`compose.yaml: cannot interpolate ${match}`);
      }
    },
  );
}

function interpolateDeep(node: unknown, vars: Readonly<Record<string, string | undefined>>): unknown {
  if (typeof node === 'string') return interpolate(node, vars);
  if (Array.isArray(node)) return node.map((n) => interpolateDeep(n, vars));
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = interpolateDeep(v, vars);
    return out;
  }
  return node;
}

/** Parse and interpolate compose.yaml (or `file`) with `vars` standing in for the environment and `.env`. */
export function loadCompose(vars: Readonly<Record<string, string | undefined>>, file = COMPOSE_FILE): ComposeFile {
  const raw = parse(readFileSync(file, 'utf8'), { merge: true, maxAliasCount: 100 }) as Record<string, unknown>;
  const doc = interpolateDeep(raw, vars) as Omit<ComposeFile, 'dir'>;
  if (!doc.services || typeof doc.services !== 'object') throw new Error(`${file}: no services`);
  return { ...doc, dir: dirname(file) };
}

export function service(compose: ComposeFile, name: string): ComposeService {
  const s = compose.services[name];
  if (!s) throw new Error(`compose.yaml has no service "${name}"`);
  return s;
}

/** A service's environment as strings (map or `KEY=value` list form). */
export function serviceEnvironment(compose: ComposeFile, name: string): Record<string, string> {
  const env = service(compose, name).environment ?? {};
  const out: Record<string, string> = {};
  if (Array.isArray(env)) {
    for (const entry of env) {
      const i = entry.indexOf('=');
      if (i > 0) out[entry.slice(0, i)] = entry.slice(i + 1);
    }
  } else {
    for (const [k, v] of Object.entries(env)) if (v !== null && v !== undefined) out[k] = String(v);
  }
  return out;
}

/** A service's command as an argument list. */
export function serviceCommand(compose: ComposeFile, name: string): string[] {
  const c = service(compose, name).command;
  if (c === undefined) return [];
  return Array.isArray(c) ? c.map(String) : c.split(/\s+/).filter(Boolean);
}

/** Bind mounts and file secrets of a service: container path → host path. Named volumes map to `undefined`. */
export function serviceMounts(compose: ComposeFile, name: string): Map<string, string | undefined> {
  const s = service(compose, name);
  const mounts = new Map<string, string | undefined>();
  for (const v of s.volumes ?? []) {
    if (typeof v === 'string') {
      const [source = '', target = ''] = v.split(':');
      const isPath = source.startsWith('.') || source.startsWith('/');
      mounts.set(target, isPath ? resolve(compose.dir, source) : undefined);
    } else {
      mounts.set(v.target, v.type === 'bind' && v.source ? resolve(compose.dir, v.source) : undefined);
    }
  }
  for (const sec of s.secrets ?? []) {
    const source = typeof sec === 'string' ? sec : sec.source;
    const target = typeof sec === 'string' || !sec.target ? `/run/secrets/${source}` : sec.target;
    const file = compose.secrets?.[source]?.file;
    mounts.set(target, file ? resolve(compose.dir, file) : undefined);
  }
  return mounts;
}

/** The host file behind a container path of a service (bind mount or secret), or an error naming both. */
export function hostPathOf(compose: ComposeFile, name: string, containerPath: string): string {
  const host = serviceMounts(compose, name).get(containerPath);
  if (!host) throw new Error(`compose service "${name}" mounts no host file at ${containerPath}`);
  return host;
}
