/**
 * @scanrelay/gateway-agent — the ScanRelay site gateway agent as a library.
 *
 * ```ts
 * import { loadConfig, startAgent, activate } from '@scanrelay/gateway-agent';
 * await activate({ relay: 'http://127.0.0.1:8080', code, stateDir: '/var/lib/scanrelay-gateway' });
 * const agent = await startAgent({ config: loadConfig() });
 * const exit = await agent.done;   // exit.fatal when the relay revoked the gateway
 * ```
 */
export {
  type Agent,
  type AgentExit,
  type AgentStatus,
  type LinkTuning,
  type StartAgentOptions,
  startAgent,
} from './agent.js';
export { CommandRejected, type RejectReason, type VerifiedCommand } from './commands/verifier.js';
export {
  DEFAULT_STATE_DIR,
  type GatewayConfig,
  type GatewayTransport,
  gatewayEndpoint,
  loadConfig,
  mergeSettings,
  parsePeer,
  readConfigFile,
  SETTINGS,
  validateConfig,
  webTransportEndpoint,
} from './config.js';
export type { DicomEvent, DicomOptions, DicomPeer, DicomService } from './dicom/types.js';
export { GatewayError, type GatewayErrorCode } from './errors.js';
export { ACTIVATION_PROOF_TYP, type ActivateOptions, type ActivationResult, activate } from './keys/activate.js';
export { type Identity, loadIdentity } from './keys/identity.js';
export type { TransportKind } from './link/socket.js';
export type { LinkState, StopInfo } from './link/types.js';
export { createLogger, type Logger, silentLogger } from './log.js';
export type { OutboxHealth, OutboxStatus } from './outbox/outbox.js';
export {
  type ProcedureResult,
  runSimulator,
  type SimulatorHandle,
  type SimulatorOptions,
} from './simulator/index.js';
