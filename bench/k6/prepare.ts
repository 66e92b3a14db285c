/**
 * Prepares a relay for the k6 scripts, through its public interfaces:
 *
 *   node bench/dist/k6/prepare.js keys  --out /tmp/k6-bench
 *     → manage-jwks.json (start the relay with SCANRELAY_MANAGE_JWKS=/tmp/k6-bench/manage-jwks.json and
 *       SCANRELAY_MANAGE_ISSUER=https://manage.bench.scanrelay.test, SCANRELAY_ALLOWED_ORIGINS=https://bench.scanrelay.test)
 *   node bench/dist/k6/prepare.js enrol --out /tmp/k6-bench --relay http://127.0.0.1:8080 --sites 10
 *     → bench.json: relay URL, issuer, audience, origin, the manage key and one enrolled gateway per site
 *       (admin API + /v1/activate). k6 scripts read it with -e BENCH=/tmp/k6-bench/bench.json.
 *
 * The private keys in these files are bench-only; never point this at a production relay.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_AUDIENCE } from '@scanrelay/protocol';
import { type CryptoKey, exportJWK, importJWK, type JWK } from 'jose';
import { enrolGateway, ISSUER, ManageApp, ORIGIN } from '../src/harness/scanrelay.js';

export interface BenchFile {
  relay: string;
  http: string;
  origin: string;
  issuer: string;
  audience: string;
  manage: { kid: string; privateJwk: JWK };
  gateways: Array<{ id: string; site: string; privateJwk: JWK }>;
}

/** Make the manage key; write its public JWKS (for the relay) and private JWK (for `enrol`). */
export async function makeKeys(dir: string): Promise<ManageApp> {
  const manage = await ManageApp.create(dir);
  await writeFile(
    join(dir, 'manage-key.json'),
    JSON.stringify({ kid: manage.key.kid, privateJwk: await manage.privateJwk() }),
  );
  return manage;
}

/** Enrol one gateway per site on the relay at `httpBase` and write bench.json. */
export async function enrol(dir: string, httpBase: string, sites: number, manage?: ManageApp): Promise<BenchFile> {
  const url = new URL(httpBase);
  const port = Number(url.port || 80);
  let app = manage;
  if (!app) {
    const saved = JSON.parse(await readFile(join(dir, 'manage-key.json'), 'utf8')) as { kid: string; privateJwk: JWK };
    const { d: _d, ...pub } = saved.privateJwk;
    app = ManageApp.fromKey(dir, {
      privateKey: (await importJWK(saved.privateJwk, 'ES256')) as CryptoKey,
      publicJwk: pub,
      kid: saved.kid,
    });
  }
  const gateways: BenchFile['gateways'] = [];
  for (let i = 0; i < sites; i++) {
    const gw = await enrolGateway(port, app, `site-${i}`, i);
    gateways.push({ id: gw.id, site: gw.site, privateJwk: { ...(await exportJWK(gw.key.privateKey)), alg: 'ES256' } });
  }
  const bench: BenchFile = {
    relay: `ws://${url.host}`,
    http: `http://${url.host}`,
    origin: ORIGIN,
    issuer: ISSUER,
    audience: DEFAULT_AUDIENCE,
    manage: { kid: app.key.kid ?? '', privateJwk: await app.privateJwk() },
    gateways,
  };
  await writeFile(join(dir, 'bench.json'), JSON.stringify(bench, null, 2));
  return bench;
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  const value = (name: string): string | undefined => {
    const i = rest.indexOf(`--${name}`);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  const out = value('out');
  if (!out) throw new Error('--out DIR is required');
  if (cmd === 'keys') {
    await makeKeys(out);
    process.stdout.write(`${join(out, 'manage-jwks.json')}\n`);
  } else if (cmd === 'enrol') {
    const relay = value('relay');
    if (!relay) throw new Error('--relay http://host:port is required');
    await enrol(out, relay, Number(value('sites') ?? 10));
    process.stdout.write(`${join(out, 'bench.json')}\n`);
  } else throw new Error('usage: prepare.js keys --out DIR | enrol --out DIR --relay URL [--sites N]');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: Error) => {
    process.stderr.write(`prepare: ${err.message}\n`);
    process.exit(1);
  });
}
