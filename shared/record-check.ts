/**
 * Re-checking a stored record from its canonical text, trusting nothing else stored with it:
 * the one rule behind `ledger verify` (collector/services/ledger-audit/), `sakshya-agent verify`
 * (agent/verify/outbox-verifier.ts) and `sakshya-verify` (verifier/record-check.ts).
 *
 * `checkStoredRecord` is pure. It returns every finding, in this order, each a typed value that
 * the caller maps onto its own check names and messages:
 * - `record_hash`: the stored record hash is not sha256 of the text;
 * - `not_json`: the text does not parse (nothing else is checked);
 * - `not_canonical`: RFC 8785 re-canonicalisation of the parsed value is not the very same text
 *   (or the value has no canonical form);
 * - `not_record`: the value is not a record v1 (`recordSchema`; nothing below is checked);
 * - `column`: a stored column differs from the record's member;
 * - `no_key`: no key is known for the record's (agent, epoch, seq);
 * - `kid`: `kid` does not name the key valid at the record's seq;
 * - `signature`: the signature does not verify with that key (checked even when `kid` differs);
 * - `prev`: `prev` is not the hash of the record before it.
 * What the record is checked against (the key valid at its seq, the previous record's hash)
 * often depends on the record itself, so the caller answers for it in `expect`, once the record
 * has been read.
 */
import type { KeyObject } from 'node:crypto';
import type { ZodError } from 'zod';
import { canonicalJsonOfParsed } from './canonical-json.ts';
import { fromBase64Url, verifyEd25519 } from './crypto.ts';
import { recordSchema } from './protocol.ts';
import { recordHashOfCanonical, signingBytes, type SignedRecord } from './record.ts';

/** Record members that stores keep in columns of their own. */
export type RecordColumn = 'id' | 'agent' | 'epoch' | 'seq' | 'kind' | 'type' | 'at';

/** The key a record must name and be signed with. */
export interface ExpectedKey {
  kid: string;
  publicKey: KeyObject;
}

/** What a readable record is checked against. */
export interface RecordExpectations {
  /** The key valid at the record's seq; null when none is known (`no_key`). Absent: not checked. */
  key?: ExpectedKey | null;
  /** The hash `prev` must equal (the genesis value at seq 1). Absent: not checked. */
  prev?: string;
}

export interface StoredRecordInput {
  /** The canonical text as stored: a string, or the exact bytes (invalid UTF-8 then shows as not canonical). */
  text: string | Buffer;
  /** The record hash stored with it, if any. */
  storedHash?: string;
  /** Stored column values, compared with the record's members in this object's order. */
  columns?: Partial<Record<RecordColumn, string | number>>;
  /** Called once the text is a record v1. */
  expect?: (record: SignedRecord) => RecordExpectations;
}

export type RecordFinding =
  | { code: 'record_hash'; expected: string; found: string }
  | { code: 'not_json'; reason: string }
  /** `canonical` is the RFC 8785 text of the parsed value, undefined if it has none. */
  | { code: 'not_canonical'; canonical: string | undefined }
  | { code: 'not_record'; error: ZodError }
  | { code: 'column'; column: RecordColumn; stored: string | number; record: string | number }
  | { code: 'no_key' }
  | { code: 'kid'; expected: string; found: string }
  | { code: 'signature'; kid: string }
  | { code: 'prev'; expected: string; found: string };

export type RecordFindingCode = RecordFinding['code'];

export interface StoredRecordCheck {
  /** The text's UTF-8 bytes. */
  bytes: Buffer;
  /** base64url sha256 of the bytes: the `prev` of the record after it. */
  hash: string;
  /** The parsed value; undefined when the text is not JSON. */
  json: unknown;
  /** The record, when the value is a record v1. */
  record: SignedRecord | undefined;
  /** True when the record names the expected key and its signature verifies with it. */
  signed: boolean;
  findings: RecordFinding[];
}

/** Re-checks one stored record (see the header). Never throws for bad data. */
export function checkStoredRecord(input: StoredRecordInput): StoredRecordCheck {
  const bytes = typeof input.text === 'string' ? Buffer.from(input.text, 'utf8') : input.text;
  const hash = recordHashOfCanonical(bytes);
  const findings: RecordFinding[] = [];
  const result: StoredRecordCheck = { bytes, hash, json: undefined, record: undefined, signed: false, findings };
  if (input.storedHash !== undefined && input.storedHash !== hash) findings.push({ code: 'record_hash', expected: hash, found: input.storedHash });

  const text = typeof input.text === 'string' ? input.text : bytes.toString('utf8');
  try {
    result.json = JSON.parse(text);
  } catch (err) {
    findings.push({ code: 'not_json', reason: (err as Error).message });
    return result;
  }
  let canonical: string | undefined;
  try {
    canonical = canonicalJsonOfParsed(result.json);
  } catch {
    canonical = undefined;
  }
  const isCanonical = canonical !== undefined && (typeof input.text === 'string' ? canonical === input.text : Buffer.from(canonical, 'utf8').equals(bytes));
  if (!isCanonical) findings.push({ code: 'not_canonical', canonical });

  const parsed = recordSchema.safeParse(result.json);
  if (!parsed.success) {
    findings.push({ code: 'not_record', error: parsed.error });
    return result;
  }
  const record = parsed.data as SignedRecord;
  result.record = record;

  for (const [column, stored] of Object.entries(input.columns ?? {}) as [RecordColumn, string | number][]) {
    if (stored !== record[column]) findings.push({ code: 'column', column, stored, record: record[column] });
  }

  const expected = input.expect?.(record) ?? {};
  if (expected.key === null) {
    findings.push({ code: 'no_key' });
  } else if (expected.key !== undefined) {
    const key = expected.key;
    const kidMatches = record.kid === key.kid;
    if (!kidMatches) findings.push({ code: 'kid', expected: key.kid, found: record.kid });
    const verified = verifies(key.publicKey, isCanonical ? signedPartOfCanonical(bytes, record.sig) : signingBytes(record), record.sig);
    if (!verified) findings.push({ code: 'signature', kid: key.kid });
    result.signed = kidMatches && verified;
  }
  if (expected.prev !== undefined && record.prev !== expected.prev) findings.push({ code: 'prev', expected: expected.prev, found: record.prev });
  return result;
}

function verifies(publicKey: KeyObject, data: Buffer, sig: string): boolean {
  try {
    return verifyEd25519(publicKey, data, fromBase64Url(sig));
  } catch {
    return false;
  }
}

/**
 * JCS(record without sig) cut out of JCS(record), saving a second canonicalisation per record.
 * Keys sort as agent, at, body, …, seq, sig, type, v: the top-level `,"sig":"…"` is the LAST
 * occurrence (a body may hold the same text, but the body comes before sig; type and v cannot).
 */
function signedPartOfCanonical(canonical: Buffer, sig: string): Buffer {
  const member = Buffer.from(`,"sig":${JSON.stringify(sig)}`);
  const at = canonical.lastIndexOf(member);
  return Buffer.concat([canonical.subarray(0, at), canonical.subarray(at + member.length)]);
}
