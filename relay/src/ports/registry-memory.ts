/**
 * In-memory Registry, and the state machine shared with the file-backed one (`registry-file.ts`), which
 * persists every change through the `persist` hook before the change becomes visible.
 *
 * Mutations run one at a time (a promise chain), each on a copy of the state that replaces the live state
 * only after `persist` succeeded: a failed write leaves the registry as it was and the caller gets
 * `unavailable`, never a half-applied activation. Reads see the last committed state.
 */
import type { JWK } from 'jose';
import type { Clock } from '../clock.js';
import { PortError } from './errors.js';
import { assertId, assertTokenId } from './ids.js';
import type { ActivateResult, ActivationRecord, GatewayRecord, Registry } from './registry.js';

/** The whole registry. Maps, never objects indexed by untrusted strings. */
export interface RegistryState {
  gateways: Map<string, GatewayRecord>;
  activations: Map<string, ActivationRecord>;
  /** Revoked session id → until (ms epoch). */
  revokedSessions: Map<string, number>;
}

export function emptyRegistryState(): RegistryState {
  return { gateways: new Map(), activations: new Map(), revokedSessions: new Map() };
}

function copyState(state: RegistryState): RegistryState {
  return {
    gateways: new Map([...state.gateways].map(([k, v]) => [k, structuredClone(v)])),
    activations: new Map([...state.activations].map(([k, v]) => [k, { ...v }])),
    revokedSessions: new Map(state.revokedSessions),
  };
}

export class MemoryRegistry implements Registry {
  protected readonly clock: Clock;
  #state: RegistryState;
  #chain: Promise<unknown> = Promise.resolve();
  readonly #persist: ((state: RegistryState) => Promise<void>) | undefined;

  constructor(
    clock: Clock,
    initial: RegistryState = emptyRegistryState(),
    persist?: (s: RegistryState) => Promise<void>,
  ) {
    this.clock = clock;
    this.#state = initial;
    this.#persist = persist;
  }

  async createGateway(gateway: GatewayRecord, activation: ActivationRecord): Promise<void> {
    assertId(gateway.id, 'gateway id');
    assertId(gateway.site, 'gateway site');
    assertTokenId(activation.lookup, 'activation lookup');
    if (activation.gateway !== gateway.id || activation.site !== gateway.site) {
      throw new PortError('conflict', 'activation record must name the gateway and site it activates');
    }
    await this.#mutate((s) => {
      if (s.gateways.has(gateway.id)) throw new PortError('conflict', `gateway ${gateway.id} already exists`);
      if (s.activations.has(activation.lookup)) {
        throw new PortError('conflict', 'activation lookup already exists; generate a new code');
      }
      s.gateways.set(gateway.id, structuredClone(gateway));
      s.activations.set(activation.lookup, { ...activation });
    });
  }

  async getGateway(id: string): Promise<GatewayRecord | undefined> {
    assertId(id, 'gateway id');
    const g = this.#state.gateways.get(id);
    return g ? structuredClone(g) : undefined;
  }

  async listGateways(): Promise<GatewayRecord[]> {
    return [...this.#state.gateways.values()].map((g) => structuredClone(g));
  }

  async getActivation(lookup: string): Promise<ActivationRecord | undefined> {
    assertTokenId(lookup, 'activation lookup');
    const a = this.#state.activations.get(lookup);
    return a ? { ...a } : undefined;
  }

  async recordFailure(lookup: string): Promise<number> {
    assertTokenId(lookup, 'activation lookup');
    return this.#mutate((s) => {
      const a = s.activations.get(lookup);
      if (!a) return 0;
      a.failures += 1;
      return a.failures;
    });
  }

  async activate(
    lookup: string,
    key: { publicKey: JWK; thumbprint: string },
    now: number,
    maxFailures: number,
  ): Promise<ActivateResult> {
    assertTokenId(lookup, 'activation lookup');
    return this.#mutate((s): ActivateResult => {
      const a = s.activations.get(lookup);
      if (!a) return { ok: false, reason: 'unknown' };
      const g = s.gateways.get(a.gateway);
      if (!g) return { ok: false, reason: 'unknown' };
      if (g.status === 'revoked') return { ok: false, reason: 'revoked' };
      if (a.used) return { ok: false, reason: 'used' };
      if (a.failures >= maxFailures) return { ok: false, reason: 'locked' };
      if (a.expiresAt <= now) return { ok: false, reason: 'expired' };
      a.used = true;
      g.status = 'active';
      g.publicKey = structuredClone(key.publicKey);
      g.thumbprint = key.thumbprint;
      g.activatedAt = now;
      return { ok: true, gateway: structuredClone(g) };
    });
  }

  async revoke(id: string, now: number): Promise<GatewayRecord | undefined> {
    assertId(id, 'gateway id');
    return this.#mutate((s) => {
      const g = s.gateways.get(id);
      if (!g) return undefined;
      if (g.status !== 'revoked') {
        g.status = 'revoked';
        g.revokedAt = now;
      }
      return structuredClone(g);
    });
  }

  async revokeSession(sid: string, until: number): Promise<void> {
    assertTokenId(sid, 'session id');
    await this.#mutate((s) => {
      const now = this.clock.now();
      for (const [k, v] of s.revokedSessions) if (v <= now) s.revokedSessions.delete(k);
      s.revokedSessions.set(sid, Math.max(until, s.revokedSessions.get(sid) ?? 0));
    });
  }

  async isSessionRevoked(sid: string, now: number): Promise<boolean> {
    assertTokenId(sid, 'session id');
    const until = this.#state.revokedSessions.get(sid);
    return until !== undefined && until > now;
  }

  async close(): Promise<void> {
    await this.#chain.catch(() => {});
  }

  /** Apply `fn` to a copy of the state, persist it, then make it the live state. Serialised. */
  #mutate<T>(fn: (state: RegistryState) => T): Promise<T> {
    const run = this.#chain.then(async () => {
      const next = copyState(this.#state);
      const result = fn(next);
      if (this.#persist) await this.#persist(next);
      this.#state = next;
      return result;
    });
    // Keep the chain alive after a failure; the caller still sees the rejection through `run`.
    this.#chain = run.catch(() => {});
    return run;
  }
}
