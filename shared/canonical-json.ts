/**
 * RFC 8785 JSON Canonicalization Scheme (JCS).
 *
 * Backed by the maintained `canonicalize` package (erdtman), which implements RFC 8785 with
 * ECMAScript number serialisation and UTF-16 key ordering. This module only pins the contract
 * Sakshya relies on: a value that has no canonical form (NaN, Infinity, lone surrogates,
 * undefined at the top) is an error, never a silent `undefined`.
 */
import canonicalize from 'canonicalize';

export class CanonicalJsonError extends Error {
  override name = 'CanonicalJsonError';
}

/** Canonical JSON text of `value` (RFC 8785). Throws CanonicalJsonError if it has none. */
export function canonicalJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (err) {
    throw new CanonicalJsonError(`value has no canonical JSON form: ${(err as Error).message}`);
  }
  if (text === undefined) throw new CanonicalJsonError('value has no canonical JSON form');
  return text;
}

/**
 * The same text as `canonicalJson`, faster, for a value as `JSON.parse` makes it (plain objects
 * and arrays, strings, numbers, booleans, null) — the collector's hot path, where the library's
 * generality (toJSON, boxed primitives, cycle detection) cost a tenth of a signature check per
 * record. Anything else (another prototype, a non-JSON type) goes to the library, so the result
 * never differs; property tests and the RFC 8785 vectors hold the two equal.
 *
 * Why it is the same text: RFC 8785 writes strings (when well-formed) and finite numbers exactly
 * as JSON.stringify does, and orders members by UTF-16 code units (`<` on strings, and
 * `Array.prototype.sort`'s default). So a value whose members are already in that order at every
 * level — as every record is when an agent sends its stored canonical text — is canonicalised by
 * one native JSON.stringify, after a walk that checks the order and the numbers. JSON.stringify
 * writes a lone surrogate as a `\ud…` escape, which RFC 8785 forbids: such text takes the slow
 * path, which refuses it.
 */
export function canonicalJsonOfParsed(value: unknown): string {
  if (inCanonicalOrder(value)) {
    const text = JSON.stringify(value);
    if (!text.includes('\\ud')) return text;
  }
  try {
    return canonicalParsed(value);
  } catch (err) {
    if (err instanceof CanonicalJsonError) throw err;
    return canonicalJson(value);
  }
}

/** Whether `value` is JSON data with finite numbers and every object's members in RFC 8785 order. */
function inCanonicalOrder(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (value === null) return true;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!inCanonicalOrder(value[i])) return false;
        return true;
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) return false;
      const object = value as { [key: string]: unknown };
      let previous: string | undefined;
      for (const key in object) {
        if (previous !== undefined && !(previous < key)) return false;
        if (!inCanonicalOrder(object[key])) return false;
        previous = key;
      }
      return true;
    }
    default:
      return false;
  }
}

/** Signals "not a JSON.parse value": the caller falls back to the library. */
class NotParsedJson extends Error {}

function canonicalParsed(value: unknown): string {
  switch (typeof value) {
    case 'string':
      if (!value.isWellFormed()) throw new CanonicalJsonError('value has no canonical JSON form: Lone surrogate is not allowed');
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`value has no canonical JSON form: ${String(value)} is not allowed`);
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let text = '[';
        for (let i = 0; i < value.length; i++) text += (i === 0 ? '' : ',') + canonicalParsed(value[i]);
        return text + ']';
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) throw new NotParsedJson();
      const object = value as { [key: string]: unknown };
      const keys = Object.keys(object).sort();
      let text = '{';
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        if (!key.isWellFormed()) throw new CanonicalJsonError('value has no canonical JSON form: Lone surrogate is not allowed');
        text += (i === 0 ? '' : ',') + JSON.stringify(key) + ':' + canonicalParsed(object[key]);
      }
      return text + '}';
    }
    default:
      throw new NotParsedJson();
  }
}

/** UTF-8 bytes of the canonical JSON of `value`. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}
