/** DICOM UID helpers. */
import { randomUUID } from 'node:crypto';

/**
 * A UID under the `2.25` root (ISO/IEC 9834-8): the decimal value of a random UUID, as PS3.5 B.2 allows.
 * At most 2 + 1 + 39 = 42 characters, so well within UI's 64.
 */
export function uuidUid(uuid: string = randomUUID()): string {
  return `2.25.${BigInt(`0x${uuid.replace(/-/g, '')}`).toString(10)}`;
}
