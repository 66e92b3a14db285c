/**
 * (No filed issue: found in review. Named without an issue number so it is not mistaken for issue 4.)
 * A Redis URL's password must never reach an error message or a log: the relay prints start-up failures and
 * an operator pastes them into tickets. Regression for the message that quoted SCANRELAY_REDIS_URL verbatim.
 */
import { createServer } from 'node:net';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RedisConnection, redactUrl } from '../../src/ports/redis-connection.js';

describe('Redis credentials stay out of messages', () => {
  it('redactUrl hides user and password and keeps where it points', () => {
    expect(redactUrl('redis://admin:s3cret-pw@cache.internal:6380/0')).toBe('redis://***:***@cache.internal:6380/0');
    expect(redactUrl('rediss://:s3cret-pw@cache.internal:6380')).not.toContain('s3cret-pw');
    expect(redactUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
    expect(redactUrl('not a url s3cret-pw')).not.toContain('s3cret-pw');
  });

  it('an unreachable Redis fails start-up with a message that names the host but not the password', async () => {
    // A port that accepts nothing: bind, read the port, close.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const url = `redis://admin:s3cret-pw@127.0.0.1:${port}`;
    const err = await RedisConnection.open({
      urls: [url],
      logger: pino({ level: 'silent' }),
      name: 'test',
      connectTimeoutMs: 500,
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err?.message).toContain(`127.0.0.1:${port}`);
    expect(err?.message).not.toContain('s3cret-pw');
    expect(err?.message).toMatch(/SCANRELAY_REDIS_URL/);
  });
});
