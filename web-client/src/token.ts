/**
 * Getting a session token from the application (`options.getToken`), bounded in time: a manage app that never
 * answers must not hold the client in `connecting` (or a renewal in flight) forever.
 */
import { MAX_TOKEN_LENGTH } from '@scanrelay/protocol';
import { ScanRelayError } from './errors.js';
import type { Timers } from './types.js';

/** Call `getToken()`; reject with `token_unavailable` when it throws, answers garbage, or takes longer than `ms`. */
export async function fetchToken(getToken: () => Promise<string>, timers: Timers, ms: number): Promise<string> {
  let timer: unknown;
  const timeout = new Promise<never>((_, reject) => {
    timer = timers.setTimeout(
      () =>
        reject(
          new ScanRelayError(
            'token_unavailable',
            `getToken() did not answer within ${ms} ms; is the manage app reachable and the user signed in?`,
          ),
        ),
      ms,
    );
  });
  let token: unknown;
  try {
    token = await Promise.race([Promise.resolve().then(getToken), timeout]);
  } catch (err) {
    if (err instanceof ScanRelayError && err.code === 'token_unavailable') throw err;
    throw new ScanRelayError(
      'token_unavailable',
      'getToken() failed; is the manage app reachable and the user signed in?',
      {
        cause: err,
      },
    );
  } finally {
    timers.clearTimeout(timer);
  }
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH)
    throw new ScanRelayError('token_unavailable', 'getToken() did not return a token string');
  return token;
}
