/**
 * Issue 11: AE title + source address allowlist. A known calling AE that connects from an address other than
 * its configured peer's is refused with A-ASSOCIATE-RJ "calling AE not recognised", logged and counted; the
 * same AE from its configured address (IP or a host name resolved at start) is accepted. dcmtk's echoscu is
 * the calling unit; it connects from 127.0.0.1, so the "wrong address" peer is configured at 127.0.0.2.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CallerAllowlist, normaliseAddress } from '../../src/dicom/caller-allowlist.js';
import type { DicomLogger } from '../../src/dicom/types.js';
import { runTool } from '../helpers/dicom-peers.js';
import { type Fixture, GATEWAY_AET, startService } from './fixture.js';

const fixtures: Fixture[] = [];
afterEach(async () => {
  for (const fx of fixtures.splice(0)) await fx.cleanup();
});

function recordingLogger(lines: { obj: unknown; msg: string }[]): DicomLogger {
  const rec = (obj: unknown, msg?: string) => {
    lines.push({ obj, msg: msg ?? '' });
  };
  const logger = { debug: rec, info: rec, warn: rec, error: rec, fatal: rec, child: () => logger };
  return logger as unknown as DicomLogger;
}

const echo = (port: number) => runTool('echoscu', ['-aet', 'ECHOSCU', '-aec', GATEWAY_AET, '127.0.0.1', String(port)]);

describe('issue 11: calling AE + source address allowlist', () => {
  it('a known AE from another address is rejected (calling AE not recognised), logged and counted', async () => {
    const lines: { obj: unknown; msg: string }[] = [];
    const fx = await startService({
      modalities: [{ aet: 'ECHOSCU', host: '127.0.0.2', port: 104 }],
      allowedCallingAets: undefined,
      logger: recordingLogger(lines),
    });
    fixtures.push(fx);
    const r = await echo(fx.port);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/Calling AE Title Not Recognized/i);
    expect(fx.svc.counters().associationsRejected).toEqual({
      called_ae: 0,
      unknown_calling_ae: 0,
      wrong_source_address: 1,
    });
    const logged = lines.find((l) => l.msg.includes('is configured at 127.0.0.2 but connected from 127.0.0.1'));
    expect(logged?.msg).toContain('association refused: calling AE "ECHOSCU"');
  });

  it('the same AE from its configured address, by IP or by host name, is accepted', async () => {
    for (const host of ['127.0.0.1', 'localhost']) {
      const fx = await startService({
        modalities: [{ aet: 'ECHOSCU', host, port: 104 }],
        allowedCallingAets: undefined,
      });
      fixtures.push(fx);
      const r = await echo(fx.port);
      expect(r.code, `${host}: ${r.stderr}`).toBe(0);
      expect(fx.svc.counters().associationsRejected.wrong_source_address).toBe(0);
    }
  });

  it('an AE nobody configured is refused and counted as unknown', async () => {
    const fx = await startService({
      modalities: [{ aet: 'HOLOGIC1', host: '127.0.0.1', port: 104 }],
      allowedCallingAets: undefined,
    });
    fixtures.push(fx);
    const r = await echo(fx.port);
    expect(r.stdout + r.stderr).toMatch(/Calling AE Title Not Recognized/i);
    expect(fx.svc.counters().associationsRejected.unknown_calling_ae).toBe(1);
  });

  it('a host name that does not resolve stops start-up naming the peer', async () => {
    await expect(CallerAllowlist.build([{ aet: 'MG1', host: 'no-such-host.invalid', port: 104 }])).rejects.toThrow(
      /peer MG1@no-such-host.invalid:104: host "no-such-host.invalid" does not resolve/,
    );
  });

  it('IPv4 on a dual-stack socket matches its IPv4 peer; AE-only titles pass from anywhere', async () => {
    expect(normaliseAddress('::FFFF:10.0.0.5')).toBe('10.0.0.5');
    const list = await CallerAllowlist.build([{ aet: 'MG1', host: '10.0.0.5', port: 104 }], ['MG1', 'TESTWS']);
    expect(list.check('MG1', '::ffff:10.0.0.5')).toEqual({ ok: true });
    expect(list.check('MG1', '10.0.0.6')).toEqual({
      ok: false,
      reason: 'wrong_source_address',
      expected: ['10.0.0.5'],
    });
    expect(list.check('TESTWS', '192.0.2.1')).toEqual({ ok: true });
    expect(list.check('OTHER', '10.0.0.5')).toEqual({ ok: false, reason: 'unknown_calling_ae' });
  });
});
