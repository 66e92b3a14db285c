/**
 * Errors raised by port implementations. The core branches on `code`, never on the class:
 *
 * | code              | meaning                                                        | core's answer            |
 * |-------------------|----------------------------------------------------------------|--------------------------|
 * | `invalid_id`      | an id that would become a key, channel or path failed its check | refuse the request       |
 * | `unknown_command` | `hold` for a command that was never claimed                     | bug in the caller        |
 * | `conflict`        | `createGateway` for an id or activation lookup that exists       | `409`                    |
 * | `unavailable`     | the backend (Redis, the data dir) cannot be reached or written   | fail closed: `internal`  |
 * | `corrupt`         | stored data could not be read back (bad file, bad Lua reply)     | operator must inspect    |
 */
export type PortErrorCode = 'invalid_id' | 'unknown_command' | 'conflict' | 'unavailable' | 'corrupt';

export class PortError extends Error {
  readonly code: PortErrorCode;
  constructor(code: PortErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PortError';
    this.code = code;
  }
}
