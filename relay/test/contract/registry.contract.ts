/**
 * Registry contract: every behaviour documented in relay/src/ports/registry.ts, run against each
 * implementation (registry.test.ts), including that state survives a restart.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ActivationRecord, GatewayRecord, Registry } from '../../src/ports/registry.js';
import { BAD_IDS, uniqueId } from './ids.js';
import type { ManualClock } from './manual-clock.js';

export interface RegistryFixture {
  registry: Registry;
  /** A second Registry on the same backend (another node, or the same file reopened). */
  other: () => Promise<Registry>;
  /** Close this registry and open a new one on the same storage (a relay restart). */
  restart: () => Promise<Registry>;
  clock: ManualClock;
  close(): Promise<void>;
}

export type RegistryFactory = () => Promise<RegistryFixture>;

const KEY = { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' };

function pending(
  clock: ManualClock,
  overrides: Partial<GatewayRecord> = {},
): { g: GatewayRecord; a: ActivationRecord } {
  const id = uniqueId('gw');
  const site = uniqueId('site');
  const g: GatewayRecord = {
    id,
    site,
    name: 'Ward 7 ultrasound',
    status: 'pending',
    createdAt: clock.now(),
    ...overrides,
  };
  const a: ActivationRecord = {
    lookup: uniqueId('lk'),
    gateway: g.id,
    site: g.site,
    hash: 'aGFzaA',
    salt: 'c2FsdA',
    expiresAt: clock.now() + 3_600_000,
    failures: 0,
    used: false,
  };
  return { g, a };
}

export function registryContract(name: string, factory: RegistryFactory): void {
  describe(`Registry contract: ${name}`, () => {
    const open: RegistryFixture[] = [];
    async function make(): Promise<RegistryFixture> {
      const f = await factory();
      open.push(f);
      return f;
    }
    afterEach(async () => {
      await Promise.all(open.splice(0).map((f) => f.close()));
    });

    it('creates a pending gateway with its activation record and lists it', async () => {
      const { registry, clock } = await make();
      const { g, a } = pending(clock);
      await registry.createGateway(g, a);
      expect(await registry.getGateway(g.id)).toEqual(g);
      expect(await registry.getActivation(a.lookup)).toEqual(a);
      expect((await registry.listGateways()).filter((x) => x.id === g.id)).toEqual([g]);
      expect(await registry.getGateway(uniqueId('gw'))).toBeUndefined();
      expect(await registry.getActivation(uniqueId('lk'))).toBeUndefined();
    });

    it('imports a gateway that is already active (key bound) exactly as given', async () => {
      const { registry, clock } = await make();
      const { g, a } = pending(clock, { status: 'active', publicKey: KEY, thumbprint: 'tp0', activatedAt: 5 });
      await registry.createGateway(g, { ...a, used: true });
      expect(await registry.getGateway(g.id)).toEqual(g);
      expect(await registry.activate(a.lookup, { publicKey: KEY, thumbprint: 'x' }, clock.now(), 5)).toEqual({
        ok: false,
        reason: 'used',
      });
    });

    it('refuses an existing gateway id or activation lookup with `conflict`', async () => {
      const { registry, clock } = await make();
      const { g, a } = pending(clock);
      await registry.createGateway(g, a);
      const second = pending(clock);
      await expect(registry.createGateway(g, { ...second.a, gateway: g.id, site: g.site })).rejects.toMatchObject({
        code: 'conflict',
      });
      await expect(
        registry.createGateway(second.g, { ...a, gateway: second.g.id, site: second.g.site }),
      ).rejects.toMatchObject({
        code: 'conflict',
      });
      expect(await registry.getGateway(second.g.id)).toBeUndefined();
    });

    it('activates once: binds the key, marks the code used, then refuses reuse', async () => {
      const { registry, clock } = await make();
      const { g, a } = pending(clock);
      await registry.createGateway(g, a);
      const result = await registry.activate(a.lookup, { publicKey: KEY, thumbprint: 'tp1' }, clock.now(), 5);
      const active: GatewayRecord = {
        ...g,
        status: 'active',
        publicKey: KEY,
        thumbprint: 'tp1',
        activatedAt: clock.now(),
      };
      expect(result).toEqual({ ok: true, gateway: active });
      expect(await registry.getGateway(g.id)).toEqual(active);
      expect((await registry.getActivation(a.lookup))!.used).toBe(true);
      expect(await registry.activate(a.lookup, { publicKey: KEY, thumbprint: 'tp2' }, clock.now(), 5)).toEqual({
        ok: false,
        reason: 'used',
      });
      expect((await registry.getGateway(g.id))!.thumbprint).toBe('tp1');
    });

    it('exactly one of N concurrent activations with one code succeeds', async () => {
      const fx = await make();
      const { registry, clock } = fx;
      const other = await fx.other();
      const { g, a } = pending(clock);
      await registry.createGateway(g, a);
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          (i % 2 ? other : registry).activate(a.lookup, { publicKey: KEY, thumbprint: `tp${i}` }, clock.now(), 5),
        ),
      );
      const winners = results.filter((r) => r.ok);
      expect(winners).toHaveLength(1);
      expect(results.filter((r) => !r.ok && r.reason === 'used')).toHaveLength(11);
      expect((await registry.getGateway(g.id))!.thumbprint).toBe(winners[0]!.ok ? winners[0]!.gateway.thumbprint : '');
    });

    it('refuses unknown, expired, locked and revoked activations, without binding a key', async () => {
      const { registry, clock } = await make();
      expect(await registry.activate(uniqueId('lk'), { publicKey: KEY, thumbprint: 't' }, clock.now(), 5)).toEqual({
        ok: false,
        reason: 'unknown',
      });
      const exp = pending(clock);
      await registry.createGateway(exp.g, exp.a);
      expect(await registry.activate(exp.a.lookup, { publicKey: KEY, thumbprint: 't' }, exp.a.expiresAt, 5)).toEqual({
        ok: false,
        reason: 'expired',
      });
      const locked = pending(clock);
      await registry.createGateway(locked.g, locked.a);
      for (let i = 1; i <= 3; i++) expect(await registry.recordFailure(locked.a.lookup)).toBe(i);
      expect(await registry.activate(locked.a.lookup, { publicKey: KEY, thumbprint: 't' }, clock.now(), 3)).toEqual({
        ok: false,
        reason: 'locked',
      });
      const revoked = pending(clock);
      await registry.createGateway(revoked.g, revoked.a);
      await registry.revoke(revoked.g.id, clock.now());
      expect(await registry.activate(revoked.a.lookup, { publicKey: KEY, thumbprint: 't' }, clock.now(), 5)).toEqual({
        ok: false,
        reason: 'revoked',
      });
      for (const x of [exp, locked, revoked]) expect((await registry.getGateway(x.g.id))!.publicKey).toBeUndefined();
    });

    it('counts concurrent failures exactly; unknown lookups count nothing', async () => {
      const fx = await make();
      const other = await fx.other();
      const { g, a } = pending(fx.clock);
      await fx.registry.createGateway(g, a);
      const counts = await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 ? other : fx.registry).recordFailure(a.lookup)),
      );
      expect([...counts].sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect((await fx.registry.getActivation(a.lookup))!.failures).toBe(10);
      expect(await fx.registry.recordFailure(uniqueId('lk'))).toBe(0);
    });

    it('revokes a gateway once (keeping the first revocation time); unknown ids return undefined', async () => {
      const { registry, clock } = await make();
      const { g, a } = pending(clock);
      await registry.createGateway(g, a);
      await registry.activate(a.lookup, { publicKey: KEY, thumbprint: 'tp' }, clock.now(), 5);
      const t = clock.now();
      expect(await registry.revoke(g.id, t)).toMatchObject({ id: g.id, status: 'revoked', revokedAt: t });
      expect(await registry.revoke(g.id, t + 5)).toMatchObject({ status: 'revoked', revokedAt: t });
      expect(await registry.getGateway(g.id)).toMatchObject({ status: 'revoked', revokedAt: t, thumbprint: 'tp' });
      expect(await registry.revoke(uniqueId('gw'), t)).toBeUndefined();
    });

    it('revokes a session id until the given time, seen by every node', async () => {
      const fx = await make();
      const other = await fx.other();
      const sid = uniqueId('sid');
      const until = fx.clock.now() + 60_000;
      expect(await fx.registry.isSessionRevoked(sid, fx.clock.now())).toBe(false);
      await fx.registry.revokeSession(sid, until);
      expect(await other.isSessionRevoked(sid, fx.clock.now())).toBe(true);
      expect(await other.isSessionRevoked(sid, until)).toBe(false);
      // A shorter second revocation does not shorten the first.
      await other.revokeSession(sid, until - 30_000);
      expect(await fx.registry.isSessionRevoked(sid, until - 1)).toBe(true);
    });

    it('keeps gateways, activations and session revocations across a restart', async () => {
      const fx = await make();
      const { g, a } = pending(fx.clock);
      const second = pending(fx.clock);
      await fx.registry.createGateway(g, a);
      await fx.registry.createGateway(second.g, second.a);
      await fx.registry.activate(a.lookup, { publicKey: KEY, thumbprint: 'tp' }, fx.clock.now(), 5);
      await fx.registry.recordFailure(second.a.lookup);
      const sid = uniqueId('sid');
      await fx.registry.revokeSession(sid, fx.clock.now() + 60_000);
      const restarted = await fx.restart();
      expect(await restarted.getGateway(g.id)).toMatchObject({ status: 'active', publicKey: KEY, thumbprint: 'tp' });
      expect(await restarted.getActivation(a.lookup)).toMatchObject({ used: true });
      expect(await restarted.getGateway(second.g.id)).toEqual(second.g);
      expect(await restarted.getActivation(second.a.lookup)).toEqual({ ...second.a, failures: 1 });
      expect(await restarted.isSessionRevoked(sid, fx.clock.now())).toBe(true);
    });

    it('refuses bad ids, lookups and session ids', async () => {
      const { registry, clock } = await make();
      for (const bad of BAD_IDS) {
        await expect(registry.getGateway(bad)).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(registry.revoke(bad, clock.now())).rejects.toMatchObject({ code: 'invalid_id' });
        const { g, a } = pending(clock);
        await expect(registry.createGateway({ ...g, id: bad }, { ...a, gateway: bad })).rejects.toMatchObject({
          code: 'invalid_id',
        });
      }
      for (const bad of ['', '{x}', 'a b', 'x'.repeat(201), '*']) {
        await expect(registry.getActivation(bad)).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(registry.revokeSession(bad, clock.now() + 1)).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(registry.isSessionRevoked(bad, clock.now())).rejects.toMatchObject({ code: 'invalid_id' });
      }
    });
  });
}
