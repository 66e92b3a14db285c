/** createPorts: the one switch between memory and Redis; memory nodes sharing a MemoryHub act as one. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createPorts, MemoryHub, type Ports } from '../../src/ports/index.js';
import { Inbox } from './bus.contract.js';
import { ManualClock } from './manual-clock.js';

const logger = pino({ level: 'silent' });
const eventLog = { maxEvents: 100, maxAgeMs: 60_000, maxSubjects: 10 };

describe('createPorts (memory)', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });
  async function dataDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'scanrelay-ports-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }
  async function ports(opts: { dataDir: string; nodeId: string; hub?: MemoryHub }): Promise<Ports> {
    const p = await createPorts({
      dataDir: opts.dataDir,
      nodeId: opts.nodeId,
      clock: new ManualClock(),
      logger,
      eventLog,
      ...(opts.hub ? { memoryHub: opts.hub } : {}),
    });
    cleanup.push(() => p.close());
    return p;
  }

  it('builds working memory ports with a file registry in the data dir', async () => {
    const dir = await dataDir();
    const p = await ports({ dataDir: dir, nodeId: 'node-a' });
    expect(p.bus.healthy()).toBe(true);
    const r = await p.eventLog.append({ site: 's1', gateway: 'g1', seq: 1, kind: 'images.received', at: 1, data: {} });
    expect(r.duplicate).toBe(false);
    await p.registry.revokeSession('sid-1', Date.now() + 60_000);
    await p.close();
    const again = await ports({ dataDir: dir, nodeId: 'node-a' });
    expect(await again.registry.isSessionRevoked('sid-1', Date.now())).toBe(true);
  });

  it('nodes sharing a MemoryHub share the bus and every store; one node closing leaves the others working', async () => {
    const hub = new MemoryHub();
    cleanup.push(() => hub.close());
    const dir = await dataDir();
    const a = await ports({ dataDir: dir, nodeId: 'node-a', hub });
    const b = await ports({ dataDir: dir, nodeId: 'node-b', hub });
    expect(b.eventLog).toBe(a.eventLog);
    expect(b.registry).toBe(a.registry);
    const inbox = new Inbox();
    await b.bus.subscribe('node:node-b', inbox.handler);
    await a.bus.publish('node:node-b', { kind: 'deliver' });
    await inbox.waitFor(1);
    await a.close();
    expect(await b.commands.depth('gw-1')).toBe(0);
    await b.bus.publish('node:node-b', { kind: 'again' });
    await inbox.waitFor(2);
  });

  it('refuses a bad node id and bad history limits with messages naming the setting', async () => {
    const dir = await dataDir();
    await expect(
      createPorts({ dataDir: dir, nodeId: 'bad node!', clock: new ManualClock(), logger, eventLog }),
    ).rejects.toThrow(/SCANRELAY_NODE_ID/);
    await expect(
      createPorts({
        dataDir: dir,
        nodeId: 'n1',
        clock: new ManualClock(),
        logger,
        eventLog: { ...eventLog, maxEvents: 0 },
      }),
    ).rejects.toThrow(/eventLog.maxEvents/);
  });
});
