import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../src/codes.js';
import type { Direction } from '../src/messages.js';
import { SCHEMAS, validateMessage } from '../src/schema.js';

function fieldOf(direction: Direction, value: unknown): string | undefined {
  try {
    validateMessage(direction, value);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe('bad_message');
    return (err as ProtocolError).field;
  }
  return undefined;
}

const T = 1_795_000_000_000;

/** One valid example of every message type in every direction (the protocol's full surface). */
const VALID: Record<Direction, Record<string, Record<string, unknown>>> = {
  'browser→relay': {
    hello: { type: 'hello', token: 'a.b.c' },
    auth: { type: 'auth', token: 'a.b.c', ref: 'r1' },
    subscribe: { type: 'subscribe', site: 'site-a', since: 'e1-10', ref: 'r2' },
    unsubscribe: { type: 'unsubscribe', site: 'site-a' },
    command: { type: 'command', ref: 'c1', token: 'a.b.c' },
    ping: { type: 'ping' },
  },
  'gateway→relay': {
    hello: { type: 'hello', token: 'a.b.c' },
    'command.status': { type: 'command.status', command: 'jti-1', state: 'progress', progress: { done: 1, total: 4 } },
    event: { type: 'event', seq: 1, kind: 'procedure.started', subject: 'ACC1', at: T, data: {} },
    'gateway.report': {
      type: 'gateway.report',
      at: T,
      agent: { version: '0.1.0', transport: 'ws', startedAt: T },
      outbox: { pending: 2, oldestAt: T },
      peers: [
        { aet: 'MG1', online: true, checkedAt: T },
        { aet: 'PACS', online: false },
      ],
    },
    ping: { type: 'ping', ref: 'p' },
  },
  'relay→browser': {
    welcome: {
      type: 'welcome',
      session: 's1',
      node: 'n1',
      expiresAt: T,
      limits: { maxMessageBytes: 65536, maxSubscriptions: 16, messagesPerSecond: 50, pingIntervalMs: 25000 },
    },
    'auth.ok': { type: 'auth.ok', expiresAt: T, ref: 'r1' },
    'auth.expiring': { type: 'auth.expiring', expiresAt: T },
    subscribed: {
      type: 'subscribed',
      site: 'site-a',
      position: 'e1-3',
      snapshot: [
        {
          subject: 'ACC1',
          gateway: 'gw-1',
          seq: 3,
          position: 'e1-3',
          kind: 'images.received',
          at: T,
          data: { count: 2 },
        },
      ],
      presence: [{ gateway: 'gw-1', online: true, since: T }],
    },
    resync: { type: 'resync', site: 'site-a', position: 'e2-0', snapshot: [] },
    unsubscribed: { type: 'unsubscribed', site: 'site-a', ref: 'x' },
    'command.status': {
      type: 'command.status',
      ref: 'c1',
      command: 'jti-1',
      state: 'completed',
      detail: { result: { existing: false } },
    },
    event: {
      type: 'event',
      site: 'site-a',
      position: 'e1-4',
      gateway: 'gw-1',
      seq: 4,
      kind: 'procedure.completed',
      at: T,
      data: { images: 4 },
    },
    presence: { type: 'presence', site: 'site-a', gateway: 'gw-1', online: false, since: T },
    pong: { type: 'pong', ref: 'p' },
    error: { type: 'error', code: 'forbidden', message: 'no', ref: 'c1' },
  },
  'relay→gateway': {
    welcome: { type: 'welcome', gateway: 'gw-1', site: 'site-a', node: 'n1', acked: 0 },
    command: { type: 'command', command: 'jti-1', token: 'a.b.c', from: { sub: 'u1', session: 's1' } },
    'event.ack': { type: 'event.ack', seq: 9 },
    pong: { type: 'pong' },
    error: { type: 'error', code: 'revoked', message: 'revoked' },
  },
};

describe('every v1 message type validates', () => {
  for (const direction of Object.keys(VALID) as Direction[]) {
    it(`${direction}: examples cover every schema and pass`, () => {
      expect(Object.keys(VALID[direction]).sort()).toEqual(Object.keys(SCHEMAS[direction]).sort());
      for (const msg of Object.values(VALID[direction])) expect(validateMessage(direction, msg)).toBe(msg);
    });
  }
});

describe('rejections name the field', () => {
  it('unknown fields are rejected', () => {
    expect(fieldOf('browser→relay', { type: 'hello', token: 't', since: 'x' })).toBe('since');
    expect(fieldOf('gateway→relay', { type: 'event', seq: 1, kind: 'a.b', at: T, data: {}, site: 'other' })).toBe(
      'site',
    );
  });
  it('gateway.report fields are checked one by one', () => {
    const ok = {
      type: 'gateway.report',
      at: T,
      agent: { version: 'v', transport: 'ws', startedAt: T },
      outbox: { pending: 0 },
      peers: [],
    };
    expect(fieldOf('gateway→relay', { ...ok, outbox: { pending: -1 } })).toBe('outbox.pending');
    expect(fieldOf('gateway→relay', { ...ok, peers: [{ aet: 'MG1', online: 'yes' }] })).toBe('peers.0.online');
    expect(fieldOf('gateway→relay', { ...ok, agent: { version: 'v', transport: 'ws' } })).toBe('agent.startedAt');
    expect(
      fieldOf('gateway→relay', { ...ok, peers: Array.from({ length: 65 }, () => ({ aet: 'A', online: true })) }),
    ).toBe('peers');
  });
  it('missing required fields are named', () => {
    expect(fieldOf('browser→relay', { type: 'command', token: 't' })).toBe('ref');
    expect(fieldOf('gateway→relay', { type: 'event', kind: 'a.b', at: T, data: {} })).toBe('seq');
  });
  it('unknown or direction-foreign types are rejected on `type`', () => {
    expect(fieldOf('browser→relay', { type: 'event', seq: 1 })).toBe('type');
    expect(fieldOf('gateway→relay', { type: 'subscribe', site: 'a' })).toBe('type');
    expect(fieldOf('browser→relay', { type: 'toString' })).toBe('type');
    expect(fieldOf('browser→relay', { type: '__proto__' })).toBe('type');
    expect(fieldOf('browser→relay', { token: 't' })).toBe('type');
    expect(fieldOf('browser→relay', [])).toBe('message');
    expect(fieldOf('browser→relay', null)).toBe('message');
  });
  it('ids, refs, tokens and positions are bounded and patterned', () => {
    expect(fieldOf('browser→relay', { type: 'subscribe', site: 'Site_A' })).toBe('site');
    expect(fieldOf('browser→relay', { type: 'subscribe', site: 'a'.repeat(65) })).toBe('site');
    expect(fieldOf('browser→relay', { type: 'subscribe', site: 'site:*' })).toBe('site');
    expect(fieldOf('browser→relay', { type: 'subscribe', site: 'a', since: 'x y' })).toBe('since');
    expect(fieldOf('browser→relay', { type: 'ping', ref: 'r'.repeat(65) })).toBe('ref');
    expect(fieldOf('browser→relay', { type: 'hello', token: 't'.repeat(8193) })).toBe('token');
    expect(fieldOf('browser→relay', { type: 'hello', token: '' })).toBe('token');
  });
  it('seq must be a positive safe integer', () => {
    for (const seq of [0, -1, 1.5, '1', Number.MAX_SAFE_INTEGER + 2, Number.NaN]) {
      expect(fieldOf('gateway→relay', { type: 'event', seq, kind: 'a.b', at: T, data: {} })).toBe('seq');
    }
  });
  it('event kinds follow the dotted lower-case pattern', () => {
    expect(fieldOf('gateway→relay', { type: 'event', seq: 1, kind: 'Images', at: T, data: {} })).toBe('kind');
    expect(fieldOf('gateway→relay', { type: 'event', seq: 1, kind: 'a..b', at: T, data: {} })).toBe('kind');
  });
  it('command states are the ten of v1', () => {
    expect(fieldOf('gateway→relay', { type: 'command.status', command: 'j', state: 'done' })).toBe('state');
  });
  it('free-form data must be plain, bounded JSON', () => {
    const ev = (data: unknown) => ({ type: 'event', seq: 1, kind: 'a.b', at: T, data });
    expect(fieldOf('gateway→relay', ev([]))).toBe('data');
    expect(fieldOf('gateway→relay', ev({ when: new Date() }))).toBe('data.when');
    expect(fieldOf('gateway→relay', ev({ m: new Map() }))).toBe('data.m');
    expect(fieldOf('gateway→relay', ev({ b: new Uint8Array(1) }))).toBe('data.b');
    expect(fieldOf('gateway→relay', ev({ n: Number.POSITIVE_INFINITY }))).toBe('data.n');
    expect(fieldOf('gateway→relay', ev(JSON.parse('{"__proto__":{"x":1}}')))).toBe('data.__proto__');
    expect(fieldOf('gateway→relay', ev({ constructor: 1 }))).toBe('data.constructor');
    let deep: unknown = {};
    for (let i = 0; i < 12; i++) deep = { d: deep };
    expect(fieldOf('gateway→relay', ev(deep))).toMatch(/^data(\.d)+$/);
    expect(fieldOf('gateway→relay', ev({ s: 'x'.repeat(4097) }))).toBe('data.s');
  });
  it('error codes must be known', () => {
    expect(fieldOf('relay→browser', { type: 'error', code: 'oops', message: 'm' })).toBe('code');
  });
  it('messages of error text name the field for a human', () => {
    try {
      validateMessage('browser→relay', { type: 'subscribe', site: 'BAD' });
    } catch (err) {
      expect((err as Error).message).toMatch(/^field "site" /);
    }
    expect.assertions(1);
  });
});
