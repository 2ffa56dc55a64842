/**
 * The CPU-bound half of batch ingest, run in a worker thread (batch-check-pool.ts): from the
 * decoded body bytes of `POST /batches` to records ready for the ledger. No I/O, no store:
 * what it needs of the store (the agent's current epoch and key history) comes in the task.
 *
 * In the order ingest.ts documents, it
 * 1. parses the text (nesting depth first) — 400 `request.malformed`;
 * 2. refuses a batch or record naming another agent than the token's — 403 `auth.forbidden`;
 * 3. validates `batchSchema` — 400 `batch.invalid`; Idempotency-Key = batchId — 400;
 * 4. canonicalises every record once (RFC 8785, both texts) and hashes it (record hash, leaf);
 * 5. then, unless the batch turns out to be a retry of a stored one (the caller decides, with
 *    the record hashes of step 4): epoch current → ids unique in the batch → each record's kid
 *    is the key valid at its seq (batch-keys.ts) → every signature verifies.
 * Refusals of steps 1–3 are `refusal`s: nothing else is looked at. Those of step 5 are
 * `deferredRefusal`s: a batch already received is answered with its stored receipt first.
 *
 * Why in a worker, whole: parsing, validating and canonicalising a batch cost as much CPU on
 * the event loop as the SQLite transaction that must run there; handing a worker the bytes
 * (transferred, not copied) instead of parsed records also spares the structured clone of every
 * record both ways. Batches of different agents run on different workers at once.
 */
import { hash, type KeyObject } from 'node:crypto';
import { fromBase64Url, publicKeyFromJwk, verifyEd25519 } from '../../shared/crypto.ts';
import { parseJsonText } from '../../shared/json-text.ts';
import { ProblemError, type ProblemCode } from '../../shared/problem.ts';
import { batchSchema, describeZodError, type Batch } from '../../shared/protocol.ts';
import { canonicalRecordTexts } from '../../shared/record.ts';
import { planBatchKeys, type BatchRotation, type HistoryKey } from './batch-keys.ts';
import type { LedgerRecordFields } from './ledger.ts';

export interface BatchCheckTask {
  /** The decoded (gunzipped) body bytes. */
  body: Uint8Array;
  /** The token's subject: the only agent whose records the batch may hold. */
  agent: string;
  /** The Idempotency-Key header (already a UUID). */
  idempotencyKey: string;
  /** The agent's current epoch and its key history (ascending fromSeq). */
  epoch: number;
  history: HistoryKey[];
  maxDepth: number;
}

/** A refusal as plain data (a ProblemError does not survive the trip between threads). */
export interface Refusal {
  code: ProblemCode;
  detail: string;
  extras: { [key: string]: unknown };
}

export type BatchHeader = Omit<Batch, 'records'>;

export type BatchCheckResult =
  | { ok: false; refusal: Refusal }
  | {
      ok: true;
      batch: BatchHeader;
      records: LedgerRecordFields[];
      /** Per record, in order; empty if a record has no canonical form (then deferredRefusal says which). */
      canonical: string[];
      recordHashes: string[];
      /** 32 bytes per record, in order: one buffer to send back instead of n small ones. */
      leafHashes: Uint8Array;
      /** Keys the batch introduces (key.rotated records), for the batch's transaction. */
      rotations: BatchRotation[];
      /** Why the batch is refused unless it is a retry of a stored one. */
      deferredRefusal?: Refusal;
    };

const keys = new Map<string, KeyObject>();

function keyFor(x: string): KeyObject {
  let key = keys.get(x);
  if (!key) {
    key = publicKeyFromJwk({ kty: 'OKP', crv: 'Ed25519', x });
    if (keys.size > 1024) keys.clear();
    keys.set(x, key);
  }
  return key;
}

/**
 * `,"sig":"<86 base64url characters>"`: in canonical order `sig` is the last member but `type`
 * and `v`, whose values cannot hold this text (RECORD_TYPE_PATTERN), so its last occurrence is
 * the record's own `sig`.
 */
const SIG_MEMBER = Buffer.from(',"sig":"');
const SIG_MEMBER_BYTES = SIG_MEMBER.length + 86 + 1;

/** The canonical bytes of a record without its `sig` member: what `sig` signs. */
function withoutSigMember(canonical: Buffer): Buffer {
  const at = canonical.lastIndexOf(SIG_MEMBER);
  return Buffer.concat([canonical.subarray(0, at), canonical.subarray(at + SIG_MEMBER_BYTES)]);
}

function refusal(code: ProblemCode, detail: string, extras: { [key: string]: unknown } = {}): Refusal {
  return { code, detail, extras };
}

function recordRefusal(record: { id: string; seq: number }, reason: string): Refusal {
  return refusal('batch.invalid', `record ${record.id} (seq ${record.seq}): ${reason}`, { recordId: record.id, seq: record.seq });
}

/** A record or batch naming another agent is a privilege problem (403), not a schema one. */
function foreignAgent(body: unknown, subject: string): Refusal | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { agent, records } = body as { agent?: unknown; records?: unknown };
  const foreign = (value: unknown): value is string => typeof value === 'string' && value !== subject;
  const quoted = (value: string) => JSON.stringify(value.slice(0, 64));
  if (foreign(agent)) return refusal('auth.forbidden', `the batch is for agent ${quoted(agent)}, but the token is ${subject}'s`);
  if (!Array.isArray(records)) return undefined;
  for (const [i, record] of records.entries()) {
    const owner = typeof record === 'object' && record !== null ? (record as { agent?: unknown }).agent : undefined;
    if (foreign(owner)) return refusal('auth.forbidden', `records.${i} belongs to agent ${quoted(owner)}; an agent may only send its own records`);
  }
  return undefined;
}

export default function checkBatch(task: BatchCheckTask): BatchCheckResult {
  let body: unknown;
  try {
    body = parseJsonText(Buffer.from(task.body.buffer, task.body.byteOffset, task.body.byteLength).toString('utf8'), task.maxDepth);
  } catch (err) {
    if (err instanceof ProblemError) return { ok: false, refusal: refusal(err.code, err.message, err.extras) };
    throw err;
  }
  const forbidden = foreignAgent(body, task.agent);
  if (forbidden) return { ok: false, refusal: forbidden };
  const parsed = batchSchema.safeParse(body);
  if (!parsed.success) {
    return {
      ok: false,
      refusal: refusal('batch.invalid', describeZodError(parsed.error), {
        errors: parsed.error.issues.slice(0, 50).map((issue) => ({ path: issue.path.join('.'), message: issue.message })),
      }),
    };
  }
  const { records: signed, ...batch } = parsed.data;
  if (task.idempotencyKey !== batch.batchId) {
    return { ok: false, refusal: refusal('request.invalid', 'the Idempotency-Key header must equal the body batchId') };
  }

  const records: LedgerRecordFields[] = [];
  let canonical: string[] = [];
  let recordHashes: string[] = [];
  const signing: Buffer[] = [];
  const leafHashes = new Uint8Array(32 * signed.length);
  let uncanonical: { index: number; refusal: Refusal } | undefined;
  for (const [i, record] of signed.entries()) {
    const { id, agent, epoch, seq, prev, kind, type, at } = record;
    records.push({ id, agent, epoch, seq, prev, kind, type, at });
    if (uncanonical) continue;
    try {
      const { canonical: text } = canonicalRecordTexts(record);
      // One UTF-8 encoding per record, after a 0x00 byte: the RFC 9162 leaf hash input, whose
      // tail is the canonical bytes, which without the `sig` member are the signed bytes.
      const buffer = Buffer.allocUnsafe(1 + 3 * text.length);
      buffer[0] = 0;
      const leafInput = buffer.subarray(0, 1 + buffer.write(text, 1, 'utf8'));
      const bytes = leafInput.subarray(1);
      signing.push(withoutSigMember(bytes));
      canonical.push(text);
      recordHashes.push(hash('sha256', bytes, 'base64url'));
      leafHashes.set(hash('sha256', leafInput, 'buffer'), 32 * i);
    } catch (err) {
      // e.g. a number JSON can parse but RFC 8785 cannot write (1e400 is Infinity).
      uncanonical = { index: i, refusal: recordRefusal(record, `no canonical form: ${(err as Error).message}`) };
      canonical = [];
      recordHashes = [];
    }
  }
  const checked = { ok: true as const, batch, records, canonical, recordHashes, leafHashes };
  const deferred = (deferredRefusal: Refusal): BatchCheckResult => ({ ...checked, rotations: [], deferredRefusal });

  if (batch.epoch !== task.epoch) {
    return deferred(refusal('batch.epoch_stale', `epoch ${batch.epoch} is not the current epoch ${task.epoch} of ${task.agent}`, { currentEpoch: task.epoch }));
  }
  const seenIds = new Set<string>();
  for (const record of signed) {
    if (seenIds.has(record.id)) return deferred(recordRefusal(record, 'the id appears twice in the batch'));
    seenIds.add(record.id);
  }
  const plan = planBatchKeys(signed, task.history);
  if (!plan.ok) return deferred(recordRefusal(signed[plan.index]!, plan.reason));
  // The first bad record in batch order is named: a bad signature before a record with no
  // canonical form, that record otherwise.
  const verifiable = uncanonical?.index ?? signed.length;
  for (const segment of plan.segments) {
    const key = keyFor(segment.publicKeyX);
    for (let i = segment.start; i < Math.min(segment.end, verifiable); i++) {
      if (!verifyEd25519(key, signing[i]!, fromBase64Url(signed[i]!.sig))) {
        return deferred(recordRefusal(signed[i]!, 'signature does not verify with the agent key valid at its seq'));
      }
    }
  }
  if (uncanonical) return deferred(uncanonical.refusal);
  return { ...checked, rotations: plan.rotations };
}
