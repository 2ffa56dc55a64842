/**
 * The fields of a record body as records.csv names them: RFC 6901 JSON Pointers into the record
 * (`/body/cert/no`), each key escaped (`~` as `~0`, then `/` as `~1`). A pointer names exactly
 * one field, so `{"a":{"b":1},"a.b":2}` has two columns, `/body/a/b` and `/body/a.b`, where a
 * dotted path would have made them one.
 *
 * A leaf is what a cell holds: a scalar, an array or an empty object (objects with members are
 * descended). Leaves whose pointer would be longer than MAX_COLUMN_POINTER_CHARS are not column
 * candidates, and their subtree is not walked: the body column holds them. That bounds the work
 * and the memory per record by the body's size, whatever its nesting — without the bound, one
 * 64 KiB body nested deep under a long prefix would spell out that prefix once per leaf.
 */

/** The pointer of the record's body; every body column's pointer starts with it and a `/`. */
export const BODY_POINTER = '/body';
/** Longest pointer a body column may have (UTF-16 code units). */
export const MAX_COLUMN_POINTER_CHARS = 256;

/** One reference token of a JSON Pointer (RFC 6901 §3): `~` → `~0`, `/` → `~1`, in that order. */
export function escapePointerToken(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function isObjectWithMembers(value: unknown): value is { [key: string]: unknown } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  for (const _ in value) return true;
  return false;
}

/**
 * Calls `leaf(pointer, value)` for every leaf of `body` whose pointer is at most `maxChars`
 * long, in the body's member order.
 */
export function forEachBodyLeaf(body: { [key: string]: unknown }, leaf: (pointer: string, value: unknown) => void, maxChars = MAX_COLUMN_POINTER_CHARS): void {
  const walk = (object: { [key: string]: unknown }, prefix: string): void => {
    for (const key of Object.keys(object)) {
      const pointer = `${prefix}/${escapePointerToken(key)}`;
      if (pointer.length > maxChars) continue;
      const value = object[key];
      if (isObjectWithMembers(value)) walk(value, pointer);
      else leaf(pointer, value);
    }
  };
  walk(body, BODY_POINTER);
}
