/**
 * Redis Registry. All keys share the hash tag `{reg}` (one cluster slot) so activation — which reads the
 * activation record and writes the gateway — is one atomic Lua script. Run Redis with AOF persistence in
 * production: this is the source of truth for which gateways may connect.
 *
 * | key                       | type | holds                                                                   |
 * |---------------------------|------|-------------------------------------------------------------------------|
 * | `sr:{reg}:gw:<id>`        | hash | `base` (JSON: id, site, name, createdAt), `status`, `publicKey` (JWK JSON), `thumbprint`, `activatedAt`, `revokedAt` |
 * | `sr:{reg}:gws`            | set  | every gateway id (for listGateways)                                     |
 * | `sr:{reg}:act:<lookup>`   | hash | `base` (JSON: lookup, gateway, site, hash, salt, expiresAt), `gateway`, `expiresAt`, `failures`, `used` |
 * | `sr:{reg}:sessions`       | zset | revoked session id → until (ms)                                         |
 *
 * Values come back as arrays (HMGET), never as objects keyed by stored strings, so a stored `__proto__`
 * cannot reach an object prototype.
 */
import type { JWK } from 'jose';
import type { Clock } from '../clock.js';
import { PortError } from './errors.js';
import { assertId, assertTokenId } from './ids.js';
import type { RedisConnection } from './redis-connection.js';
import type { ActivateResult, ActivationRecord, GatewayRecord, GatewayStatus, Registry } from './registry.js';

const R = 'sr:{reg}';
const INDEX = `${R}:gws`;
const SESSIONS = `${R}:sessions`;
const gatewayKey = (id: string): string => `${R}:gw:${id}`;
const activationKey = (lookup: string): string => `${R}:act:${lookup}`;
const GATEWAY_FIELDS = ['base', 'status', 'publicKey', 'thumbprint', 'activatedAt', 'revokedAt'] as const;
const ACTIVATION_FIELDS = ['base', 'failures', 'used'] as const;
const ACTIVATE_REASONS = new Set(['unknown', 'used', 'expired', 'locked', 'revoked']);

export class RedisRegistry implements Registry {
  readonly #conn: RedisConnection;
  readonly #clock: Clock;

  constructor(conn: RedisConnection, clock: Clock) {
    this.#conn = conn;
    this.#clock = clock;
  }

  async createGateway(gateway: GatewayRecord, activation: ActivationRecord): Promise<void> {
    assertId(gateway.id, 'gateway id');
    assertId(gateway.site, 'gateway site');
    assertTokenId(activation.lookup, 'activation lookup');
    if (activation.gateway !== gateway.id || activation.site !== gateway.site) {
      throw new PortError('conflict', 'activation record must name the gateway and site it activates');
    }
    const { status, publicKey, thumbprint, activatedAt, revokedAt, ...base } = gateway;
    const { failures, used, ...actBase } = activation;
    const result = await this.#conn.script(
      'registry-create',
      [gatewayKey(gateway.id), activationKey(activation.lookup), INDEX],
      [
        gateway.id,
        JSON.stringify(base),
        status,
        JSON.stringify(actBase),
        activation.expiresAt,
        failures,
        used ? 1 : 0,
        publicKey ? JSON.stringify(publicKey) : '',
        thumbprint ?? '',
        activatedAt ?? '',
        revokedAt ?? '',
      ],
    );
    if (result === 'gateway_exists') throw new PortError('conflict', `gateway ${gateway.id} already exists`);
    if (result === 'lookup_exists') {
      throw new PortError('conflict', 'activation lookup already exists; generate a new code');
    }
  }

  async getGateway(id: string): Promise<GatewayRecord | undefined> {
    assertId(id, 'gateway id');
    const values = await this.#conn.call('get gateway', (c) => c.hmget(gatewayKey(id), ...GATEWAY_FIELDS));
    return toGateway(values);
  }

  async listGateways(): Promise<GatewayRecord[]> {
    const ids = await this.#conn.call('list gateways', (c) => c.smembers(INDEX));
    const records = await Promise.all(
      ids.filter((id) => /^[a-z0-9][a-z0-9-]{0,63}$/.test(id)).map((id) => this.getGateway(id)),
    );
    return records.filter((r): r is GatewayRecord => r !== undefined).sort((a, b) => a.createdAt - b.createdAt);
  }

  async getActivation(lookup: string): Promise<ActivationRecord | undefined> {
    assertTokenId(lookup, 'activation lookup');
    const [base, failures, used] = await this.#conn.call('get activation', (c) =>
      c.hmget(activationKey(lookup), ...ACTIVATION_FIELDS),
    );
    if (base === null) return undefined;
    const record = parseJson<Omit<ActivationRecord, 'failures' | 'used'>>(base, 'activation record');
    return { ...record, failures: Number(failures ?? 0), used: used === '1' };
  }

  async recordFailure(lookup: string): Promise<number> {
    assertTokenId(lookup, 'activation lookup');
    return Number(await this.#conn.script('registry-failure', [activationKey(lookup)], []));
  }

  async activate(
    lookup: string,
    key: { publicKey: JWK; thumbprint: string },
    now: number,
    maxFailures: number,
  ): Promise<ActivateResult> {
    assertTokenId(lookup, 'activation lookup');
    const gateway = await this.#conn.call('get activation gateway', (c) => c.hget(activationKey(lookup), 'gateway'));
    if (gateway === null || !/^[a-z0-9][a-z0-9-]{0,63}$/.test(gateway)) return { ok: false, reason: 'unknown' };
    const result = String(
      await this.#conn.script(
        'registry-activate',
        [activationKey(lookup), gatewayKey(gateway)],
        [gateway, now, maxFailures, JSON.stringify(key.publicKey), key.thumbprint],
      ),
    );
    if (result !== 'ok') {
      if (!ACTIVATE_REASONS.has(result)) throw new PortError('corrupt', `activation script answered ${result}`);
      return { ok: false, reason: result as 'unknown' | 'used' | 'expired' | 'locked' | 'revoked' };
    }
    const record = await this.getGateway(gateway);
    if (!record) throw new PortError('corrupt', `gateway ${gateway} vanished during activation`);
    return { ok: true, gateway: record };
  }

  async revoke(id: string, now: number): Promise<GatewayRecord | undefined> {
    assertId(id, 'gateway id');
    const found = Number(await this.#conn.script('registry-revoke', [gatewayKey(id)], [now]));
    return found === 1 ? this.getGateway(id) : undefined;
  }

  async revokeSession(sid: string, until: number): Promise<void> {
    assertTokenId(sid, 'session id');
    await this.#conn.script('registry-revoke-session', [SESSIONS], [sid, until, this.#clock.now()]);
  }

  async isSessionRevoked(sid: string, now: number): Promise<boolean> {
    assertTokenId(sid, 'session id');
    const until = await this.#conn.call('check session revocation', (c) => c.zscore(SESSIONS, sid));
    return until !== null && Number(until) > now;
  }

  async close(): Promise<void> {}
}

function toGateway(values: (string | null)[]): GatewayRecord | undefined {
  const [base, status, publicKey, thumbprint, activatedAt, revokedAt] = values;
  if (base === null || base === undefined) return undefined;
  const record = parseJson<GatewayRecord>(base, 'gateway record');
  record.status = (status ?? 'pending') as GatewayStatus;
  if (publicKey) record.publicKey = parseJson<JWK>(publicKey, 'gateway public key');
  if (thumbprint) record.thumbprint = thumbprint;
  if (activatedAt) record.activatedAt = Number(activatedAt);
  if (revokedAt) record.revokedAt = Number(revokedAt);
  return record;
}

function parseJson<T>(json: string, what: string): T {
  try {
    return JSON.parse(json) as T;
  } catch (err) {
    throw new PortError('corrupt', `a ${what} in Redis is not valid JSON`, { cause: err });
  }
}
