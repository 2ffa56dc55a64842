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

/** UTF-8 bytes of the canonical JSON of `value`. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}
