/**
 * Presence contract: every behaviour documented in relay/src/ports/presence.ts (and the lease rules in
 * presence-memory.ts), run against each implementation (presence.test.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Presence, PresenceRecord } from '../../src/ports/presence.js';
import { BAD_IDS, uniqueId } from './ids.js';
import type { ManualClock } from './manual-clock.js';

export interface PresenceFixture {
  presence: Presence;
  /** A second Presence on the same backend (another node). Memory: the same instance. */
  other: Presence;
  clock: ManualClock;
  close(): Promise<void>;
}

export type PresenceFactory = () => Promise<PresenceFixture>;

const TTL = 30_000;

function rec(
  gateway: string,
  site: string,
  connection: string,
  node = 'node-a',
  since = 1_700_000_000_000,
): PresenceRecord {
  return { gateway, site, node, connection, since };
}

export function presenceContract(name: string, factory: PresenceFactory): void {
  describe(`Presence contract: ${name}`, () => {
    const open: PresenceFixture[] = [];
    async function make(): Promise<PresenceFixture> {
      const f = await factory();
      open.push(f);
      return f;
    }
    afterEach(async () => {
      await Promise.all(open.splice(0).map((f) => f.close()));
    });

    it('fleet: online with node and traffic while leased, offline since the lapse, report and traffic kept', async () => {
      const { presence, other, clock } = await make();
      const site = uniqueId('site');
      const [gw, never] = [uniqueId('gw'), uniqueId('gw')];
      const t0 = clock.now();
      await presence.claim(rec(gw, site, 'c1', 'node-a', t0), TTL);
      await presence.noteTraffic(gw, t0 + 5);
      const report = {
        agent: { version: '1.2.3', transport: 'ws', startedAt: t0 - 1000 },
        outbox: { pending: 3, oldestAt: t0 - 50 },
        peers: [
          { aet: 'MG1', online: true, checkedAt: t0 - 10 },
          { aet: 'PACS', online: false, checkedAt: null },
        ],
        clockSkewMs: -42,
        reportedAt: t0 + 10,
      };
      await presence.saveReport(gw, report);
      expect(await other.fleet([never, gw])).toEqual([
        { online: false, since: null, node: null, lastTrafficAt: null, report: null },
        { online: true, since: t0, node: 'node-a', lastTrafficAt: t0 + 10, report },
      ]);
      clock.advance(TTL + 1);
      const [lapsed] = await other.fleet([gw]);
      expect(lapsed).toMatchObject({ online: false, since: t0 + TTL, node: null, lastTrafficAt: t0 + 10, report });
      await other.reapExpired(clock.now());
      expect((await presence.fleet([gw]))[0]).toMatchObject({ online: false, since: t0 + TTL, lastTrafficAt: t0 + 10 });
      expect(await presence.fleet([])).toEqual([]);
    });

    it('claims a free gateway, shows it online, and lists it for its site', async () => {
      const { presence, other } = await make();
      const site = uniqueId('site');
      const gw = uniqueId('gw');
      expect(await presence.claim(rec(gw, site, 'c1'), TTL)).toBeUndefined();
      expect(await other.get(gw)).toEqual(rec(gw, site, 'c1'));
      expect(await other.listSite(site)).toEqual([{ gateway: gw, online: true, since: 1_700_000_000_000 }]);
      expect(await other.listSite(uniqueId('site'))).toEqual([]);
    });

    it('a claim by another connection replaces the owner, returns it, and the old owner can no longer beat or release', async () => {
      const { presence, other } = await make();
      const site = uniqueId('site');
      const gw = uniqueId('gw');
      await presence.claim(rec(gw, site, 'c1', 'node-a'), TTL);
      const replaced = await other.claim(rec(gw, site, 'c2', 'node-b', 1_700_000_000_500), TTL);
      expect(replaced).toEqual(rec(gw, site, 'c1', 'node-a'));
      expect(await presence.heartbeat(gw, 'c1', TTL)).toBe(false);
      expect(await presence.release(gw, 'c1')).toBe(false);
      expect(await presence.get(gw)).toEqual(rec(gw, site, 'c2', 'node-b', 1_700_000_000_500));
      expect(await other.heartbeat(gw, 'c2', TTL)).toBe(true);
      // The same connection claiming again replaces nobody.
      expect(await other.claim(rec(gw, site, 'c2', 'node-b', 1_700_000_000_500), TTL)).toBeUndefined();
    });

    it('heartbeats extend the lease; without them it lapses after ttl', async () => {
      const { presence, clock } = await make();
      const site = uniqueId('site');
      const gw = uniqueId('gw');
      await presence.claim(rec(gw, site, 'c1'), TTL);
      clock.advance(TTL - 1_000);
      expect(await presence.heartbeat(gw, 'c1', TTL)).toBe(true);
      clock.advance(TTL - 1_000);
      expect(await presence.get(gw)).toBeDefined();
      expect((await presence.reapExpired(clock.now())).filter((r) => r.gateway === gw)).toEqual([]);
      clock.advance(2_000);
      expect(await presence.get(gw)).toBeUndefined();
      const listed = await presence.listSite(site);
      expect(listed).toHaveLength(1);
      expect(listed[0]!.online).toBe(false);
    });

    it('reaps a lapsed lease exactly once, marks it offline, and the owner can no longer beat it', async () => {
      const { presence, other, clock } = await make();
      const site = uniqueId('site');
      const gw = uniqueId('gw');
      await presence.claim(rec(gw, site, 'c1'), TTL);
      clock.advance(TTL + 1);
      const reaped = (await Promise.all([presence.reapExpired(clock.now()), other.reapExpired(clock.now())])).flat();
      expect(reaped.filter((r) => r.gateway === gw)).toEqual([rec(gw, site, 'c1')]);
      expect((await presence.reapExpired(clock.now())).filter((r) => r.gateway === gw)).toEqual([]);
      expect(await presence.heartbeat(gw, 'c1', TTL)).toBe(false);
      expect(await presence.listSite(site)).toEqual([{ gateway: gw, online: false, since: expect.any(Number) }]);
    });

    it('hands each of many lapsed leases to exactly one of several concurrent reapers', async () => {
      const { presence, other, clock } = await make();
      const site = uniqueId('site');
      const gws = Array.from({ length: 25 }, () => uniqueId('gw'));
      await Promise.all(gws.map((gw, i) => presence.claim(rec(gw, site, `c${i}`), TTL)));
      clock.advance(TTL + 1);
      const reapers = Array.from({ length: 8 }, (_, i) => (i % 2 ? other : presence).reapExpired(clock.now()));
      const reaped = (await Promise.all(reapers)).flat().filter((r) => r.site === site);
      expect(reaped.map((r) => r.gateway).sort()).toEqual([...gws].sort());
    });

    it('a beat that arrives after the deadline but before any reap keeps the lease', async () => {
      const { presence, clock } = await make();
      const site = uniqueId('site');
      const gw = uniqueId('gw');
      await presence.claim(rec(gw, site, 'c1'), TTL);
      clock.advance(TTL + 5);
      expect(await presence.heartbeat(gw, 'c1', TTL)).toBe(true);
      expect(await presence.get(gw)).toBeDefined();
      expect((await presence.reapExpired(clock.now())).filter((r) => r.gateway === gw)).toEqual([]);
    });

    it('a claim over a lapsed but unreaped lease returns it, so its node can close that socket', async () => {
      const { presence, clock } = await make();
      const site = uniqueId('site');
      const gw = uniqueId('gw');
      await presence.claim(rec(gw, site, 'c1'), TTL);
      clock.advance(TTL + 5);
      expect(await presence.claim(rec(gw, site, 'c2'), TTL)).toEqual(rec(gw, site, 'c1'));
      expect((await presence.reapExpired(clock.now())).filter((r) => r.gateway === gw)).toEqual([]);
    });

    it('release by the owner drops the lease at once and shows the gateway offline', async () => {
      const { presence, other, clock } = await make();
      const site = uniqueId('site');
      const gw = uniqueId('gw');
      await presence.claim(rec(gw, site, 'c1'), TTL);
      clock.advance(1_000);
      expect(await other.release(gw, 'c1')).toBe(true);
      expect(await presence.release(gw, 'c1')).toBe(false);
      expect(await presence.get(gw)).toBeUndefined();
      expect(await presence.listSite(site)).toEqual([{ gateway: gw, online: false, since: clock.now() }]);
      clock.advance(TTL * 2);
      expect((await presence.reapExpired(clock.now())).filter((r) => r.gateway === gw)).toEqual([]);
      // Online again after a new claim.
      await presence.claim(rec(gw, site, 'c3', 'node-a', clock.now()), TTL);
      expect(await presence.listSite(site)).toEqual([{ gateway: gw, online: true, since: clock.now() }]);
    });

    it('forgets offline gateways after the retention period', async () => {
      const { presence, clock } = await make();
      const site = uniqueId('site');
      const gw = uniqueId('gw');
      await presence.claim(rec(gw, site, 'c1'), TTL);
      await presence.release(gw, 'c1');
      clock.advance(24 * 60 * 60 * 1000 + 1);
      expect(await presence.listSite(site)).toEqual([]);
    });

    it('of N concurrent claims, exactly one ends as owner and every other is reported replaced once', async () => {
      const { presence, other } = await make();
      const site = uniqueId('site');
      const gw = uniqueId('gw');
      const conns = Array.from({ length: 12 }, (_, i) => `conn-${i}`);
      const results = await Promise.all(
        conns.map((c, i) => (i % 2 ? other : presence).claim(rec(gw, site, c, `node-${i % 2}`), TTL)),
      );
      const owner = (await presence.get(gw))!.connection;
      const replaced = results.filter((r) => r !== undefined).map((r) => r!.connection);
      expect(replaced).toHaveLength(conns.length - 1);
      expect(new Set([...replaced, owner]).size).toBe(conns.length);
      const beats = await Promise.all(conns.map((c) => presence.heartbeat(gw, c, TTL)));
      expect(beats.filter(Boolean)).toHaveLength(1);
    });

    it('refuses ids that are not protocol ids', async () => {
      const { presence } = await make();
      for (const bad of BAD_IDS) {
        await expect(presence.claim(rec(bad, 'site-1', 'c'), TTL)).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(presence.claim(rec('gw-1', bad, 'c'), TTL)).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(presence.get(bad)).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(presence.listSite(bad)).rejects.toMatchObject({ code: 'invalid_id' });
        await expect(presence.heartbeat(bad, 'c', TTL)).rejects.toMatchObject({ code: 'invalid_id' });
      }
    });
  });
}
