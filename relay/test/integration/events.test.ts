/**
 * Events, history, resume and presence (DESIGN.md "Events, history, presence"; SECURITY.md 14, 35, 36, 37).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture } from '../helpers/relay-fixture.js';

let fx: Fixture;
afterEach(async () => {
  await fx.close();
});

const ev = (seq: number, extra: Record<string, unknown> = {}) => ({
  type: 'event',
  seq,
  kind: 'procedure.started',
  subject: `ACC${seq}`,
  at: 1_700_000_000_000 + seq,
  data: { station: 'US1' },
  ...extra,
});

describe('gateway events', () => {
  it('acks after append and fans out to every subscriber of the site, in both codecs', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const json = await fx.browser(relay, { sites: ['site-a'] });
    const pack = await fx.browser(relay, { sites: ['site-a'], codec: 'msgpack' });
    for (const b of [json, pack]) {
      b.client.send({ type: 'subscribe', site: 'site-a', ref: 's' });
      expect(await b.client.next('subscribed')).toMatchObject({ site: 'site-a', ref: 's', snapshot: [] });
    }
    const gw = await fx.gateway(relay, 'gw-1', { codec: 'msgpack' });
    gw.client.send(ev(1));
    expect(await gw.client.next('event.ack')).toEqual({ type: 'event.ack', seq: 1 });
    for (const b of [json, pack]) {
      const e = await b.client.next('event', (m) => m.kind === 'procedure.started');
      expect(e).toMatchObject({ site: 'site-a', gateway: 'gw-1', seq: 1, subject: 'ACC1', data: { station: 'US1' } });
      expect(typeof e.position).toBe('string');
    }
    expect(await relay.ports.eventLog.lastSeq('gw-1')).toBe(1);
  });

  it('re-acks a duplicate seq without publishing it again', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const b = await fx.browser(relay);
    b.client.send({ type: 'subscribe', site: 'site-a' });
    await b.client.next('subscribed');
    const gw = await fx.gateway(relay, 'gw-1');
    gw.client.send(ev(1));
    gw.client.send(ev(2));
    gw.client.send(ev(1));
    const acks = [
      await gw.client.next('event.ack'),
      await gw.client.next('event.ack'),
      await gw.client.next('event.ack'),
    ];
    expect(acks.map((a) => a.seq)).toEqual([1, 2, 1]);
    await b.client.next('event', (m) => m.seq === 2);
    await b.client.roundTrip();
    const seqs = b.client.received
      .filter((m) => m.type === 'event' && m.kind === 'procedure.started')
      .map((m) => m.seq);
    expect(seqs).toEqual([1, 2]);
    // A reconnect learns what is stored.
    gw.client.close();
    const again = await fx.gateway(relay, 'gw-1');
    expect(again.welcome.acked).toBe(2);
  });

  it("stamps the gateway's own site: its events never reach another site's subscriber (case 36)", async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const a = await fx.browser(relay, { sites: ['site-a'] });
    a.client.send({ type: 'subscribe', site: 'site-a' });
    await a.client.next('subscribed');
    const gwB = await fx.gateway(relay, 'gw-b', { site: 'site-b' });
    gwB.client.send({ ...ev(1), site: 'site-a' }); // extra field: refused outright
    expect((await gwB.client.next('error')).code).toBe('bad_message');
    gwB.client.send(ev(2));
    await gwB.client.next('event.ack');
    await a.client.roundTrip();
    expect(a.client.received.filter((m) => m.type === 'event' && m.gateway === 'gw-b')).toEqual([]);
    const stored = await relay.ports.eventLog.readSince(
      'site-b',
      (await relay.ports.eventLog.snapshot('site-b')).head,
      10,
    );
    expect(stored.events).toEqual([]);
    const snap = await relay.ports.eventLog.snapshot('site-b');
    expect(snap.entries.map((e) => e.subject)).toEqual(['ACC2']);
  });

  it('refuses the relay-only kinds from a gateway', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const gw = await fx.gateway(relay, 'gw-1');
    for (const kind of ['command.status', 'gateway.online', 'gateway.offline']) {
      gw.client.send(ev(1, { kind }));
      expect((await gw.client.next('error')).message).toMatch(/reserved/);
    }
    expect(await relay.ports.eventLog.lastSeq('gw-1')).toBe(0);
  });
});

describe('subscribe', () => {
  it('refuses a site the session does not list (case 35) and counts subscriptions', async () => {
    fx = await createFixture();
    const relay = await fx.start({ limits: { maxSubscriptions: 2 } });
    const { client } = await fx.browser(relay, { sites: ['site-a', 'site-b', 'site-c'] });
    client.send({ type: 'subscribe', site: 'site-z', ref: 'z' });
    expect(await client.next('error')).toMatchObject({ code: 'forbidden', ref: 'z' });
    client.send({ type: 'subscribe', site: 'site-a' });
    client.send({ type: 'subscribe', site: 'site-b' });
    client.send({ type: 'subscribe', site: 'site-c', ref: 'c' });
    expect(await client.next('error')).toMatchObject({ code: 'rate_limited', ref: 'c' });
    client.send({ type: 'unsubscribe', site: 'site-a', ref: 'u' });
    expect(await client.next('unsubscribed')).toEqual({ type: 'unsubscribed', site: 'site-a', ref: 'u' });
    client.send({ type: 'subscribe', site: 'site-c', ref: 'c2' });
    expect(await client.next('subscribed', (m) => m.ref === 'c2')).toMatchObject({ site: 'site-c' });
  });

  it('gives a late subscriber the board: snapshot of the latest event per subject, and presence', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const gw = await fx.gateway(relay, 'gw-1');
    gw.client.send(ev(1, { subject: 'ACC1', kind: 'worklist.added' }));
    gw.client.send(ev(2, { subject: 'ACC1', kind: 'procedure.started' }));
    gw.client.send(ev(3, { subject: 'ACC2', kind: 'worklist.added' }));
    await gw.client.next('event.ack', (m) => m.seq === 3);
    const { client } = await fx.browser(relay);
    client.send({ type: 'subscribe', site: 'site-a' });
    const sub = await client.next('subscribed');
    const snapshot = sub.snapshot as { subject: string; kind: string; seq: number }[];
    expect(snapshot.map((s) => [s.subject, s.kind, s.seq]).sort()).toEqual([
      ['ACC1', 'procedure.started', 2],
      ['ACC2', 'worklist.added', 3],
    ]);
    expect(sub.presence).toEqual([{ gateway: 'gw-1', online: true, since: expect.any(Number) }]);
  });

  it('resumes with since: exactly the missed events, then live ones, none twice', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const gw = await fx.gateway(relay, 'gw-1');
    const first = await fx.browser(relay);
    first.client.send({ type: 'subscribe', site: 'site-a' });
    await first.client.next('subscribed');
    gw.client.send(ev(1));
    const e1 = await first.client.next('event', (m) => m.seq === 1);
    first.client.close();
    for (let s = 2; s <= 4; s++) gw.client.send(ev(s));
    await gw.client.next('event.ack', (m) => m.seq === 4);
    const again = await fx.browser(relay);
    again.client.send({ type: 'subscribe', site: 'site-a', since: e1.position as string, ref: 'r' });
    const sub = await again.client.next('subscribed');
    expect(sub.ref).toBe('r');
    for (let s = 2; s <= 4; s++) await again.client.next('event', (m) => m.seq === s);
    gw.client.send(ev(5));
    await again.client.next('event', (m) => m.seq === 5);
    await again.client.roundTrip();
    const seqs = again.client.received.filter((m) => m.type === 'event' && m.seq !== 0).map((m) => m.seq);
    expect(seqs).toEqual([2, 3, 4, 5]);
  });

  it('loses nothing and duplicates nothing when events stream during the subscribe', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const gw = await fx.gateway(relay, 'gw-1');
    const total = 200;
    const { client } = await fx.browser(relay);
    const sending = (async () => {
      for (let s = 1; s <= total; s++) {
        gw.client.send(ev(s, { subject: 'ACC' }));
        if (s % 20 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    await new Promise((r) => setTimeout(r, 2));
    client.send({ type: 'subscribe', site: 'site-a' });
    const sub = await client.next('subscribed');
    await sending;
    await gw.client.next('event.ack', (m) => m.seq === total, 10_000);
    await client.next('event', (m) => m.seq === total).catch(() => undefined);
    await client.roundTrip();
    const seen = client.received.filter((m) => m.type === 'event' && m.gateway === 'gw-1' && m.seq !== 0);
    const seqs = seen.map((m) => m.seq as number);
    const snapSeq = ((sub.snapshot as { seq: number }[])[0]?.seq ?? 0) as number;
    // Everything after the snapshot, in order, each once.
    expect(seqs).toEqual(Array.from({ length: total - snapSeq }, (_, i) => snapSeq + 1 + i));
  });

  it('tells a browser whose since is unknown or past history to resync', async () => {
    fx = await createFixture();
    const relay = await fx.start({ history: { maxEvents: 3 } });
    const gw = await fx.gateway(relay, 'gw-1');
    const b = await fx.browser(relay);
    b.client.send({ type: 'subscribe', site: 'site-a' });
    await b.client.next('subscribed');
    gw.client.send(ev(1));
    const e1 = await b.client.next('event', (m) => m.seq === 1);
    for (let s = 2; s <= 8; s++) gw.client.send(ev(s));
    await gw.client.next('event.ack', (m) => m.seq === 8);
    const late = await fx.browser(relay);
    late.client.send({ type: 'subscribe', site: 'site-a', since: e1.position as string, ref: 'x' });
    const resync = await late.client.next('resync');
    expect(resync).toMatchObject({ site: 'site-a', ref: 'x' });
    expect((resync.snapshot as unknown[]).length).toBeGreaterThan(0);
    expect(await late.client.next('presence')).toMatchObject({ gateway: 'gw-1', online: true });
    late.client.send({ type: 'subscribe', site: 'site-a', since: 'other-epoch-1' });
    await late.client.next('resync');
  });
});

describe('presence', () => {
  it('shows a gateway going online and offline to the site, live and as events', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const { client } = await fx.browser(relay);
    client.send({ type: 'subscribe', site: 'site-a' });
    expect((await client.next('subscribed')).presence).toEqual([]);
    const gw = await fx.gateway(relay, 'gw-1');
    expect(await client.next('presence')).toMatchObject({ site: 'site-a', gateway: 'gw-1', online: true });
    expect(await client.next('event', (m) => m.kind === 'gateway.online')).toMatchObject({ gateway: 'gw-1', seq: 0 });
    gw.client.close();
    expect(await client.next('presence', (m) => m.online === false)).toMatchObject({ gateway: 'gw-1' });
    await client.next('event', (m) => m.kind === 'gateway.offline');
  });

  it('replaces an older socket of the same gateway (4505) without showing it offline', async () => {
    fx = await createFixture();
    const relay = await fx.start();
    const { client } = await fx.browser(relay);
    client.send({ type: 'subscribe', site: 'site-a' });
    await client.next('subscribed');
    const one = await fx.gateway(relay, 'gw-1');
    await client.next('presence');
    const two = await fx.gateway(relay, 'gw-1');
    expect(await one.client.closed).toEqual({ code: 4505, reason: 'replaced' });
    two.client.send({ type: 'ping', ref: 'alive' });
    await two.client.next('pong');
    await client.roundTrip();
    expect(client.received.filter((m) => m.type === 'presence' && m.online === false)).toEqual([]);
  });
});
