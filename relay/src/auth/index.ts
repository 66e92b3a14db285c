/**
 * The relay's authentication layer: token verification (`createAuthenticator`) and the admin + enrolment HTTP
 * API (`createHttpApi`). The core depends on the contract in `types.ts`; this module provides it.
 *
 * ```ts
 * const auth = await createAuthenticator({ manageJwks, manageIssuer, audience, registry, clock, logger });
 * const api = createHttpApi({ auth, registry, clock, hooks, logger, audience });
 * server.on('request', (req, res) => { if (!api(req, res)) handleOwnRoutes(req, res); });
 * // on shutdown: auth.close();
 * ```
 */
export {
  ACTIVATION_PROOF_TYP,
  Enrolment,
  type EnrolmentOptions,
  generateActivationCode,
  type IssuedCode,
  parseActivationCode,
  type ScryptCost,
  type SecretHasher,
  scryptHasher,
} from './activation.js';
export { ApiError, type ApiErrorCode, type HttpOnlyCode } from './api-error.js';
export { createHttpApi, type HttpApiOptions, MAX_BODY_BYTES } from './http-api.js';
export { AuthConfigError, type ManageKeysOptions } from './jwks.js';
export * from './types.js';
export {
  type AuthenticatorOptions,
  createAuthenticator,
  MAX_ADMIN_LIFETIME_S,
  MAX_SESSION_LIFETIME_S,
  type RelayAuthenticator,
} from './verify.js';
