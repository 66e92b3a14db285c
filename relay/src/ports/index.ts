/**
 * The relay's ports. The core depends only on these interfaces; `createPorts(config)` picks the in-memory
 * implementations (embedded default: one node, nothing else installed) or the Redis ones in one place.
 */
export type { Bus, BusHandler, BusPayload } from './bus.js';
export type { ClaimResult, CommandOrigin, CommandQueue, CommandRecord, HoldResult } from './command-queue.js';
export type {
  AppendPublish,
  AppendResult,
  EventLog,
  EventLogLimits,
  NewEvent,
  ReadResult,
  StoredEvent,
} from './event-log.js';
export type { Presence, PresenceRecord } from './presence.js';
export type { ActivateResult, ActivationRecord, GatewayRecord, GatewayStatus, Registry } from './registry.js';

import type { Bus } from './bus.js';
import type { CommandQueue } from './command-queue.js';
import type { EventLog } from './event-log.js';
import type { Presence } from './presence.js';
import type { Registry } from './registry.js';

/** One set of ports, as the core receives them. */
export interface Ports {
  bus: Bus;
  eventLog: EventLog;
  presence: Presence;
  commands: CommandQueue;
  registry: Registry;
  /** Close every port (in reverse order of dependence). */
  close(): Promise<void>;
}

export type { CommandQueueOptions } from './command-queue-memory.js';
export { type CreatePortsOptions, createPorts } from './create.js';
export { PortError, type PortErrorCode } from './errors.js';
export { DEFAULT_EVENT_LOG_LIMITS } from './event-log-shared.js';
export { MemoryHub } from './memory-hub.js';
export type { PresenceOptions } from './presence-memory.js';
