/**
 * Prepare a gateway state directory as `scanrelay-gateway activate` leaves it (key + identity), without a
 * relay — for link and agent tests that use the fake relay. The e2e tests activate through the real relay.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK } from 'jose';
import { type GatewayKey, generateGatewayKey } from '../../../relay/test/helpers/tokens.js';
import { IDENTITY_FILE, type Identity, KEY_FILE } from '../../src/keys/identity.js';

export async function makeGatewayState(
  opts: { gateway?: string; site?: string; relay?: string } = {},
): Promise<{ dir: string; key: GatewayKey; identity: Identity }> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-state-'));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = await generateGatewayKey('ES256');
  const identity: Identity = {
    gateway: opts.gateway ?? 'gw-1',
    site: opts.site ?? 'site-a',
    relay: opts.relay ?? 'http://127.0.0.1:9',
    alg: 'ES256',
    thumbprint: key.thumbprint,
    activatedAt: Date.now(),
  };
  await writeFile(join(dir, KEY_FILE), JSON.stringify(await exportJWK(key.privateKey)), { mode: 0o600 });
  await writeFile(join(dir, IDENTITY_FILE), JSON.stringify(identity), { mode: 0o600 });
  return { dir, key, identity };
}
