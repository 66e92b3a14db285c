/**
 * Who may open an association with the gateway's SCPs: calling AE title **and** source address.
 *
 * Each configured peer is `AET@host:port`. A calling AE that belongs to a configured peer is accepted only from
 * that peer's address(es); anyone on the network who knows an AE title cannot use it from another machine.
 * SCANRELAY_GATEWAY_ALLOWED_CALLING_AETS, when set, is the list of AE titles allowed at all (default: every
 * configured peer's); a listed AE title that is no configured peer is accepted from any address — the old
 * AE-only rule, kept for tools such as a site's test workstation.
 *
 * Host names are resolved once at start-up (every A/AAAA address counts), so a DNS change needs a restart;
 * sites normally configure modalities by IP address.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { DicomPeer } from './types.js';

/** Why an association was refused (label of the `associationsRejected` counter). */
export type CallerRejection = 'called_ae' | 'unknown_calling_ae' | 'wrong_source_address';

export type CallerVerdict =
  | { ok: true }
  | { ok: false; reason: 'unknown_calling_ae' }
  | { ok: false; reason: 'wrong_source_address'; expected: string[] };

/** `::ffff:10.0.0.5` (IPv4 on a dual-stack socket) → `10.0.0.5`; lower-case IPv6. */
export function normaliseAddress(address: string): string {
  const a = address.trim().toLowerCase();
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

export class CallerAllowlist {
  private constructor(
    /** AE title → the addresses it may call from. */
    private readonly bound: Map<string, Set<string>>,
    /** AE titles allowed from any address. */
    private readonly anywhere: Set<string>,
  ) {}

  /**
   * Build from the configured peers (address-bound) and the allowed AE titles (default: the peers'). A host
   * name that does not resolve stops start-up: the operator must fix the peer setting, not find out when a
   * unit is refused.
   */
  static async build(peers: DicomPeer[], allowedAets?: string[]): Promise<CallerAllowlist> {
    const allowed = new Set(allowedAets ?? peers.map((p) => p.aet));
    const bound = new Map<string, Set<string>>();
    for (const peer of peers) {
      if (!allowed.has(peer.aet)) continue;
      const set = bound.get(peer.aet) ?? new Set<string>();
      bound.set(peer.aet, set);
      if (isIP(peer.host)) {
        set.add(normaliseAddress(peer.host));
        continue;
      }
      try {
        for (const { address } of await lookup(peer.host, { all: true })) set.add(normaliseAddress(address));
      } catch (err) {
        throw Object.assign(
          new Error(
            `peer ${peer.aet}@${peer.host}:${peer.port}: host "${peer.host}" does not resolve (${(err as NodeJS.ErrnoException).code ?? 'error'}); use its IP address`,
          ),
          { code: 'config_invalid' },
        );
      }
    }
    const anywhere = new Set([...allowed].filter((aet) => !bound.has(aet)));
    return new CallerAllowlist(bound, anywhere);
  }

  check(callingAet: string, remoteAddress: string | undefined): CallerVerdict {
    const addresses = this.bound.get(callingAet);
    if (addresses) {
      if (remoteAddress !== undefined && addresses.has(normaliseAddress(remoteAddress))) return { ok: true };
      return { ok: false, reason: 'wrong_source_address', expected: [...addresses] };
    }
    return this.anywhere.has(callingAet) ? { ok: true } : { ok: false, reason: 'unknown_calling_ae' };
  }
}
