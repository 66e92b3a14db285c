/**
 * End-to-end helpers: the REAL relay (relay/test/helpers/relay-fixture.ts, engineer A), enrolment through its
 * real HTTP API, the gateway agent with the real DICOM service, and a browser-protocol client.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Relay } from '../../../relay/src/relay.js';
import type { Msg, TestClient } from '../../../relay/test/helpers/client.js';
import type { Fixture } from '../../../relay/test/helpers/relay-fixture.js';
import { mintAdmin, mintCommand, TEST_ISSUER } from '../../../relay/test/helpers/tokens.js';
import { type RawSettings, validateConfig } from '../../src/config.js';
import { activate } from '../../src/keys/activate.js';

export interface Enrolled {
  gateway: string;
  site: string;
  stateDir: string;
  cleanup(): Promise<void>;
}

/** Create a gateway through the admin API and activate it with the agent's own `activate()`. */
export async function enrol(fx: Fixture, relay: Relay, site = 'site-a'): Promise<Enrolled> {
  const admin = await mintAdmin(fx.manage);
  const res = await fetch(`http://127.0.0.1:${relay.port}/v1/admin/gateways`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ site, name: 'e2e gateway' }),
  });
  if (res.status !== 201) throw new Error(`admin create gateway: ${res.status} ${await res.text()}`);
  const created = (await res.json()) as { gateway: string; activationCode: string };
  const stateDir = await mkdtemp(join(tmpdir(), 'gw-e2e-'));
  const identity = await activate({ relay: `http://127.0.0.1:${relay.port}`, code: created.activationCode, stateDir });
  return {
    gateway: identity.gateway,
    site: identity.site,
    stateDir,
    cleanup: () => rm(stateDir, { recursive: true, force: true }),
  };
}

/** Settings of an e2e agent: loopback DICOM on a free port, the simulator's AE allowed, no periodic C-ECHO. */
export function agentSettings(fx: Fixture, relay: Relay, stateDir: string, extra: RawSettings = {}): RawSettings {
  return {
    SCANRELAY_GATEWAY_RELAY_URLS: `http://127.0.0.1:${relay.port}`,
    SCANRELAY_GATEWAY_STATE_DIR: stateDir,
    SCANRELAY_GATEWAY_MANAGE_JWKS: fx.jwks.path,
    SCANRELAY_GATEWAY_MANAGE_ISSUER: TEST_ISSUER,
    SCANRELAY_GATEWAY_AET: 'SCANRELAY',
    SCANRELAY_GATEWAY_DICOM_PORT: '0',
    SCANRELAY_GATEWAY_DICOM_HOST: '127.0.0.1',
    SCANRELAY_GATEWAY_ALLOWED_CALLING_AETS: 'HOLOGIC1',
    SCANRELAY_GATEWAY_ECHO_INTERVAL_S: '0',
    SCANRELAY_GATEWAY_LOG_LEVEL: 'warn',
    ...extra,
  };
}

export const agentConfig = (fx: Fixture, relay: Relay, stateDir: string, extra: RawSettings = {}) =>
  validateConfig(agentSettings(fx, relay, stateDir, extra));

/** Worklist args for `accession`, scheduled now (the simulator queries today's items for its station). */
/**
 * One appointment time for the whole test file: worklist.add is idempotent only for identical details, so
 * two calls meant to be "the same" must not straddle a second boundary (they once did, under load).
 */
const SCHEDULED_AT = new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export function worklistArgs(accession: string, patientId = '9434765919') {
  return {
    accession,
    patientId,
    patientName: 'SMITH^JANE',
    birthDate: '19700101',
    sex: 'F' as const,
    stationAet: 'HOLOGIC1',
    scheduledAt: SCHEDULED_AT,
    procedure: 'Screening mammography',
  };
}

export function commandToken(fx: Fixture, gateway: string, cmd: string, args: object): Promise<string> {
  return mintCommand(fx.manage, { claims: { aud: gateway, site: 'site-a', cmd, args } });
}

/** Send a command from a browser and wait for its terminal state; returns every status seen for it. */
export async function runCommand(browser: TestClient, ref: string, token: string, timeoutMs = 15_000): Promise<Msg[]> {
  browser.send({ type: 'command', ref, token });
  const terminal = new Set(['completed', 'failed', 'rejected', 'expired']);
  await browser.next('command.status', (m) => m.ref === ref && terminal.has(m.state as string), timeoutMs);
  return browser.received.filter((m) => m.type === 'command.status' && m.ref === ref);
}

/** The gateway events a browser has received for `gateway`, in arrival order. */
export function gatewayEvents(browser: TestClient, gateway: string): Msg[] {
  return browser.received.filter((m) => m.type === 'event' && m.gateway === gateway && (m.seq as number) > 0);
}

/** Subscribe a browser to a site and return the `subscribed` answer. */
export async function subscribe(browser: TestClient, site = 'site-a', since?: string): Promise<Msg> {
  browser.send({ type: 'subscribe', site, ref: `sub-${site}`, ...(since ? { since } : {}) });
  return browser.next('subscribed', (m) => m.site === site);
}
