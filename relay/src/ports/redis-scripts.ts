/**
 * The Lua scripts behind the Redis ports, loaded from `./lua/*.lua` and registered once per connection with
 * ioredis `defineCommand` (EVALSHA, falling back to EVAL after a SCRIPT FLUSH or a Redis restart).
 *
 * tsc does not copy `.lua` files into dist/, so the loader looks beside this module first (src/ports/lua
 * under vitest, or dist/ports/lua if a build step copies them) and then in ../../src/ports/lua relative to
 * dist/ports (the built bin run from a checkout or an image that keeps src/ports/lua).
 */
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';

/** Script name → number of KEYS it takes (the rest of the arguments are ARGV). */
export const SCRIPTS = {
  'event-append': 5,
  'event-read': 2,
  'event-snapshot': 4,
  'presence-claim': 5,
  'presence-heartbeat': 2,
  'presence-release': 4,
  'presence-get': 2,
  'presence-list': 5,
  'presence-reap': 4,
  'command-claim': 7,
  'command-set-state': 4,
  'command-reap-overdue': 7,
  'held-hold': 5,
  'held-take': 7,
  'held-reap': 7,
  'held-drop': 6,
  'held-depth': 2,
  'registry-create': 3,
  'registry-activate': 2,
  'registry-failure': 1,
  'registry-revoke': 1,
  'registry-revoke-session': 1,
} as const;

export type ScriptName = keyof typeof SCRIPTS;

const cache = new Map<ScriptName, string>();

function candidates(name: string): URL[] {
  return [new URL(`./lua/${name}.lua`, import.meta.url), new URL(`../../src/ports/lua/${name}.lua`, import.meta.url)];
}

/** The source of one script. Throws naming every path tried if it cannot be found. */
export function loadLua(name: ScriptName): string {
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  const tried: string[] = [];
  for (const url of candidates(name)) {
    try {
      const source = readFileSync(url, 'utf8');
      cache.set(name, source);
      return source;
    } catch {
      tried.push(url.pathname);
    }
  }
  throw new Error(
    `Lua script ${name}.lua not found (tried ${tried.join(', ')}); the relay package must ship src/ports/lua`,
  );
}

/** ioredis method name for a script (defineCommand adds it to the client). */
function method(name: ScriptName): string {
  return `sr_${name.replace(/-/g, '_')}`;
}

/** Register every script on a client (idempotent per client). */
export function defineScripts(client: Redis | Cluster): void {
  for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
    client.defineCommand(method(name), { numberOfKeys: SCRIPTS[name], lua: loadLua(name) });
  }
}

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;

/** Run a registered script. `keys.length` must equal the script's declared key count. */
export function runScript(
  client: Redis | Cluster,
  name: ScriptName,
  keys: string[],
  args: (string | number)[],
): Promise<unknown> {
  if (keys.length !== SCRIPTS[name]) throw new Error(`script ${name} takes ${SCRIPTS[name]} keys, got ${keys.length}`);
  const fn = (client as unknown as Record<string, ScriptFn>)[method(name)];
  if (!fn) throw new Error(`script ${name} is not defined on this client (defineScripts not called)`);
  return fn.call(client, ...keys, ...args);
}
