/**
 * Record v1: the unit of evidence.
 *
 * - Canonical bytes are RFC 8785 (JCS). `sig` is Ed25519 over JCS(record without `sig`).
 * - Record hash = sha256(JCS(record)) including `sig`; the next record's `prev` is that hash
 *   (base64url), and seq 1 has `prev` = 43 'A' characters (32 zero bytes).
 * - Ledger leaf hash = sha256(0x00 || JCS(record)) (RFC 9162 §2.1.1).
 */
import type { KeyObject } from 'node:crypto';
import { canonicalBytes, canonicalJsonOfParsed } from './canonical-json.ts';
import { fromBase64Url, sha256, signEd25519, toBase64Url, verifyEd25519 } from './crypto.ts';

export const RECORD_VERSION = 1;
/** base64url of 32 zero bytes: the `prev` of every chain's seq 1. */
export const GENESIS_PREV = 'A'.repeat(43);
export const MAX_BODY_CANONICAL_BYTES = 64 * 1024;
export const AGENT_ID_PATTERN = /^[A-Z0-9-]{3,64}$/;
export const RECORD_TYPE_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;
export const RECORD_KINDS = ['audit', 'telemetry', 'agent'] as const;
/** The collector's own chain (enrollments, revocations, token issues, exports). */
export const COLLECTOR_AGENT_ID = 'COLLECTOR';

export type RecordKind = (typeof RECORD_KINDS)[number];

export interface UnsignedRecord {
  v: 1;
  id: string;
  agent: string;
  epoch: number;
  seq: number;
  prev: string;
  kind: RecordKind;
  type: string;
  at: string;
  body: { [key: string]: unknown };
  kid: string;
}

export interface SignedRecord extends UnsignedRecord {
  sig: string;
}

/** Bytes that `sig` signs: JCS of the record without `sig`. */
export function signingBytes(record: UnsignedRecord | SignedRecord): Buffer {
  const { sig: _sig, ...unsigned } = record as SignedRecord;
  return canonicalBytes(unsigned);
}

/** JCS of a record with and without `sig`, as text. */
export interface RecordTexts {
  /** JCS(record without sig): what `sig` signs. */
  signing: string;
  /** JCS(record): what the record hash and the ledger leaf hash cover. */
  canonical: string;
}

/**
 * Both canonical texts of a schema-valid v1 record, canonicalising only `body`.
 *
 * Canonicalising a whole record costs more than a third of a signature check, so the texts are
 * assembled around the body's. (The collector's batch check needs only the canonical text,
 * `canonicalRecordText`, and cuts the signed bytes out of it in place; this pair is the
 * reference its property test holds both forms to.) Every member but `body` has a fixed name and
 * type in v1, so the rest is assembled here in RFC 8785 key order (UTF-16 code units: agent, at,
 * body, epoch, id, kid, kind, prev, seq, sig, type, v); RFC 8785 serialises strings exactly as
 * JSON.stringify does and these integers (≤ 2^53) as String() does. The caller MUST have
 * validated the record with `recordSchema` (no other members, integers, strings); a property
 * test holds this equal to `canonicalJson` of the record.
 */
export function canonicalRecordTexts(record: SignedRecord): RecordTexts {
  const head = textBeforeSig(record);
  const tail = textAfterSig(record);
  return { signing: head + tail, canonical: `${head},"sig":${JSON.stringify(record.sig)}${tail}` };
}

/** The canonical text alone (`canonicalRecordTexts(record).canonical`), for a caller that never needs the other. */
export function canonicalRecordText(record: SignedRecord): string {
  return `${textBeforeSig(record)},"sig":${JSON.stringify(record.sig)}${textAfterSig(record)}`;
}

function textBeforeSig(record: SignedRecord): string {
  return (
    `{"agent":${JSON.stringify(record.agent)},"at":${JSON.stringify(record.at)},"body":${canonicalJsonOfParsed(record.body)}` +
    `,"epoch":${String(record.epoch)},"id":${JSON.stringify(record.id)},"kid":${JSON.stringify(record.kid)}` +
    `,"kind":${JSON.stringify(record.kind)},"prev":${JSON.stringify(record.prev)},"seq":${String(record.seq)}`
  );
}

function textAfterSig(record: SignedRecord): string {
  return `,"type":${JSON.stringify(record.type)},"v":${String(record.v)}}`;
}

export function signRecord(record: UnsignedRecord, privateKey: KeyObject): SignedRecord {
  const sig = toBase64Url(signEd25519(privateKey, signingBytes(record)));
  return { ...record, sig };
}

export function verifyRecordSignature(record: SignedRecord, publicKey: KeyObject): boolean {
  const signature = fromBase64Url(record.sig);
  return verifyEd25519(publicKey, signingBytes(record), signature);
}

/** Hash that chains records: base64url(sha256(JCS(record))), `sig` included. */
export function recordHash(record: SignedRecord): string {
  return toBase64Url(sha256(canonicalBytes(record)));
}

/** Same, from canonical bytes already at hand (avoids canonicalising twice on hot paths). */
export function recordHashOfCanonical(canonical: Buffer): string {
  return toBase64Url(sha256(canonical));
}

const LEAF_PREFIX = Buffer.from([0]);

/** RFC 9162 leaf hash of a record's canonical bytes: sha256(0x00 || bytes). */
export function leafHashOfCanonical(canonical: Buffer): Buffer {
  return sha256(Buffer.concat([LEAF_PREFIX, canonical]));
}
