/**
 * `itOverWebSocket`: `it` for a WebSocket wire-level case (HTTP upgrade, WebSocket framing, ping frames) with
 * no WebTransport counterpart. Under SCANRELAY_TEST_TRANSPORT=webtransport the case is not registered, so it is
 * neither run nor reported as skipped there. Say why on the line above each use; the WebTransport equivalents
 * are in ./on-webtransport/transport-equivalents.test.ts.
 */
import { describe, it } from 'vitest';
import { onWebTransport } from './test-transport.js';

export function itOverWebSocket(name: string, fn: () => Promise<void>, timeoutMs?: number): void {
  if (!onWebTransport()) it(name, fn, timeoutMs);
}

/** `describe` for a group of such cases (vitest refuses an empty suite, so the whole group goes). */
export function describeOverWebSocket(name: string, fn: () => void): void {
  if (!onWebTransport()) describe(name, fn);
}
