/**
 * @scanrelay/protocol — ScanRelay wire protocol v1.
 *
 * Shared by the relay, the gateway agent, the browser client and the benchmarks. Imports nothing from Node.
 *
 * ```ts
 * import { decodeFrame, validateMessage, encodeMessage } from '@scanrelay/protocol';
 * const msg = validateMessage('relay→browser', decodeFrame('json', text, false, 65536));
 * ```
 */

export * from './codec.js';
export * from './codes.js';
export * from './commands.js';
export * from './framing.js';
export * from './keys.js';
export * from './limits.js';
export * from './messages.js';
export * from './payload-crypto.js';
export * from './schema.js';
export * from './tokens.js';
export * from './webtransport-socket.js';

/** Protocol version implemented by this package. */
export const PROTOCOL_VERSION = 1;

/** WebSocket paths of the relay. */
export const PATHS = Object.freeze({ browser: '/v1/browser', gateway: '/v1/gateway' } as const);
