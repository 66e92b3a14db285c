/** File registry specifics beyond the contract: file mode, atomic replacement, refusing a corrupt file. */
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileRegistry, REGISTRY_FILE } from '../../src/ports/registry-file.js';
import { ManualClock } from './manual-clock.js';

describe('FileRegistry', () => {
  const dirs: string[] = [];
  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'scanrelay-registry-'));
    dirs.push(dir);
    return dir;
  }
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  it('writes registry.json with mode 0600 and leaves no temporary files behind', async () => {
    const dir = await tempDir();
    const clock = new ManualClock();
    const registry = await FileRegistry.open(dir, clock);
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        registry.createGateway(
          { id: `gw-${i}`, site: 'site-1', name: 'x', status: 'pending', createdAt: 1 },
          {
            lookup: `lk-${i}`,
            gateway: `gw-${i}`,
            site: 'site-1',
            hash: 'h',
            salt: 's',
            expiresAt: 2,
            failures: 0,
            used: false,
          },
        ),
      ),
    );
    await registry.close();
    expect(await readdir(dir)).toEqual([REGISTRY_FILE]);
    expect((await stat(join(dir, REGISTRY_FILE))).mode & 0o777).toBe(0o600);
    const reopened = await FileRegistry.open(dir, clock);
    expect((await reopened.listGateways()).map((g) => g.id).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `gw-${i}`).sort(),
    );
  });

  it('refuses to start on a corrupt file, naming the file and the fix', async () => {
    for (const content of [
      '{not json',
      '{"version":2}',
      '{"version":1,"gateways":[{"id":"__proto__"}],"activations":[],"revokedSessions":[]}',
    ]) {
      const dir = await tempDir();
      await writeFile(join(dir, REGISTRY_FILE), content);
      await expect(FileRegistry.open(dir, new ManualClock())).rejects.toMatchObject({
        code: 'corrupt',
        message: expect.stringContaining(join(dir, REGISTRY_FILE)),
      });
    }
  });

  it('starts empty when the data dir does not exist yet, and creates it', async () => {
    const dir = join(await tempDir(), 'nested', 'data');
    const registry = await FileRegistry.open(dir, new ManualClock());
    expect(await registry.listGateways()).toEqual([]);
    await registry.revokeSession('sid-1', Date.now() + 60_000);
    expect(await readdir(dir)).toEqual([REGISTRY_FILE]);
  });

  it('a failed write leaves the registry unchanged and reports `unavailable`', async () => {
    const dir = await tempDir();
    const registry = await FileRegistry.open(dir, new ManualClock());
    // Replace the data dir by a file: the next temp-file write fails.
    await rm(dir, { recursive: true, force: true });
    await writeFile(dir, 'not a directory');
    await expect(
      registry.createGateway(
        { id: 'gw-1', site: 'site-1', name: 'x', status: 'pending', createdAt: 1 },
        {
          lookup: 'lk-1',
          gateway: 'gw-1',
          site: 'site-1',
          hash: 'h',
          salt: 's',
          expiresAt: 2,
          failures: 0,
          used: false,
        },
      ),
    ).rejects.toMatchObject({ code: 'unavailable', message: expect.stringContaining('SCANRELAY_DATA_DIR') });
    expect(await registry.getGateway('gw-1')).toBeUndefined();
    await rm(dir, { force: true });
  });
});
