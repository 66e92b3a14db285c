/**
 * What relay nodes say to each other over the Bus. Every cross-socket delivery goes through one of these,
 * even on a single node with the memory Bus, so one node and many behave the same.
 *
 * | channel        | kind               | sent when                                         | handled by        |
 * |----------------|--------------------|---------------------------------------------------|-------------------|
 * | `site:<site>`  | `event`            | an event was appended to the site's history       | router (fan-out)  |
 * | `site:<site>`  | `presence`         | a gateway of the site went online/offline         | router (fan-out)  |
 * | `node:<node>`  | `wake`             | a command was held for a gateway this node serves | commands          |
 * | `node:<node>`  | `status`           | a command state for a browser on this node        | commands          |
 * | `control`      | `replaced`         | a gateway connected again (anywhere)               | node              |
 * | `control`      | `gateway.revoked`  | the admin API revoked a gateway                   | node              |
 * | `control`      | `session.revoked`  | a session was revoked (logout)                    | node              |
 *
 * Payloads are plain JSON (the Redis Bus serialises them). Handlers must not mutate a payload: the memory
 * Bus hands the same object to every node in the process.
 */
import type { CommandState, JsonObject, Progress } from '@scanrelay/protocol';
import type { BusPayload } from '../ports/bus.js';
import type { StoredEvent } from '../ports/event-log.js';

export interface SiteEventPayload {
  kind: 'event';
  event: StoredEvent;
  /** When the relay received (or made) the event, ms epoch: fan-out lag is measured from here. */
  receivedAt: number;
}

export interface SitePresencePayload {
  kind: 'presence';
  site: string;
  gateway: string;
  online: boolean;
  since: number;
}

export interface WakePayload {
  kind: 'wake';
  gateway: string;
}

export interface StatusPayload {
  kind: 'status';
  /** The browser connection id on the receiving node. */
  connection: string;
  ref: string;
  command: string;
  state: CommandState;
  detail?: JsonObject;
  progress?: Progress;
}

export interface ReplacedPayload {
  kind: 'replaced';
  gateway: string;
  /** The superseded connection (the one to close). */
  connection: string;
}

export interface GatewayRevokedPayload {
  kind: 'gateway.revoked';
  gateway: string;
}

export interface SessionRevokedPayload {
  kind: 'session.revoked';
  sid: string;
}

export type SitePayload = SiteEventPayload | SitePresencePayload;
export type NodePayload = WakePayload | StatusPayload;
export type ControlPayload = ReplacedPayload | GatewayRevokedPayload | SessionRevokedPayload;

export const CONTROL_CHANNEL = 'control';
export const siteChannel = (site: string): string => `site:${site}`;
export const nodeChannel = (node: string): string => `node:${node}`;

/** Narrow a Bus payload to what we publish (cheap shape check; nodes trust each other, not the wire). */
export function asPayload<T extends BusPayload>(payload: BusPayload): T {
  return payload as unknown as T;
}

export function toBus(payload: SitePayload | NodePayload | ControlPayload): BusPayload {
  return payload as unknown as BusPayload;
}
