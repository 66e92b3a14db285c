/**
 * Running ScanRelay as a benchmark arm, through its public interfaces only: the `scanrelay-relay` binary
 * configured by environment, a manage-app key whose JWKS file the relay pins, gateways enrolled through the
 * admin API and `POST /v1/activate` (as `scanrelay-gateway activate` does), and tokens minted as the manage
 * app and gateways would.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_AUDIENCE, TOKEN_TYP } from '@scanrelay/protocol';
import { CompactSign, type CryptoKey, exportJWK, generateKeyPair, type JWK } from 'jose';
import { freePort, type Proc, REPO_ROOT, startPinned } from './proc.js';

export const ISSUER = 'https://manage.bench.scanrelay.test';
export const ORIGIN = 'https://bench.scanrelay.test';
const RELAY_MAIN = join(REPO_ROOT, 'relay', 'dist', 'main.js');

export interface SigningKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  kid?: string;
}

async function sign(key: SigningKey, typ: string, payload: Record<string, unknown>): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'ES256', typ, ...(key.kid ? { kid: key.kid } : {}) })
    .sign(key.privateKey);
}

function claims(ttlS: number, extra: Record<string, unknown>): Record<string, unknown> {
  const iat = Math.floor(Date.now() / 1000);
  return { iat, exp: iat + ttlS, jti: randomUUID(), ...extra };
}

/** The manage app's side: its key, JWKS file, and the tokens it mints. */
export class ManageApp {
  private constructor(
    readonly key: SigningKey,
    readonly dir: string,
    readonly jwksPath: string,
  ) {}

  /** A fresh ES256 key; its public JWKS is written to `dir` (default: a new temporary directory). */
  static async create(dir?: string): Promise<ManageApp> {
    const pair = await generateKeyPair('ES256', { extractable: true });
    const kid = `bench-${randomUUID().slice(0, 8)}`;
    const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' };
    dir ??= await mkdtemp(join(tmpdir(), 'scanrelay-bench-'));
    const jwksPath = join(dir, 'manage-jwks.json');
    await writeFile(jwksPath, JSON.stringify({ keys: [publicJwk] }));
    return new ManageApp({ privateKey: pair.privateKey, publicJwk, kid }, dir, jwksPath);
  }

  /** A manage app around an existing key (its JWKS file is in `dir` already). */
  static fromKey(dir: string, key: SigningKey): ManageApp {
    return new ManageApp(key, dir, join(dir, 'manage-jwks.json'));
  }

  /** The private key as a JWK, for k6 scripts that mint their own tokens (bench keys only). */
  async privateJwk(): Promise<JWK> {
    return { ...(await exportJWK(this.key.privateKey)), kid: this.key.kid, alg: 'ES256' };
  }

  session(sub: string, sites: string[], ttlS = 3600): Promise<string> {
    return sign(
      this.key,
      TOKEN_TYP.session,
      claims(ttlS, { iss: ISSUER, aud: DEFAULT_AUDIENCE, sub, sid: `sid-${randomUUID()}`, sites }),
    );
  }

  admin(): Promise<string> {
    return sign(
      this.key,
      TOKEN_TYP.admin,
      claims(300, { iss: ISSUER, aud: DEFAULT_AUDIENCE, sub: 'bench', scope: 'admin' }),
    );
  }

  command(gateway: string, site: string, sub: string, ttlS = 120): Promise<string> {
    return sign(
      this.key,
      TOKEN_TYP.command,
      claims(ttlS, { iss: ISSUER, aud: gateway, site, sub, cmd: 'echo', args: { aet: 'BENCH' } }),
    );
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** An enrolled gateway: its id, site and own key (for assertions). */
export interface EnrolledGateway {
  id: string;
  site: string;
  key: SigningKey;
}

export function gatewayAssertion(gw: EnrolledGateway): Promise<string> {
  return sign(gw.key, TOKEN_TYP.gateway, claims(30, { iss: gw.id, sub: gw.id, aud: DEFAULT_AUDIENCE }));
}

function httpJson(
  port: number,
  method: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  localAddress = '127.0.0.1',
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        localAddress,
        headers: { ...headers, ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            json = { text };
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** Enrol one gateway for `site` via the admin API and activation, as an operator and the agent would. */
export async function enrolGateway(port: number, manage: ManageApp, site: string, n: number): Promise<EnrolledGateway> {
  let created = { status: 0, json: {} as Record<string, unknown> };
  // A relay answers /readyz before it may have read the pinned JWKS file: retry a refused admin token briefly.
  for (let attempt = 0; attempt < 10; attempt++) {
    const admin = await manage.admin();
    created = await httpJson(
      port,
      'POST',
      '/v1/admin/gateways',
      { site, name: `bench-${site}` },
      {
        authorization: `Bearer ${admin}`,
      },
    );
    if (created.status !== 401) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (created.status !== 200 && created.status !== 201)
    throw new Error(`admin API refused to create a gateway: ${created.status} ${JSON.stringify(created.json)}`);
  const code = String(created.json.activationCode);
  const pair = await generateKeyPair('ES256', { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), alg: 'ES256' };
  const key: SigningKey = { privateKey: pair.privateKey, publicJwk };
  const proof = await new CompactSign(new TextEncoder().encode(JSON.stringify({ code })))
    .setProtectedHeader({ alg: 'ES256', typ: 'scanrelay-activation+jwt' })
    .sign(pair.privateKey);
  // Activation is rate-limited per client address: spread enrolments over 127.0.0.x.
  const local = `127.0.0.${2 + (n % 200)}`;
  const activated = await httpJson(port, 'POST', '/v1/activate', { code, publicKey: publicJwk, proof }, {}, local);
  if (activated.status !== 200 && activated.status !== 201)
    throw new Error(`activation failed: ${activated.status} ${JSON.stringify(activated.json)}`);
  return { id: String(activated.json.gateway), site, key };
}

export interface RelayNodeOptions {
  transport: 'ws' | 'uws';
  manage: ManageApp;
  dataDir: string;
  redisUrl?: string;
  nodeId?: string;
  port?: number;
  cpu?: number;
}

/** Environment that lifts the relay's per-client abuse limits, which a load generator on one address trips. */
export const BENCH_LIMIT_ENV: Record<string, string> = {
  SCANRELAY_MESSAGES_PER_SECOND: '1000000',
  SCANRELAY_MESSAGE_BURST: '1000000',
  SCANRELAY_MAX_CONNECTIONS_PER_IP: '1000000',
  SCANRELAY_MAX_CONNECTIONS_PER_USER: '1000000',
  SCANRELAY_MAX_PENDING_MESSAGES: '100000',
  SCANRELAY_SEND_BUFFER_BYTES: String(8 * 1024 * 1024),
  SCANRELAY_HELLO_TIMEOUT_MS: '60000',
  // A bench gateway answers 3 statuses per command at 500 commands/s: above the per-gateway defaults.
  SCANRELAY_GATEWAY_MESSAGES_PER_SECOND: '1000000',
  SCANRELAY_GATEWAY_MESSAGE_BURST: '1000000',
  SCANRELAY_GATEWAY_MAX_PENDING_MESSAGES: '100000',
  // Stop quickly between arms (and within the harness's 5 s before SIGKILL, so --cpu-prof files get written).
  SCANRELAY_SHUTDOWN_GRACE_MS: '500',
};

/**
 * The Node flags the shipped launcher runs the relay with: those on the shebang line of relay/dist/main.js
 * (`#!/usr/bin/env -S node --flag …`), so every figure is taken with what an operator runs.
 */
export function launcherNodeArgs(mainPath: string = RELAY_MAIN): string[] {
  const first = readFileSync(mainPath, 'utf8').split('\n', 1)[0] ?? '';
  const match = /^#!\S*env\s+-S\s+node\s+(.*)$/.exec(first);
  return match?.[1] ? match[1].split(/\s+/).filter((a) => a.startsWith('--')) : [];
}

let relayNodeArgs: string[] | undefined;
/**
 * Node options for every relay node started from now on. Replaces the launcher's flags (pass
 * `--max-semi-space-size=16` to measure Node's own default); undefined = the launcher's flags.
 */
export function setRelayNodeArgs(args: string[] | undefined): void {
  relayNodeArgs = args;
}

/** Start one relay node (the built binary) pinned to the SUT CPU; resolves when /readyz answers 200. */
export async function startRelayNode(opts: RelayNodeOptions): Promise<Proc & { port: number }> {
  const port = opts.port ?? (await freePort());
  const env: Record<string, string> = {
    SCANRELAY_HOST: '127.0.0.1',
    SCANRELAY_PORT: String(port),
    SCANRELAY_MANAGE_JWKS: opts.manage.jwksPath,
    SCANRELAY_MANAGE_ISSUER: ISSUER,
    SCANRELAY_ALLOWED_ORIGINS: ORIGIN,
    SCANRELAY_DATA_DIR: opts.dataDir,
    SCANRELAY_NODE_ID: opts.nodeId ?? 'bench-1',
    SCANRELAY_TRANSPORT: opts.transport,
    SCANRELAY_LOG_LEVEL: 'error',
    ...BENCH_LIMIT_ENV,
    ...(opts.redisUrl ? { SCANRELAY_REDIS_URL: opts.redisUrl } : {}),
  };
  const proc = await startPinned(process.execPath, [...(relayNodeArgs ?? launcherNodeArgs()), RELAY_MAIN], {
    env,
    ...(opts.cpu !== undefined ? { cpu: opts.cpu } : {}),
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ready = await httpJson(port, 'GET', '/readyz', undefined).catch(() => ({ status: 0, json: {} }));
    if (ready.status === 200) break;
    if (proc.child.exitCode !== null || Date.now() > deadline) {
      await proc.stop('SIGKILL');
      throw new Error(`relay (${opts.transport}) did not become ready on port ${port}:\n${proc.output().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { ...proc, port };
}
