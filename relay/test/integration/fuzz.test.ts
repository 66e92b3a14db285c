/**
 * Property-based fuzz of the relay's inbound path (decode → validate → handlers) over real sockets, for
 * both roles and both codecs: whatever arrives, the relay answers with valid protocol (or a close), never
 * crashes, keeps serving other sockets, and no prototype is polluted (SECURITY.md 32).
 */
import { codeForClose, ERROR_CODES, encodeMessage } from '@scanrelay/protocol';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Relay } from '../../src/relay.js';
import type { TestClient } from '../helpers/client.js';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture } from '../helpers/relay-fixture.js';

const TYPES = ['hello', 'auth', 'subscribe', 'unsubscribe', 'command', 'ping', 'event', 'command.status', 'welcome'];
const FIELDS = ['type', 'ref', 'site', 'since', 'token', 'seq', 'kind', 'subject', 'at', 'data', 'command', 'state'];

const value = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.constantFrom('site-a', 'site-b', 'gw-1', 'a.b', 'completed', 'x'.repeat(300), '__proto__', -1, 1e300, 2 ** 53 + 2),
);
const messageLike = fc
  .tuple(fc.constantFrom(...TYPES), fc.dictionary(fc.constantFrom(...FIELDS, '__proto__', 'constructor'), value))
  .map(([type, fields]) => ({ ...fields, type }));

type Frame = { text: string } | { bytes: Uint8Array };
const jsonFrame: fc.Arbitrary<Frame> = fc.oneof(
  messageLike.map((m) => ({ text: JSON.stringify(m) })),
  fc.jsonValue().map((v) => ({ text: JSON.stringify(v) ?? 'null' })),
  fc.string({ maxLength: 200 }).map((text) => ({ text })),
  fc.constant({ text: '{"type":"subscribe","site":"site-a","__proto__":{"polluted":1}}' }),
  fc.constant({ text: `${'['.repeat(5_000)}${']'.repeat(5_000)}` }),
);
const msgpackFrame: fc.Arbitrary<Frame> = fc.oneof(
  messageLike.map((m) => ({ bytes: encodeMessage('msgpack', m) as Uint8Array })),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ bytes })),
  // array32 header claiming 2^32-1 elements; nested arrays; ext types; trailing bytes
  fc.constant({ bytes: Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff]) }),
  fc.constant({ bytes: Uint8Array.from(Array(10_000).fill(0x91)) }),
  fc.integer({ min: -128, max: 127 }).map((t) => ({ bytes: Uint8Array.from([0xd4, t & 0xff, 0x00]) })),
  fc.constant({ bytes: Uint8Array.from([0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xa4, 0x70, 0x69, 0x6e, 0x67, 0xc0]) }),
);

let fx: Fixture;
let relay: Relay;
beforeAll(async () => {
  fx = await createFixture({
    config: {
      limits: {
        maxBadMessages: 1_000_000,
        messagesPerSecond: 1_000_000,
        messageBurst: 1_000_000,
        gatewayMessagesPerSecond: 1_000_000,
        gatewayMessageBurst: 1_000_000,
      },
    },
  });
  relay = await fx.start();
});
afterAll(async () => {
  await fx.close();
});

/**
 * Send batches of fuzzed frames; after each, the socket must still answer a ping — or have been closed by the
 * relay with one of the protocol's close codes (e.g. a fuzzed `auth` with a junk token closes 4501), in which
 * case a fresh socket carries on.
 */
async function fuzz(connect: () => Promise<TestClient>, frames: fc.Arbitrary<Frame>, runs: number): Promise<void> {
  let client = await connect();
  let closes = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(frames, { maxLength: 15 }), async (batch) => {
      for (const f of batch) client.sendRaw('text' in f ? f.text : Buffer.from(f.bytes), !('text' in f));
      const closed = client.closed.then((c) => ({ closed: c }));
      const outcome = await Promise.race([client.roundTrip().then(() => ({ closed: undefined })), closed]);
      if (outcome.closed) {
        expect(codeForClose(outcome.closed.code) ?? outcome.closed.code).toBeOneOf([...ERROR_CODES, 1009]);
        closes++;
        client = await connect();
      }
    }),
    { numRuns: runs },
  );
  expect(closes).toBeLessThan(runs / 2);
}

describe('fuzzed inbound frames', () => {
  it.each(['json', 'msgpack'] as const)('a browser on %s never crashes the relay', async (codec) => {
    const connect = async () => (await fx.browser(relay, { codec, sites: ['site-a', 'site-b'] })).client;
    await fuzz(connect, codec === 'json' ? jsonFrame : msgpackFrame, 150);
  });

  it.each(['json', 'msgpack'] as const)('a gateway on %s never crashes the relay', async (codec) => {
    const connect = async () => (await fx.gateway(relay, `gw-${codec}`, { codec })).client;
    await fuzz(connect, codec === 'json' ? jsonFrame : msgpackFrame, 150);
  });

  it('left prototypes untouched and the node healthy', async () => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((await fetch(fx.http(relay, '/healthz'))).status).toBe(200);
    const fresh = await fx.browser(relay);
    await fresh.client.roundTrip();
  });
});
