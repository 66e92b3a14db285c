/** The relay reports the transport it runs on; with SCANRELAY_TEST_TRANSPORT=uws that is uWS. */
import { describe, expect, it } from 'vitest';
import { createFixture } from '../helpers/relay-fixture.js';
import { registerOnUws } from './protocol-suite.js';

await registerOnUws(async () => {
  describe('relay on the uWS transport', () => {
    it('starts and reports transport uws on /version', async () => {
      const fx = await createFixture();
      try {
        const relay = await fx.start();
        const version = (await (await fetch(fx.http(relay, '/version'))).json()) as { transport: string };
        expect(version.transport).toBe('uws');
      } finally {
        await fx.close();
      }
    });
  });
});
