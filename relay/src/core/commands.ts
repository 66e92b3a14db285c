/**
 * The command lifecycle on the relay side.
 *
 * ```
 * browser command{ref,token}
 *   │ verifyCommand (signature, issuer, aud = an active gateway of the token's site)      → error{ref}
 *   │ session lists the site; token sub = session sub; session not revoked                → error{ref} forbidden
 *   │ CommandQueue.claim(jti) + hold(gateway, cap), one atomic step (once, cluster-wide)   → error{ref} bad_message
 *   │                                                                                         | gateway_offline (full)
 *   ▼ accepted
 *   ├─ gateway online (Presence) → Bus node:<its node> {wake}  → that node takes the held commands → delivered
 *   └─ offline → queued … gateway connects (any node) → take → delivered   |   token exp → expired (reaper)
 * gateway command.status → verified | rejected | running | progress | completed | failed
 *   rejected {reason: replayed, previous} of a REdelivery (the gateway ran the first one, its terminal status
 *   was lost with the link) → `previous` (how that run went) is adopted as the command's state
 * ```
 *
 * Every command passes through the held queue, even when its gateway is online: the queue is durable and
 * take-once, so a lost Bus `wake` only delays a command (the owning node re-takes every few seconds), never
 * loses it, and two nodes never deliver it twice. Every state goes to the sender (Bus `node:<origin node>`,
 * with its `ref`) and to the site's channel as a `command.status` event. One audit line per command at its
 * final state.
 */
import {
  COMMAND_ID_PATTERN,
  type CommandRequest,
  type CommandState,
  GATEWAY_STATES,
  type GatewayCommandStatus,
  isCommandId,
  isJsonObject,
  type JsonObject,
  type Progress,
  TERMINAL_STATES,
} from '@scanrelay/protocol';
import type { Logger } from 'pino';
import { AuthError, type Authenticator, type VerifiedCommand } from '../auth/types.js';
import type { Clock } from '../clock.js';
import type { RelayMetrics } from '../observability/metrics.js';
import type { Bus } from '../ports/bus.js';
import type { CommandQueue, CommandRecord } from '../ports/command-queue.js';
import type { Presence } from '../ports/presence.js';
import { nodeChannel, type StatusPayload, toBus, type WakePayload } from './bus-messages.js';
import type { BrowserConn, GatewayConn } from './connection.js';
import type { Events } from './events.js';
import type { CoreLimits } from './settings.js';

/** Command ids as the protocol carries them (`command` fields). */
/** A command acknowledged but unfinished is held again only with this much of its token left (see linkClosed). */
const REASK_MARGIN_MS = 30_000;
/** Re-holding a command whose delivery failed must not be refused by the cap it already passed. */
const REHOLD_DEPTH = Number.MAX_SAFE_INTEGER;

/** How the command service finds sockets on this node. */
export interface LocalSockets {
  browser(connectionId: string): BrowserConn | undefined;
  gateway(gatewayId: string): GatewayConn | undefined;
}

export interface CommandsDeps {
  nodeId: string;
  queue: CommandQueue;
  presence: Presence;
  bus: Bus;
  auth: Authenticator;
  events: Events;
  local: LocalSockets;
  clock: Clock;
  limits: CoreLimits;
  /** See RelayTimings.commandAckTimeoutMs. */
  ackTimeoutMs: number;
  /** See CoreTimings.commandOutcomeGraceMs. */
  outcomeGraceMs: number;
  metrics: RelayMetrics;
  logger: Logger;
}

/** A replayed refusal's `detail.previous`: how the first run of the command went (see fromGateway). */
interface Previous {
  state: 'running' | 'completed' | 'failed' | 'rejected';
  detail?: JsonObject;
}

const PREVIOUS_STATES: ReadonlySet<string> = new Set(['running', 'completed', 'failed', 'rejected']);

/** `detail.previous` if it is well formed; anything else is treated as absent (an older gateway's refusal). */
function previousOutcome(value: unknown): Previous | undefined {
  if (!isJsonObject(value) || typeof value.state !== 'string' || !PREVIOUS_STATES.has(value.state)) return undefined;
  const state = value.state as Previous['state'];
  if (value.detail === undefined) return { state };
  return isJsonObject(value.detail) ? { state, detail: value.detail } : undefined;
}

/** States reached only after the gateway received the command (its own reports). */
const GATEWAY_HAS_IT: ReadonlySet<CommandState> = new Set(['verified', 'running', 'progress']);

/** Commands written to one gateway link on this node. */
interface LinkCommands {
  /**
   * Written, with no status at all back yet (jti → record, when written). A write is not a delivery: if the
   * link dies before the gateway answers, these are held again (back to `queued`).
   */
  unacked: Map<string, { record: CommandRecord; deliveredAt: number }>;
  /**
   * Written, terminal status not back yet (jti; a superset of `unacked`). If the link dies, a terminal status
   * may have died with it: they are delivered again, and the gateway answers with how they went.
   */
  unfinished: Set<string>;
}

export class Commands {
  /**
   * Commands written again to a gateway link on this node after an earlier delivery (jti). A gateway's
   * `replayed` refusal is only its answer to our own second delivery for these; for any other command it is
   * a replay of the token and stays a refusal (SECURITY case 8). Entries leave on that refusal, on a terminal
   * state, or when the link closes, so this is bounded by the commands in flight.
   */
  readonly #redelivered = new Set<string>();
  /**
   * The one owner of per-link command state: for each gateway link on this node, what was written to it and
   * is not finished (see {@link LinkCommands}). Gone with the link (linkClosed).
   */
  readonly #links = new WeakMap<GatewayConn, LinkCommands>();

  constructor(private readonly d: CommandsDeps) {}

  /** A browser's `command`. */
  async submit(conn: BrowserConn, msg: CommandRequest): Promise<void> {
    const { ref } = msg;
    const { auth, queue, clock, limits, metrics } = this.d;
    let verified: VerifiedCommand;
    try {
      verified = await auth.verifyCommand(msg.token);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      metrics.authRejections.inc({ role: 'command', reason: err.reason });
      conn.error(err.code, err.message, ref);
      return;
    }
    const c = verified.claims;
    if (!conn.sites.has(c.site)) {
      metrics.authRejections.inc({ role: 'command', reason: 'site_not_in_session' });
      conn.error('forbidden', `site "${c.site}" is not in this session's sites; the command was not forwarded`, ref);
      return;
    }
    if (c.sub !== conn.sub) {
      metrics.authRejections.inc({ role: 'command', reason: 'sub_mismatch' });
      conn.error('forbidden', "the command token's sub is not this session's user; not forwarded", ref);
      return;
    }
    if (!isCommandId(c.jti)) {
      conn.error('bad_message', `the command token jti must match ${COMMAND_ID_PATTERN.source}`, ref);
      return;
    }
    if (!(await auth.isSessionActive(conn.sid))) {
      conn.fail('revoked', 'this session was revoked');
      return;
    }
    const now = clock.now();
    const record: CommandRecord = {
      command: c.jti,
      gateway: verified.gateway.id,
      site: c.site,
      cmd: c.cmd,
      token: msg.token,
      origin: { node: this.d.nodeId, connection: conn.id, ref, sub: conn.sub, session: conn.sid },
      expiresAt: verified.expiresAt,
      acceptedAt: now,
      state: 'accepted',
    };
    // Claim and hold in one atomic step: a backend failure between the two would leave the jti claimed but
    // not queued, and the browser's retry with the same token refused as a replay — the command lost.
    const claim = await queue.claim(record, { maxDepth: limits.maxHeldCommandsPerGateway });
    if (!claim.ok && claim.reason === 'full') {
      metrics.commands.inc({ state: 'refused' });
      this.#audit(record, 'refused_queue_full');
      conn.error(
        'gateway_offline',
        `gateway "${record.gateway}" already has ${claim.depth} commands waiting; nothing was held, retry later`,
        ref,
      );
      return;
    }
    if (!claim.ok) {
      metrics.authRejections.inc({ role: 'command', reason: 'jti_replay' });
      conn.error('bad_message', 'this command token was already used (its jti was seen before)', ref);
      return;
    }
    await this.#report(record, 'accepted');
    const live = await this.d.presence.get(record.gateway);
    if (live) {
      const wake: WakePayload = { kind: 'wake', gateway: record.gateway };
      await this.d.bus.publish(nodeChannel(live.node), toBus(wake));
    } else {
      if (await queue.setState(record.command, 'queued')) await this.#report(record, 'queued');
    }
  }

  /** A gateway's `command.status` for a command delivered to it. */
  async fromGateway(conn: GatewayConn, msg: GatewayCommandStatus): Promise<void> {
    if (!GATEWAY_STATES.has(msg.state)) {
      conn.badMessage(`state "${msg.state}" is set by the relay, not by a gateway`);
      return;
    }
    const record = await this.d.queue.get(msg.command);
    if (!record || record.gateway !== conn.gateway) {
      // Not ours to report on (or forgotten after retention): refuse without routing anything anywhere.
      conn.error('forbidden', `command "${msg.command}" is not a command of this gateway`);
      return;
    }
    this.#links.get(conn)?.unacked.delete(record.command);
    if (TERMINAL_STATES.has(record.state)) {
      this.#finished(conn, record.command);
      return; // already final: a resend after reconnect
    }
    if (msg.state === 'rejected' && msg.detail?.reason === 'replayed') {
      // Only the refusal answers our redelivery: other statuses meanwhile (the gateway flushing what it queued
      // for the first delivery) leave the mark in place.
      const redelivered = this.#redelivered.delete(record.command);
      const previous = previousOutcome(msg.detail.previous);
      if (previous && redelivered) {
        await this.#adoptPrevious(conn, record, previous);
        return;
      }
      if (previous) {
        // Delivered once by us, yet the gateway had run it: the token itself was replayed (e.g. through a
        // relay that had forgotten its jti). A refusal, as SECURITY case 8 requires; not the first run's result.
        const { previous: _, ...refusal } = msg.detail;
        this.#finished(conn, record.command);
        if (!(await this.d.queue.setState(record.command, 'rejected'))) return;
        record.state = 'rejected';
        await this.#report(record, 'rejected', refusal);
        return;
      }
      if (GATEWAY_HAS_IT.has(record.state)) {
        // A redelivery (after the link died unconfirmed) reached a gateway that had the command all along: its
        // own reports of the first delivery carry on; this refusal of the duplicate is not the outcome.
        this.d.logger.info({ jti: record.command, gateway: record.gateway }, 'redelivered command already running');
        return;
      }
    }
    if (TERMINAL_STATES.has(msg.state)) this.#finished(conn, record.command);
    // False: another node recorded a terminal state meanwhile (e.g. timed_out): exactly one is reported.
    if (!(await this.d.queue.setState(record.command, msg.state))) return;
    record.state = msg.state;
    await this.#report(record, msg.state, msg.detail, msg.progress);
  }

  /**
   * The gateway refused a redelivery because it had already run the command, and said how that first run
   * went (`previous`): its terminal status was lost (e.g. with a relay node that died before recording it).
   * That outcome is the command's real state — reported as if the gateway had just sent it. `running`: the
   * gateway still has it, and its own terminal status follows.
   */
  async #adoptPrevious(conn: GatewayConn, record: CommandRecord, previous: Previous): Promise<void> {
    if (previous.state !== 'running') this.#finished(conn, record.command);
    this.d.logger.info(
      { jti: record.command, gateway: record.gateway, state: previous.state },
      'redelivered command had already run on the gateway: taking the outcome it reported',
    );
    if (previous.state === 'running' && GATEWAY_HAS_IT.has(record.state)) return; // already known to be running
    if (!(await this.d.queue.setState(record.command, previous.state))) return;
    record.state = previous.state;
    await this.#report(record, previous.state, previous.detail);
  }

  /** A command's terminal state is recorded: nothing more to ask its gateway about it. */
  #finished(conn: GatewayConn, jti: string): void {
    this.#links.get(conn)?.unfinished.delete(jti);
    this.#redelivered.delete(jti);
  }

  /**
   * Deliver everything held for `gateway` if its live socket is on this node. Called on gateway hello, on a
   * Bus `wake`, and periodically (a lost wake only delays a command).
   */
  async deliverHeld(gateway: string): Promise<void> {
    const conn = this.d.local.gateway(gateway);
    if (!conn?.isOpen) return;
    const { queue, clock } = this.d;
    const records = await queue.take(gateway, clock.now());
    for (const record of records) {
      if (TERMINAL_STATES.has(record.state)) continue;
      // The gateway has reported it (verified, running…): held again to learn an outcome that may have died
      // with a link (linkClosed). Delivered again without going back to `delivered`.
      const hadIt = GATEWAY_HAS_IT.has(record.state);
      // `delivered` while held: it was written to a gateway link before (that link or its node died unconfirmed).
      const redelivery = hadIt || record.state === 'delivered';
      // Recorded before the write, so that a node dying right after writing leaves a record that says so.
      // False: it ended meanwhile (timed_out by the overdue reaper): never delivered after its deadline.
      if (!hadIt && !(await queue.setState(record.command, 'delivered'))) continue;
      const sent =
        conn.isOpen &&
        conn.send({
          type: 'command',
          command: record.command,
          token: record.token,
          from: { sub: record.origin.sub, session: record.origin.session },
        });
      if (!sent) {
        // The socket went away mid-batch: keep the command for the next connection of this gateway.
        await queue.hold(record.command, gateway, record.expiresAt, REHOLD_DEPTH);
        continue;
      }
      const link = this.#link(conn);
      link.unacked.set(record.command, { record, deliveredAt: clock.now() });
      link.unfinished.add(record.command);
      if (redelivery) this.#redelivered.add(record.command);
      if (hadIt) continue;
      record.state = 'delivered';
      await this.#report(record, 'delivered');
    }
  }

  /**
   * A gateway link that has commands written to it but not acknowledged (no status at all) for longer than
   * `ackTimeoutMs` is not processing them: presume it dead and cut it, so they are held again (linkClosed).
   */
  checkAcks(conns: readonly GatewayConn[]): void {
    const deadline = this.d.clock.now() - this.d.ackTimeoutMs;
    for (const conn of conns) {
      if (conn.isGone) continue;
      for (const { deliveredAt, record } of this.#links.get(conn)?.unacked.values() ?? []) {
        if (deliveredAt > deadline) continue;
        this.d.logger.warn(
          { gateway: conn.gateway, jti: record.command, conn: conn.id },
          'gateway did not acknowledge a delivered command in time: link presumed dead, terminated',
        );
        conn.closedBy = 'internal';
        conn.state = 'closing';
        conn.transport.terminate();
        break;
      }
    }
  }

  /**
   * The gateway's socket is gone. Commands written to it that it never acknowledged may never have arrived:
   * hold them again (back to `queued`) for its next connection. The gateway's replay guard makes a second
   * arrival harmless; fromGateway ignores its refusal of the duplicate, or takes the outcome it carries.
   * Commands it acknowledged but whose terminal status never came are held again too (their state unchanged):
   * that status may have been written into this dying link, and the gateway's refusal of the copy says how
   * they went.
   */
  async linkClosed(conn: GatewayConn): Promise<void> {
    const link = this.#links.get(conn);
    this.#links.delete(conn);
    if (!link) return;
    const { unfinished } = link;
    for (const jti of unfinished) this.#redelivered.delete(jti);
    if (link.unacked.size === 0 && unfinished.size === 0) return;
    const { queue, clock } = this.d;
    const unacked = [...link.unacked.values()].map((f) => f.record);
    for (const record of unacked) {
      this.#redelivered.delete(record.command);
      unfinished.delete(record.command);
    }
    let held = false;
    for (const jti of unfinished) {
      const current = await queue.get(jti);
      // Too close to its token's expiry, the copy would be refused as expired, not answered: left as it is.
      if (!current || !GATEWAY_HAS_IT.has(current.state) || current.expiresAt <= clock.now() + REASK_MARGIN_MS)
        continue;
      await queue.hold(jti, current.gateway, current.expiresAt, REHOLD_DEPTH);
      held = true;
    }
    for (const record of unacked) {
      const current = await queue.get(record.command);
      if (current?.state !== 'delivered' || current.expiresAt <= clock.now()) continue;
      await queue.hold(record.command, record.gateway, record.expiresAt, REHOLD_DEPTH);
      // The stored state stays `delivered` (the sender is told `queued`): it marks the next delivery as a
      // redelivery (see deliverHeld).
      held = true;
      await this.#report(current, 'queued', {
        reason: 'redelivery',
        message: 'the gateway link dropped before the gateway confirmed the command; it will be delivered again',
      });
    }
    if (!held) return;
    // It may already be back (on any node): wake whoever holds it now.
    const live = await this.d.presence.get(conn.gateway);
    if (live) await this.d.bus.publish(nodeChannel(live.node), toBus({ kind: 'wake', gateway: conn.gateway }));
  }

  /** Held commands whose tokens ran out: `expired` to their senders. */
  async reapExpired(): Promise<void> {
    const expired = await this.d.queue.reapExpired(this.d.clock.now());
    for (const record of expired) {
      if (GATEWAY_HAS_IT.has(record.state)) {
        // Held again only to learn its outcome (linkClosed), and its token ran out first: it did not expire,
        // the gateway ran it. Its state stays; its terminal status comes if the gateway still sends it within
        // the grace, else reapOverdue ends it `timed_out`.
        this.d.logger.warn(
          { jti: record.command, gateway: record.gateway, state: record.state },
          'could not ask the gateway again for the outcome of a command before its token expired',
        );
        continue;
      }
      if (await this.d.queue.setState(record.command, 'expired')) await this.#report(record, 'expired');
    }
  }

  /**
   * Commands with no final outcome by their token's `exp` + `outcomeGraceMs` (whatever node they were on, and
   * whether or not that node is alive): `timed_out` to their senders and the site — the one terminal state
   * for "the relay never learned how it went". A later status from the gateway is dropped (setState refuses
   * to overwrite a terminal state).
   */
  async reapOverdue(): Promise<void> {
    const overdue = await this.d.queue.reapOverdue(this.d.clock.now() - this.d.outcomeGraceMs);
    for (const record of overdue) {
      const conn = this.d.local.gateway(record.gateway);
      if (conn) {
        this.#links.get(conn)?.unacked.delete(record.command);
        this.#finished(conn, record.command);
      }
      this.d.logger.warn(
        { jti: record.command, gateway: record.gateway },
        'no final outcome by the command deadline: timed_out',
      );
      await this.#report(record, 'timed_out', {
        reason: 'no_outcome',
        message: 'no final outcome reached the relay by the token expiry plus the grace; the gateway may have run it',
      });
    }
  }

  /** A gateway was revoked: its held commands end `rejected` (reason `gateway_revoked`). */
  async dropGateway(gateway: string): Promise<void> {
    const dropped = await this.d.queue.dropGateway(gateway);
    for (const record of dropped) {
      if (!(await this.d.queue.setState(record.command, 'rejected'))) continue;
      await this.#report(record, 'rejected', {
        reason: 'gateway_revoked',
        message: 'the gateway was revoked before the command could be delivered',
      });
    }
  }

  #link(conn: GatewayConn): LinkCommands {
    let link = this.#links.get(conn);
    if (!link) {
      link = { unacked: new Map(), unfinished: new Set() };
      this.#links.set(conn, link);
    }
    return link;
  }

  /** A Bus `status` for a browser on this node. */
  deliverStatus(p: StatusPayload): void {
    const conn = this.d.local.browser(p.connection);
    if (!conn?.isOpen) return;
    const msg: Record<string, unknown> = { type: 'command.status', ref: p.ref, command: p.command, state: p.state };
    if (p.detail !== undefined) msg.detail = p.detail;
    if (p.progress !== undefined) msg.progress = p.progress;
    conn.send(msg as never);
  }

  async #report(record: CommandRecord, state: CommandState, detail?: JsonObject, progress?: Progress): Promise<void> {
    this.d.metrics.commands.inc({ state });
    const status: StatusPayload = {
      kind: 'status',
      connection: record.origin.connection,
      ref: record.origin.ref,
      command: record.command,
      state,
      ...(detail !== undefined ? { detail } : {}),
      ...(progress !== undefined ? { progress } : {}),
    };
    // Through the Bus even when the sender is on this node: one path for one node and many.
    await this.d.bus.publish(nodeChannel(record.origin.node), toBus(status));
    const data: JsonObject = { command: record.command, state };
    if (progress !== undefined) data.progress = { done: progress.done, total: progress.total };
    if (detail !== undefined) {
      // One level deeper inside `data`: keep it only if it still fits the protocol's nesting limit.
      const withDetail = { ...data, detail };
      if (isJsonObject(withDetail)) data.detail = detail;
    }
    await this.d.events.relayEvent(record.site, record.gateway, 'command.status', data);
    if (TERMINAL_STATES.has(state)) this.#audit(record, state);
  }

  /** The audit line: ids and the outcome only — never the token, the args or any detail. */
  #audit(record: CommandRecord, state: string): void {
    this.d.logger.info(
      {
        audit: 'command',
        jti: record.command,
        user: record.origin.sub,
        site: record.site,
        gateway: record.gateway,
        cmd: record.cmd,
        state,
      },
      'command finished',
    );
  }
}
