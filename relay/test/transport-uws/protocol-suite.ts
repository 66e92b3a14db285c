/**
 * Runs the relay's protocol test suites (relay/test/integration, cluster/cross-node, regression) again with
 * SCANRELAY_TRANSPORT=uws: the fixture (helpers/relay-fixture.ts) reads SCANRELAY_TEST_TRANSPORT, and importing
 * a suite from a test file registers its tests in that file. One wrapper per suite (on-uws/*.test.ts), so each suite's top-level hooks
 * stay its own. Where the native uWS build does not load (Node 24 with the v20.30 build), the wrapper instead
 * checks that asking for uWS fails start-up with the operator-readable error; CI runs Node 20 as well.
 */
import { describe, expect, it } from 'vitest';
import { loadUws } from '../../src/transport/uws.js';
import { createFixture } from '../helpers/relay-fixture.js';

export async function registerOnUws(suite: () => Promise<unknown>): Promise<void> {
  process.env.SCANRELAY_TEST_TRANSPORT = 'uws';
  const native = await loadUws().then(
    () => true,
    () => false,
  );
  if (native) {
    await suite();
    return;
  }
  describe('relay on the uWS transport, on a runtime without its native build', () => {
    it('refuses to start, naming SCANRELAY_TRANSPORT', async () => {
      const fx = await createFixture();
      try {
        await expect(fx.start()).rejects.toThrow(/SCANRELAY_TRANSPORT=ws/);
      } finally {
        await fx.close();
      }
    });
  });
}
