/**
 * The collector key an auditor pins with `--collector-key FILE`, obtained out of band. Accepted
 * forms, all JSON:
 * - the output of `GET /api/v1/keys`: `{ origin, logKey, jwks: { keys: [JWK] } }` — pins both the
 *   report key and the log key;
 * - a JWKS `{ keys: [JWK, …] }` or a single Ed25519 public JWK — pins the report key only;
 * - the `collector` member of a trusted bundle's keys.json, `{ origin, logKey, reportKey }`, or
 *   that whole keys.json.
 *
 * A JWK's kid is its RFC 7638 thumbprint when the file does not give one; a kid the file gives
 * must be that thumbprint, so that a printed fingerprint and the key cannot disagree.
 */
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { jwkThumbprint, publicJwkOf, publicKeyFromJwk, type Ed25519PublicJwk } from '../shared/crypto.ts';
import { parseVerifierKey, type NoteVerifier } from '../shared/signed-note.ts';

export interface ReportKey {
  kid: string;
  publicJwk: Ed25519PublicJwk;
  publicKey: KeyObject;
}

export interface PinnedCollectorKey {
  /** Where it came from (a file path), for the verdict's first line. */
  source: string;
  reportKeys: ReportKey[];
  /** The log's signed-note verifier key string, when the file carries one. */
  logKey: string | null;
  logVerifier: NoteVerifier | null;
  origin: string | null;
}

/** The file cannot be read or is not a key file: a usage error (exit 2), not a bundle failure. */
export class CollectorKeyError extends Error {
  override name = 'CollectorKeyError';
}

export function reportKeyFromJwk(jwk: unknown): ReportKey {
  const publicJwk = publicJwkOf(jwk as Ed25519PublicJwk);
  const publicKey = publicKeyFromJwk(publicJwk);
  const kid = jwkThumbprint(publicJwk);
  const given = (jwk as { kid?: unknown }).kid;
  if (given !== undefined && given !== kid) throw new TypeError(`kid ${JSON.stringify(given)} is not the key's RFC 7638 thumbprint ${kid}`);
  return { kid, publicJwk, publicKey };
}

function isObject(value: unknown): value is { [key: string]: unknown } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads and parses a pinned key file. Throws CollectorKeyError naming the file and the reason. */
export function loadPinnedCollectorKey(path: string): PinnedCollectorKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CollectorKeyError(`cannot read the collector key file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parsePinnedCollectorKey(JSON.parse(text), path);
  } catch (err) {
    throw new CollectorKeyError(`${path} is not a collector key file: ${(err as Error).message}`);
  }
}

export function parsePinnedCollectorKey(value: unknown, source: string): PinnedCollectorKey {
  if (!isObject(value)) throw new TypeError('expected a JSON object');
  // A whole keys.json: its collector member.
  if (isObject(value.collector)) return parsePinnedCollectorKey(value.collector, source);

  let jwks: unknown[];
  if (typeof value.kty === 'string') jwks = [value];
  else if (isObject(value.reportKey)) jwks = [value.reportKey];
  else if (isObject(value.jwks) && Array.isArray(value.jwks.keys)) jwks = value.jwks.keys;
  else if (Array.isArray(value.keys)) jwks = value.keys;
  else throw new TypeError('expected a JWK, a JWKS, the GET /api/v1/keys answer or keys.json');
  if (jwks.length === 0) throw new TypeError('it holds no key');
  const reportKeys = jwks.map(reportKeyFromJwk);

  let logVerifier: NoteVerifier | null = null;
  const logKey = typeof value.logKey === 'string' ? value.logKey : null;
  if (logKey !== null) logVerifier = parseVerifierKey(logKey);
  const origin = typeof value.origin === 'string' ? value.origin : null;
  return { source, reportKeys, logKey, logVerifier, origin };
}
