/** Identifiers: UUIDv7 for records and batches (time-ordered, so B-tree inserts stay local). */
import { v7 as uuidv7, validate, version } from 'uuid';

export function newId(): string {
  return uuidv7();
}

export function isUuidV7(value: string): boolean {
  return validate(value) && version(value) === 7;
}
