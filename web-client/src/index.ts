/**
 * @scanrelay/web-client — the ScanRelay browser client (also runs in Node with an injected WebSocket).
 *
 * ```ts
 * import { ScanRelayClient } from '@scanrelay/web-client';
 * const client = new ScanRelayClient({ url: 'wss://relay.example.org', getToken });
 * client.connect();
 * const board = client.subscribe('site-a');
 * const handle = client.send(commandToken);
 * const { state } = await handle.done;
 * ```
 */
export type { Codec, CommandState, PresenceEntry, SiteEvent, SnapshotEntry } from '@scanrelay/protocol';
export { type BackoffOptions, DEFAULT_BACKOFF, fullJitterDelay } from './backoff.js';
export { ScanRelayClient } from './client.js';
export { CommandHandle, readJti } from './command.js';
export { type ClientErrorCode, type LocalErrorCode, ScanRelayError } from './errors.js';
export { Subscription } from './subscription.js';
export {
  browserEndpoint,
  type CertificateHash,
  type StorageLike,
  type TransportKind,
  type WebTransportClientOptions,
  webTransportEndpoint,
} from './transport.js';
export type {
  ClientEvents,
  ClientOptions,
  ClientState,
  CommandResult,
  CommandStatus,
  SessionInfo,
  SubscriptionEvents,
  SubscriptionState,
  Timers,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
