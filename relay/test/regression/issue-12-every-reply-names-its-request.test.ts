/**
 * Regression (issue 12 item 8): a burst of commands from one browser socket past its message rate and its
 * pending cap used to get refusals (`rate_limited`, "too many messages waiting") without a `ref`: 51 of 141
 * replies in a 200-command burst could not be matched to the command they refused, so to the sender those
 * commands vanished. Now every reply to a message that carried a `ref` carries it — rate refusals, pending-cap
 * refusals and validation errors included — and every command gets at least one reply.
 *
 * One relay node, real sockets, real tokens; the gateway is offline so accepted commands end `queued`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Fixture } from '../helpers/relay-fixture.js';
import { createFixture, until } from '../helpers/relay-fixture.js';

let fx: Fixture;
afterEach(async () => {
  await fx.close();
});

describe('issue 12: every reply names its request', () => {
  it('a 200-command burst past the rate and pending limits: every reply carries its ref, none vanishes', async () => {
    fx = await createFixture();
    const relay = await fx.start({
      // Strikes high so the socket stays open for the whole burst: the point is the replies, not the close.
      limits: { messageBurst: 40, messagesPerSecond: 20, rateLimitStrikes: 10_000, maxPendingMessages: 8 },
    });
    await fx.addGateway('gw-1');
    const { client } = await fx.browser(relay);
    const tokens = await Promise.all(Array.from({ length: 200 }, () => fx.command({ aud: 'gw-1' })));
    const refs = tokens.map((_, i) => `c${i}`);
    for (let i = 0; i < tokens.length; i++) {
      // Every 50th (the first inside the burst) carries a field the protocol does not know: a validation error, which must name it too.
      const extra = i % 50 === 3 ? { colour: 'red' } : {};
      client.send({ type: 'command', ref: refs[i], token: tokens[i], ...extra });
    }
    const answered = () => new Set(client.received.filter((m) => typeof m.ref === 'string').map((m) => m.ref));
    await until(() => refs.every((r) => answered().has(r)), 'a reply to every command', 20_000);

    const replies = client.received.filter((m) => m.type === 'error' || m.type === 'command.status');
    for (const reply of replies) expect(refs, JSON.stringify(reply)).toContain(reply.ref);
    const errors = replies.filter((m) => m.type === 'error');
    const codes = new Set(errors.map((m) => m.code));
    // The burst really went past both limits, and validation was exercised.
    expect(codes).toContain('rate_limited');
    expect(codes).toContain('bad_message');
    expect(errors.filter((m) => /waiting/.test(String(m.message))).length).toBeGreaterThan(0);
    // A refused command got no status; an accepted one got no refusal.
    const refused = new Set(errors.map((m) => m.ref));
    for (const m of replies) if (m.type === 'command.status') expect(refused.has(m.ref)).toBe(false);
    await client.roundTrip(); // still open: the burst was refused request by request, not by closing
  });
});
