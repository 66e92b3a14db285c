/**
 * Redis EventLog on Streams. Per site, all under the hash tag `{site:<id>}` (one cluster slot):
 *
 * | key                        | type   | holds                                                          |
 * |----------------------------|--------|----------------------------------------------------------------|
 * | `sr:{site:<id>}:events`    | stream | one entry per event, field `e` = event JSON; ids from the node clock |
 * | `sr:{site:<id>}:meta`      | hash   | `epoch`, `lastms`, `trimmed` (highest id dropped), `n`          |
 * | `sr:{site:<id>}:seq`       | hash   | gateway → highest `seq` stored                                 |
 * | `sr:{site:<id>}:snap`      | hash   | subject → `<id> <event JSON>`                                  |
 * | `sr:{site:<id>}:snapz`     | zset   | subject → last update counter (bounds the snapshot)            |
 * | `sr:gwsite:{gw:<id>}`      | string | the gateway's site, so `lastSeq(gateway)` finds its seq hash   |
 *
 * Positions are `<epoch>-<stream id>`. The epoch is created with HSETNX in the site's meta hash by the first
 * script that touches the site; if Redis loses the site's data (flush, restart without AOF, failover) a new
 * epoch is created and every older position resyncs. Append, dedupe, trim and snapshot update are one Lua
 * script (event-append.lua), so `append` resolves only after Redis has applied all of it — and, with
 * `publish`, the PUBLISH (SPUBLISH on a cluster: the channel `sr:{site:<id>}:bus` is in the site's slot) of the
 * stored event happens in that same script, so an acknowledged event is always published.
 */
import { randomBytes } from 'node:crypto';
import type { JsonObject, SnapshotEntry } from '@scanrelay/protocol';
import type { Clock } from '../clock.js';
import { busChannel } from './bus-redis.js';
import { PortError } from './errors.js';
import type {
  AppendPublish,
  AppendResult,
  EventLog,
  EventLogLimits,
  NewEvent,
  ReadResult,
  StoredEvent,
} from './event-log.js';
import { validateLimits, validateNewEvent } from './event-log-shared.js';
import { assertChannel, assertId, splitPosition } from './ids.js';
import type { RedisConnection } from './redis-connection.js';

/** What a stream entry stores (site is implied by the key). */
interface EntryJson {
  g: string;
  s: number;
  k: string;
  j?: string;
  a: number;
  d: JsonObject;
}

const STREAM_ID = /^(0|[1-9][0-9]{0,15})-(0|[1-9][0-9]{0,15})$/;

export function siteKeys(site: string): { events: string; meta: string; seq: string; snap: string; snapz: string } {
  const tag = `sr:{site:${site}}`;
  return {
    events: `${tag}:events`,
    meta: `${tag}:meta`,
    seq: `${tag}:seq`,
    snap: `${tag}:snap`,
    snapz: `${tag}:snapz`,
  };
}

export function gatewaySiteKey(gateway: string): string {
  return `sr:gwsite:{gw:${gateway}}`;
}

export class RedisEventLog implements EventLog {
  readonly #conn: RedisConnection;
  readonly #clock: Clock;
  readonly #limits: EventLogLimits;
  /** Gateways whose site mapping this process has already written. */
  readonly #mapped = new Set<string>();

  constructor(conn: RedisConnection, limits: EventLogLimits, clock: Clock) {
    validateLimits(limits);
    this.#conn = conn;
    this.#limits = { ...limits };
    this.#clock = clock;
  }

  async append(input: NewEvent, publish?: AppendPublish): Promise<AppendResult> {
    validateNewEvent(input);
    if (input.seq > 0 && !this.#mapped.has(input.gateway)) {
      await this.#conn.call('set gateway site', (c) => c.set(gatewaySiteKey(input.gateway), input.site));
      this.#mapped.add(input.gateway);
    }
    const entry: EntryJson = { g: input.gateway, s: input.seq, k: input.kind, a: input.at, d: input.data };
    if (input.subject !== undefined) entry.j = input.subject;
    const json = JSON.stringify(entry);
    const k = siteKeys(input.site);
    let channel = '';
    let template = '';
    const placeholder = `@@position-${randomBytes(12).toString('hex')}@@`;
    if (publish) {
      assertChannel(publish.channel);
      channel = busChannel(publish.channel);
      // The channel must hash to the site's slot: the script's keys decide which shard runs it.
      if (publish.channel !== `site:${input.site}`) {
        throw new PortError('invalid_id', `append can only publish on site:${input.site}, not ${publish.channel}`);
      }
      template = JSON.stringify(publish.build(stored(input, placeholder)));
    }
    const reply = (await this.#conn.script(
      'event-append',
      [k.events, k.meta, k.seq, k.snap, k.snapz],
      [
        input.gateway,
        input.seq,
        this.#clock.now(),
        this.#limits.maxEvents,
        this.#limits.maxAgeMs,
        this.#limits.maxSubjects,
        newEpoch(),
        input.subject ?? '',
        json,
        channel,
        template,
        placeholder,
        this.#conn.isCluster ? 'spublish' : 'publish',
      ],
    )) as [number, string, string?];
    if (reply[0] === 0) return { duplicate: true, lastSeq: Number(reply[1]) };
    return { duplicate: false, event: stored(input, `${reply[1]}-${reply[2]}`) };
  }

  async lastSeq(gateway: string): Promise<number> {
    assertId(gateway, 'gateway');
    const site = await this.#conn.call('get gateway site', (c) => c.get(gatewaySiteKey(gateway)));
    if (site === null || !/^[a-z0-9][a-z0-9-]{0,63}$/.test(site)) return 0;
    const seq = await this.#conn.call('get last seq', (c) => c.hget(siteKeys(site).seq, gateway));
    return seq === null ? 0 : Number(seq);
  }

  async readSince(site: string, since: string, limit: number): Promise<ReadResult> {
    assertId(site, 'site');
    if (!Number.isInteger(limit) || limit < 1) throw new PortError('invalid_id', 'readSince limit must be ≥ 1');
    const parsed = typeof since === 'string' ? splitPosition(since) : undefined;
    const id = parsed && STREAM_ID.test(parsed.rest) ? parsed.rest : '';
    const k = siteKeys(site);
    const reply = (await this.#conn.script(
      'event-read',
      [k.events, k.meta],
      [newEpoch(), parsed && id ? parsed.epoch : '', id, limit, this.#clock.now(), this.#limits.maxAgeMs],
    )) as string[] | [string, string, number, ...string[]];
    const epoch = String(reply[0]);
    const head = `${epoch}-${reply[1]}`;
    if (Number(reply[2]) === 1) return { events: [], gap: true, head };
    const events: StoredEvent[] = [];
    for (let i = 3; i + 1 < reply.length; i += 2) {
      events.push(toStored(site, `${epoch}-${reply[i]}`, String(reply[i + 1])));
    }
    return { events, gap: false, head };
  }

  async snapshot(site: string): Promise<{ head: string; entries: SnapshotEntry[] }> {
    assertId(site, 'site');
    const k = siteKeys(site);
    const reply = (await this.#conn.script(
      'event-snapshot',
      [k.events, k.meta, k.snap, k.snapz],
      [newEpoch()],
    )) as string[];
    const epoch = String(reply[0]);
    const entries: SnapshotEntry[] = [];
    for (let i = 2; i + 1 < reply.length; i += 2) {
      const value = String(reply[i + 1]);
      const space = value.indexOf(' ');
      const e = toStored(site, `${epoch}-${value.slice(0, space)}`, value.slice(space + 1));
      entries.push({
        subject: String(reply[i]),
        gateway: e.gateway,
        seq: e.seq,
        position: e.position,
        kind: e.kind,
        at: e.at,
        data: e.data,
      });
    }
    return { head: `${epoch}-${reply[1]}`, entries };
  }

  async close(): Promise<void> {}
}

function stored(input: NewEvent, position: string): StoredEvent {
  return {
    site: input.site,
    gateway: input.gateway,
    seq: input.seq,
    kind: input.kind,
    ...(input.subject !== undefined ? { subject: input.subject } : {}),
    at: input.at,
    data: input.data,
    position,
  };
}

function newEpoch(): string {
  return randomBytes(6).toString('hex');
}

function toStored(site: string, position: string, json: string): StoredEvent {
  let e: EntryJson;
  try {
    e = JSON.parse(json) as EntryJson;
  } catch (err) {
    throw new PortError('corrupt', `event at ${position} in site ${site} is not valid JSON`, { cause: err });
  }
  return {
    site,
    gateway: e.g,
    seq: e.s,
    kind: e.k,
    ...(e.j !== undefined ? { subject: e.j } : {}),
    at: e.a,
    data: e.d,
    position,
  };
}
