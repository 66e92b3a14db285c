/**
 * SECURITY.md command-token cases 1–13, checked where they are decided: at the gateway. Real keys, real
 * signatures (relay/test/helpers/tokens.ts); the DICOM side is a fake (the other side of the contract).
 */
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandDelivery } from '@scanrelay/protocol';
import { generateKeyPair } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeParts,
  forgeHmac,
  forgeUnsigned,
  generateManageKey,
  type JwksFile,
  mintCommand,
  mintSession,
  oversizedToken,
  publicKeyPem,
  signRaw,
  TEST_ISSUER,
  type TestKey,
  tamperPayload,
  writeJwksFile,
} from '../../../relay/test/helpers/tokens.js';
import { CommandDispatcher, type StatusReport } from '../../src/commands/dispatch.js';
import { PinnedKeys } from '../../src/commands/pinned-keys.js';
import { ReplayGuard } from '../../src/commands/replay-guard.js';
import { CommandRejected, CommandVerifier } from '../../src/commands/verifier.js';
import { silentLogger } from '../../src/log.js';
import { createFakeDicom, WORKLIST_ARGS } from '../helpers/fake-dicom.js';

const log = silentLogger();
let manage: TestKey;
let jwks: JwksFile;
let keys: PinnedKeys;
let verifier: CommandVerifier;

beforeAll(async () => {
  manage = await generateManageKey({ kid: 'manage-1' });
  jwks = await writeJwksFile([manage]);
  keys = await PinnedKeys.open(jwks.path, log);
  verifier = new CommandVerifier({ keys, issuer: TEST_ISSUER, gatewayId: 'gw-1', site: 'site-a' });
});
afterAll(async () => {
  await jwks.cleanup();
});

async function reason(token: string, v: CommandVerifier = verifier): Promise<string> {
  try {
    await v.verify(token);
  } catch (err) {
    expect(err).toBeInstanceOf(CommandRejected);
    return (err as CommandRejected).reason;
  }
  return 'accepted';
}

describe('command verifier', () => {
  it('accepts a valid command and returns its jti, cmd and typed args', async () => {
    const token = await mintCommand(manage, { claims: { cmd: 'worklist.add', args: WORKLIST_ARGS } });
    const v = await verifier.verify(token);
    expect(v.jti).toBe(decodeParts(token).payload.jti);
    expect(v.cmd).toBe('worklist.add');
    expect(v.args).toEqual(WORKLIST_ARGS);
    expect(v.sub).toBe('user-1');
  });

  it('2: alg none with an empty signature is rejected', async () => {
    const { header, payload } = decodeParts(await mintCommand(manage));
    expect(await reason(forgeUnsigned(header, payload))).toBe('bad_algorithm');
  });

  it("3: HS256 keyed with the manage app's public key PEM is rejected", async () => {
    const { header, payload } = decodeParts(await mintCommand(manage));
    expect(await reason(forgeHmac(await publicKeyPem(manage), header, payload))).toBe('bad_algorithm');
  });

  it('4: an algorithm outside the allowlist, validly signed, is rejected', async () => {
    const p384 = await generateKeyPair('ES384');
    const { header, payload } = decodeParts(await mintCommand(manage));
    const token = await signRaw({ alg: 'ES384', privateKey: p384.privateKey, kid: 'manage-1' }, payload, {
      typ: header.typ,
    });
    expect(await reason(token)).toBe('bad_algorithm');
  });

  it('4b: a pinned key used with another allowed algorithm than it is bound to is rejected', async () => {
    const rsa = await generateManageKey({ alg: 'RS256', kid: 'rsa-1' });
    const file = await writeJwksFile([rsa]);
    try {
      const v = new CommandVerifier({
        keys: await PinnedKeys.open(file.path, log),
        issuer: TEST_ISSUER,
        gatewayId: 'gw-1',
        site: 'site-a',
      });
      expect(await reason(await mintCommand(rsa), v)).toBe('accepted');
      const { header, payload } = decodeParts(await mintCommand(rsa));
      const ps = await signRaw({ alg: 'PS256', privateKey: rsa.privateKey, kid: 'rsa-1' }, payload, {
        typ: header.typ,
      }).catch(() => undefined);
      // WebCrypto binds an RSA key to one scheme; if it refuses to sign PS256, the binding is already enforced.
      if (ps) expect(await reason(ps, v)).toBe('bad_signature');
    } finally {
      await file.cleanup();
    }
  });

  it.each(['exp', 'iat', 'jti'])('5: a token without %s is rejected', async (claim) => {
    expect(await reason(await mintCommand(manage, { omit: [claim] }))).toBe('missing_claim');
  });

  it.each(['site', 'cmd', 'args', 'sub', 'iss', 'aud'])('5b: a token without %s is rejected', async (claim) => {
    expect(await reason(await mintCommand(manage, { omit: [claim] }))).not.toBe('accepted');
  });

  it('6: expired beyond the tolerance is rejected; within it, accepted', async () => {
    const now = Date.now();
    expect(await reason(await mintCommand(manage, { now: now - 200_000, ttlSeconds: 120 }))).toBe('expired');
    expect(await reason(await mintCommand(manage, { now: now - 130_000, ttlSeconds: 120 }))).toBe('accepted');
  });

  it('6: nbf or iat two minutes ahead is rejected', async () => {
    const now = Date.now();
    const nbf = Math.floor(now / 1000) + 120;
    expect(await reason(await mintCommand(manage, { claims: { nbf } }))).toBe('not_yet_valid');
    expect(await reason(await mintCommand(manage, { now: now + 120_000 }))).toBe('not_yet_valid');
  });

  it('6b: a lifetime over 300 s is rejected', async () => {
    expect(await reason(await mintCommand(manage, { ttlSeconds: 301 }))).toBe('lifetime_too_long');
  });

  it('7: aud naming another gateway, or an array including this one, is rejected', async () => {
    expect(await reason(await mintCommand(manage, { claims: { aud: 'gw-2' } }))).toBe('wrong_audience');
    expect(await reason(await mintCommand(manage, { claims: { aud: ['gw-1', 'gw-2'] } }))).toBe('wrong_audience');
    expect(await reason(await mintCommand(manage, { claims: { aud: ['gw-1'] } }))).toBe('wrong_audience');
  });

  it('9: a session token signed by the same key is rejected on typ', async () => {
    const session = await mintSession(manage, { claims: { aud: 'gw-1', site: 'site-a', cmd: 'echo', args: {} } });
    expect(await reason(session)).toBe('wrong_type');
  });

  it("10: right aud but another site than the gateway's is rejected", async () => {
    expect(await reason(await mintCommand(manage, { claims: { site: 'site-b' } }))).toBe('wrong_site');
  });

  it('wrong issuer, unknown command and bad args are rejected with their own reasons', async () => {
    expect(await reason(await mintCommand(manage, { claims: { iss: 'https://evil.test' } }))).toBe('wrong_issuer');
    expect(await reason(await mintCommand(manage, { claims: { cmd: 'shell.exec', args: {} } }))).toBe(
      'unknown_command',
    );
    expect(await reason(await mintCommand(manage, { claims: { cmd: 'echo', args: { aet: 'A\\B' } } }))).toBe(
      'bad_args',
    );
    expect(
      await reason(await mintCommand(manage, { claims: { cmd: 'worklist.add', args: { ...WORKLIST_ARGS, x: '1' } } })),
    ).toBe('bad_args');
  });

  it('13: an edited payload is reported as a signature failure', async () => {
    const token = tamperPayload(await mintCommand(manage), { site: 'site-a', args: { aet: 'OTHER' } });
    expect(await reason(token)).toBe('bad_signature');
  });

  it('13: a signature by an unpinned key (same kid, or another kid) is a signature failure', async () => {
    const rogue = await generateManageKey({ kid: 'manage-1' });
    expect(await reason(await mintCommand(rogue))).toBe('bad_signature');
    const other = await generateManageKey({ kid: 'unknown-kid' });
    expect(await reason(await mintCommand(other))).toBe('bad_signature');
  });

  it('12: a 1 MiB token is refused before any parsing or cryptography', async () => {
    const file = await writeJwksFile([manage]);
    const v = new CommandVerifier({
      keys: await PinnedKeys.open(file.path, log),
      issuer: TEST_ISSUER,
      gatewayId: 'gw-1',
      site: 'site-a',
    });
    // With the key file gone, any token that reached key lookup would fail as keys_unavailable.
    await unlink(file.path);
    expect(await reason(await mintCommand(manage), v)).toBe('keys_unavailable');
    expect(await reason(oversizedToken(), v)).toBe('too_large');
    await file.cleanup();
  });
});

describe('11: key rotation through the pinned JWKS file', () => {
  it('accepts both kids during the overlap, then refuses the removed kid at once', async () => {
    const k1 = await generateManageKey({ kid: 'rot-1' });
    const k2 = await generateManageKey({ kid: 'rot-2', alg: 'EdDSA' });
    const file = await writeJwksFile([k1]);
    try {
      const v = new CommandVerifier({
        keys: await PinnedKeys.open(file.path, log),
        issuer: TEST_ISSUER,
        gatewayId: 'gw-1',
        site: 'site-a',
      });
      expect(await reason(await mintCommand(k1), v)).toBe('accepted');
      expect(await reason(await mintCommand(k2), v)).toBe('bad_signature');
      await file.rewrite([k1, k2]);
      expect(await reason(await mintCommand(k1), v)).toBe('accepted');
      expect(await reason(await mintCommand(k2), v)).toBe('accepted');
      await file.rewrite([k2]);
      expect(await reason(await mintCommand(k1), v)).toBe('bad_signature');
      expect(await reason(await mintCommand(k2), v)).toBe('accepted');
      // A broken key file fails closed.
      await file.rewrite({ keys: [] });
      expect(await reason(await mintCommand(k2), v)).toBe('keys_unavailable');
    } finally {
      await file.cleanup();
    }
  });

  it('refuses to start with an empty, private or symmetric key set', async () => {
    const bad = [
      { keys: [] },
      { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'x' }] },
      { keys: [{ ...manage.publicJwk, d: 'AAAA' }] },
      { keys: [{ ...manage.publicJwk, alg: 'HS256' }] },
    ];
    for (const doc of bad) {
      const file = await writeJwksFile(doc);
      await expect(PinnedKeys.open(file.path, log)).rejects.toMatchObject({ code: 'keys_invalid' });
      await file.cleanup();
    }
  });
});

describe('dispatch: verify, claim, run once, report', () => {
  let dir: string;
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function setup(guardDir: string) {
    const guard = await ReplayGuard.open({ dir: guardDir, logger: log });
    const statuses: StatusReport[] = [];
    const dicom = createFakeDicom({ emit: async () => {} });
    const dispatcher = new CommandDispatcher({
      verifier,
      guard,
      dicom,
      refuseNewWork: () => false,
      report: (s) => statuses.push(s),
      logger: log,
    });
    return { guard, statuses, dicom, dispatcher };
  }

  const deliver = (token: string): CommandDelivery => ({
    type: 'command',
    command: decodeParts(token).payload.jti as string,
    token,
    from: { sub: 'user-1', session: 's1' },
  });

  it('1 + 8: a valid command runs once, correlated by jti; the same token again — even after a restart — is replayed', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-dispatch-'));
    const token = await mintCommand(manage, { claims: { cmd: 'worklist.add', args: WORKLIST_ARGS } });
    const jti = decodeParts(token).payload.jti as string;
    const a = await setup(dir);
    await a.dispatcher.handle(deliver(token));
    expect(a.statuses.map((s) => [s.command, s.state])).toEqual([
      [jti, 'verified'],
      [jti, 'completed'],
    ]);
    expect(a.statuses[1]!.detail).toEqual({ result: { existing: false } });
    await a.dispatcher.handle(deliver(token));
    expect(a.statuses[2]).toMatchObject({ command: jti, state: 'rejected', detail: { reason: 'replayed' } });
    expect(a.dicom.calls).toHaveLength(1);
    await a.guard.close();

    const b = await setup(dir);
    await b.dispatcher.handle(deliver(token));
    expect(b.statuses).toEqual([
      {
        command: jti,
        state: 'rejected',
        // What the first run came to, kept across the restart (the relay may have lost its report).
        detail: {
          reason: 'replayed',
          message: expect.any(String),
          previous: { state: 'completed', detail: { result: { existing: false } } },
        },
      },
    ]);
    expect(b.dicom.calls).toHaveLength(0);
    await b.guard.close();
  });

  it('the same token delivered twice at once runs once', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-dispatch-'));
    const token = await mintCommand(manage);
    const a = await setup(dir);
    await Promise.all([a.dispatcher.handle(deliver(token)), a.dispatcher.handle(deliver(token))]);
    expect(a.dicom.calls).toHaveLength(1);
    expect(a.statuses.filter((s) => s.state === 'rejected')).toHaveLength(1);
    await a.guard.close();
  });

  it('worklist.add with the same details completes existing; with different ones is rejected as a conflict', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-dispatch-'));
    const a = await setup(dir);
    await a.dispatcher.handle(
      deliver(await mintCommand(manage, { claims: { cmd: 'worklist.add', args: WORKLIST_ARGS } })),
    );
    await a.dispatcher.handle(
      deliver(await mintCommand(manage, { claims: { cmd: 'worklist.add', args: WORKLIST_ARGS } })),
    );
    const changed = { ...WORKLIST_ARGS, patientId: '1111111111' };
    await a.dispatcher.handle(deliver(await mintCommand(manage, { claims: { cmd: 'worklist.add', args: changed } })));
    const terminal = a.statuses.filter((s) => s.state !== 'verified');
    expect(terminal.map((s) => s.detail)).toEqual([
      { result: { existing: false } },
      { result: { existing: true } },
      { reason: 'conflict', message: expect.any(String) },
    ]);
    expect(a.dicom.worklist.size).toBe(1);
    await a.guard.close();
  });

  it('a delivery whose command id differs from the jti is rejected; a full outbox refuses new work', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-dispatch-'));
    const a = await setup(dir);
    const token = await mintCommand(manage);
    await a.dispatcher.handle({ ...deliver(token), command: 'not-the-jti' });
    expect(a.statuses[0]).toMatchObject({ state: 'rejected', detail: { reason: 'mismatched_id' } });
    const full = new CommandDispatcher({
      verifier,
      guard: a.guard,
      dicom: a.dicom,
      refuseNewWork: () => true,
      report: (s) => a.statuses.push(s),
      logger: log,
    });
    await full.handle(deliver(token));
    expect(a.statuses[1]).toMatchObject({ state: 'rejected', detail: { reason: 'outbox_full' } });
    expect(a.dicom.calls).toHaveLength(0);
    // Refused for a full outbox, the jti was not consumed: the same token can run once there is room.
    await a.dispatcher.handle(deliver(token));
    expect(a.statuses.at(-1)).toMatchObject({ state: 'completed' });
    await a.guard.close();
  });

  it('pacs.retrieve reports running, progress and completed', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gw-dispatch-'));
    const a = await setup(dir);
    const token = await mintCommand(manage, {
      claims: { cmd: 'pacs.retrieve', args: { studyInstanceUid: '1.2.3', destinationAet: 'MG1' } },
    });
    await a.dispatcher.handle(deliver(token));
    const states = a.statuses.map((s) => s.state);
    expect(states[0]).toBe('verified');
    expect(states[1]).toBe('running');
    expect(states.at(-1)).toBe('completed');
    expect(a.statuses.filter((s) => s.state === 'progress').at(-1)?.progress).toEqual({ done: 3, total: 3 });
    await a.guard.close();
  });
});
