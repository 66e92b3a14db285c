/**
 * Protocol v1 messages, one interface per message type and direction. The same envelopes travel in JSON
 * text frames (`scanrelay.v1.json`) and msgpack binary frames (`scanrelay.v1.msgpack`).
 *
 * ```
 * browser                      relay                         gateway
 *   │── hello{token} ────────────▶│◀──────────── hello{token} ──│   (first message, else closed)
 *   │◀─────────────── welcome ────│──── welcome{acked} ────────▶│
 *   │── subscribe{site,since?} ──▶│                             │
 *   │◀── subscribed / resync ─────│                             │
 *   │── command{ref,token} ──────▶│── command{command,token} ──▶│   verifies the signature itself
 *   │◀── command.status{ref} ─────│◀── command.status ──────────│
 *   │◀── event{site,position} ────│◀── event{seq} ──────────────│
 *   │                             │── event.ack{seq} ──────────▶│   only once stored durably
 *   │── auth{token} ─────────────▶│   (renewal, same sub)       │
 *   │◀── auth.ok / auth.expiring ─│                             │
 * ```
 */
import type { ErrorCode } from './codes.js';

/** A JSON-compatible value, as allowed inside `data`, `detail` and `snapshot` entries. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Command lifecycle states, in the order they normally happen. */
export const COMMAND_STATES = [
  'accepted',
  'queued',
  'delivered',
  'verified',
  'rejected',
  'running',
  'progress',
  'completed',
  'failed',
  'expired',
  'timed_out',
] as const;
export type CommandState = (typeof COMMAND_STATES)[number];

/**
 * States after which nothing more happens to a command; each command ends in exactly one. `timed_out`: no
 * final outcome had reached the relay by the command's deadline (token `exp` plus the relay's documented
 * grace), even after a surviving node asked the gateway again — the gateway may or may not have run it.
 */
export const TERMINAL_STATES: ReadonlySet<CommandState> = new Set([
  'rejected',
  'completed',
  'failed',
  'expired',
  'timed_out',
]);

/** States a gateway may report (the others are the relay's own). */
export const GATEWAY_STATES: ReadonlySet<CommandState> = new Set([
  'verified',
  'rejected',
  'running',
  'progress',
  'completed',
  'failed',
]);

/** Event kinds defined by v1. Gateways may only publish these; `command.status` and `gateway.*` are the relay's. */
export const EVENT_KINDS = [
  'worklist.added',
  'worklist.cancelled',
  'procedure.started',
  'images.received',
  'procedure.completed',
  'procedure.discontinued',
  'storage.committed',
  'modality.status',
  'retrieve.progress',
  'command.status',
  'gateway.online',
  'gateway.offline',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** Kinds only the relay itself may put on a site's channel. */
export const RELAY_EVENT_KINDS: ReadonlySet<string> = new Set(['command.status', 'gateway.online', 'gateway.offline']);

export interface Progress {
  done: number;
  total: number;
}

// ─── client → relay (browser and gateway) ────────────────────────────────────────────────────────────

/** First message on every socket. Carries the session token (browser) or gateway assertion (gateway). */
export interface Hello {
  type: 'hello';
  token: string;
}

export interface Ping {
  type: 'ping';
  ref?: string;
}

// ─── browser → relay ─────────────────────────────────────────────────────────────────────────────────

/** Renew the session in-band with a fresh session token for the same `sub`. */
export interface Auth {
  type: 'auth';
  token: string;
  ref?: string;
}

/** Watch a site. `since` is the last `position` seen, to receive exactly what was missed. */
export interface Subscribe {
  type: 'subscribe';
  site: string;
  since?: string;
  ref?: string;
}

export interface Unsubscribe {
  type: 'unsubscribe';
  site: string;
  ref?: string;
}

/** Send a signed command token (minted by the manage app) towards its gateway. */
export interface CommandRequest {
  type: 'command';
  ref: string;
  token: string;
}

export type BrowserToRelay = Hello | Auth | Subscribe | Unsubscribe | CommandRequest | Ping;

// ─── gateway → relay ─────────────────────────────────────────────────────────────────────────────────

export interface GatewayCommandStatus {
  type: 'command.status';
  /** The command's id: its token's `jti`. */
  command: string;
  state: CommandState;
  detail?: JsonObject;
  progress?: Progress;
}

export interface GatewayEvent {
  type: 'event';
  /** Per gateway, strictly increasing, starting at 1. */
  seq: number;
  kind: string;
  subject?: string;
  /** When it happened, ms since the epoch. */
  at: number;
  data: JsonObject;
}

/**
 * The gateway's own view of its health, sent after `welcome` and then periodically (protocol v1.1: a relay
 * that predates it answers `bad_message`, which a gateway ignores for this type). The relay keeps the latest
 * per gateway for the fleet API (`GET /v1/admin/gateways`); it never goes to browsers.
 */
export interface GatewayReport {
  type: 'gateway.report';
  /** The gateway's clock when it sent this, ms epoch (the relay derives `clockSkewMs` from it). */
  at: number;
  agent: { version: string; transport: string; startedAt: number };
  outbox: { pending: number; oldestAt?: number };
  /** The echo monitor's last view of each configured peer. */
  peers: GatewayPeerStatus[];
}

export interface GatewayPeerStatus {
  aet: string;
  online: boolean;
  /** When the peer was last C-ECHOed, ms epoch; absent before the first check. */
  checkedAt?: number;
}

export type GatewayToRelay = Hello | GatewayCommandStatus | GatewayEvent | GatewayReport | Ping;

// ─── relay → browser ─────────────────────────────────────────────────────────────────────────────────

export interface Limits {
  /** Largest frame the relay accepts, bytes. */
  maxMessageBytes: number;
  /** Most sites one connection may subscribe to. */
  maxSubscriptions: number;
  /** Sustained messages per second one connection may send. */
  messagesPerSecond: number;
  /** How often the client should send `ping` when idle (ms); the relay closes after missing about three. */
  pingIntervalMs: number;
}

export interface BrowserWelcome {
  type: 'welcome';
  session: string;
  node: string;
  /** When the session token expires, ms epoch. */
  expiresAt: number;
  limits: Limits;
}

export interface AuthOk {
  type: 'auth.ok';
  expiresAt: number;
  ref?: string;
}

export interface AuthExpiring {
  type: 'auth.expiring';
  expiresAt: number;
}

/** Latest state of one subject (accession) on a site's board. */
export interface SnapshotEntry {
  subject: string;
  gateway: string;
  seq: number;
  position: string;
  kind: string;
  at: number;
  data: JsonObject;
}

export interface PresenceEntry {
  gateway: string;
  online: boolean;
  /** Since when (ms epoch) it has been in that state. */
  since: number;
}

export interface Subscribed {
  type: 'subscribed';
  site: string;
  /** Position of the newest event included in `snapshot`/sent before going live. */
  position: string;
  snapshot: SnapshotEntry[];
  presence: PresenceEntry[];
  ref?: string;
}

/** `since` was older than the history held: start over from this snapshot. */
export interface Resync {
  type: 'resync';
  site: string;
  position: string;
  snapshot: SnapshotEntry[];
  ref?: string;
}

export interface Unsubscribed {
  type: 'unsubscribed';
  site: string;
  ref?: string;
}

export interface BrowserCommandStatus {
  type: 'command.status';
  ref: string;
  command: string;
  state: CommandState;
  detail?: JsonObject;
  progress?: Progress;
}

export interface SiteEvent {
  type: 'event';
  site: string;
  position: string;
  gateway: string;
  seq: number;
  kind: string;
  subject?: string;
  at: number;
  data: JsonObject;
}

export interface Presence {
  type: 'presence';
  site: string;
  gateway: string;
  online: boolean;
  since: number;
}

export interface Pong {
  type: 'pong';
  ref?: string;
}

export interface ErrorMessage {
  type: 'error';
  code: ErrorCode;
  message: string;
  ref?: string;
}

export type RelayToBrowser =
  | BrowserWelcome
  | AuthOk
  | AuthExpiring
  | Subscribed
  | Resync
  | Unsubscribed
  | BrowserCommandStatus
  | SiteEvent
  | Presence
  | Pong
  | ErrorMessage;

// ─── relay → gateway ─────────────────────────────────────────────────────────────────────────────────

export interface GatewayWelcome {
  type: 'welcome';
  gateway: string;
  site: string;
  node: string;
  /** Highest event `seq` the relay holds durably; the gateway resends everything after it. 0 if none. */
  acked: number;
}

export interface CommandDelivery {
  type: 'command';
  /** The command token's `jti`. */
  command: string;
  token: string;
  from: { sub: string; session: string };
}

export interface EventAck {
  type: 'event.ack';
  seq: number;
}

export type RelayToGateway = GatewayWelcome | CommandDelivery | EventAck | Pong | ErrorMessage;

export type AnyMessage = BrowserToRelay | GatewayToRelay | RelayToBrowser | RelayToGateway;

/** The four directions a message can travel; each has its own schema set. */
export type Direction = 'browser→relay' | 'gateway→relay' | 'relay→browser' | 'relay→gateway';

export interface DirectionMessages {
  'browser→relay': BrowserToRelay;
  'gateway→relay': GatewayToRelay;
  'relay→browser': RelayToBrowser;
  'relay→gateway': RelayToGateway;
}
