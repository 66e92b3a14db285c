/**
 * Shared set-up for the auth suites: a manual clock, the real file registry in a temp dir, a manage-app key
 * in a JWKS file, the real Authenticator, and a logger whose lines are captured (to prove no token is logged).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { AuthError } from '../../src/auth/types.js';
import { createAuthenticator, type RelayAuthenticator } from '../../src/auth/verify.js';
import { FileRegistry } from '../../src/ports/registry-file.js';
import { ManualClock } from '../contract/manual-clock.js';
import {
  type GatewayKey,
  generateGatewayKey,
  generateManageKey,
  type JwksFile,
  type ManageAlg,
  TEST_AUDIENCE,
  TEST_ISSUER,
  type TestKey,
  writeJwksFile,
} from '../helpers/tokens.js';

export interface CapturedLogger {
  logger: pino.Logger;
  lines: string[];
}

/** A pino logger (level debug) whose JSON lines are kept in `lines`. */
export function capturedLogger(): CapturedLogger {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

export interface AuthFixture {
  clock: ManualClock;
  dir: string;
  registry: FileRegistry;
  manage: TestKey;
  jwks: JwksFile;
  auth: RelayAuthenticator;
  log: CapturedLogger;
  close(): Promise<void>;
}

/** Build the fixture; `close()` it in afterEach/afterAll. */
export async function authFixture(
  opts: { alg?: ManageAlg; requireEncryptedArgs?: boolean } = {},
): Promise<AuthFixture> {
  const clock = new ManualClock();
  const dir = await mkdtemp(join(tmpdir(), 'scanrelay-auth-'));
  const registry = await FileRegistry.open(dir, clock);
  const manage = await generateManageKey({ alg: opts.alg ?? 'ES256' });
  const jwks = await writeJwksFile([manage]);
  const log = capturedLogger();
  const auth = await createAuthenticator({
    manageJwks: jwks.path,
    manageIssuer: TEST_ISSUER,
    audience: TEST_AUDIENCE,
    registry,
    clock,
    logger: log.logger,
    requireEncryptedArgs: opts.requireEncryptedArgs ?? false,
  });
  return {
    clock,
    dir,
    registry,
    manage,
    jwks,
    auth,
    log,
    async close() {
      auth.close();
      await registry.close();
      await jwks.cleanup();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let gatewayCounter = 0;
let lookupCounter = 0;

/**
 * Register a gateway and bind a fresh key to it straight through the registry (the enrolment flow itself is
 * tested in activation.test.ts). `status: 'pending'` leaves it unactivated.
 */
export async function registerGateway(
  fx: Pick<AuthFixture, 'registry' | 'clock'>,
  opts: { site?: string; id?: string; alg?: 'ES256' | 'EdDSA'; status?: 'active' | 'pending' } = {},
): Promise<{ id: string; site: string; key: GatewayKey }> {
  const id = opts.id ?? `gw-${++gatewayCounter}`;
  const site = opts.site ?? 'site-a';
  const key = await generateGatewayKey(opts.alg ?? 'ES256');
  const lookup = `test-lookup-${++lookupCounter}`;
  const now = fx.clock.now();
  await fx.registry.createGateway(
    { id, site, name: id, status: 'pending', createdAt: now },
    { lookup, gateway: id, site, hash: 'AA', salt: 'AA', expiresAt: now + 3_600_000, failures: 0, used: false },
  );
  if ((opts.status ?? 'active') === 'active') {
    const r = await fx.registry.activate(lookup, { publicKey: key.publicJwk, thumbprint: key.thumbprint }, now, 5);
    if (!r.ok) throw new Error(`test set-up: activation failed (${r.reason})`);
  }
  return { id, site, key };
}

/** Await a promise that must reject with an AuthError; returns it for assertions on code and reason. */
export async function authFailure(p: Promise<unknown>): Promise<AuthError> {
  try {
    await p;
  } catch (err) {
    if ((err as Error).name === 'AuthError') return err as AuthError;
    throw err;
  }
  throw new Error('expected an AuthError, but the call succeeded');
}
