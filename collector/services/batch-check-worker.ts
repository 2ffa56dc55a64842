/**
 * The CPU-bound half of batch ingest, run in a worker thread (batch-check-pool.ts): from the
 * body bytes of `POST /batches`, as sent, to records ready for the ledger. No I/O, no store:
 * what it needs of the store (the agent's current epoch and key history) comes in the task.
 *
 * In the order ingest.ts documents, it
 * 1. inflates a gzip body, stopping past `maxDecodedBytes` — 413 `batch.too_large`, or 400
 *    `request.malformed` if it does not inflate; parses the text (nesting depth first) — 400
 *    `request.malformed`;
 * 2. refuses a batch or record naming another agent than the token's — 403 `auth.forbidden`;
 * 3. validates `batchSchema` — 400 `batch.invalid`; Idempotency-Key = batchId — 400;
 * 4. canonicalises every record once (RFC 8785, both texts) and hashes it (record hash, leaf);
 * 5. then, unless the batch turns out to be a retry of a stored one (the caller decides, with
 *    the record hashes of step 4): epoch current → ids unique in the batch → each record's kid
 *    is the key valid at its seq (batch-keys.ts) → every signature verifies.
 * Refusals of steps 1–3 are `refusal`s: nothing else is looked at. Those of step 5 are
 * `deferredRefusal`s: a batch already received is answered with its stored receipt first.
 *
 * Why in a worker, whole: inflating, parsing, validating and canonicalising a batch cost as much
 * CPU on the event loop as the SQLite transaction that must run there; handing a worker the
 * bytes as sent (transferred, not copied) instead of parsed records also spares the structured
 * clone of every record both ways, and one synchronous inflate is far cheaper than a streaming
 * one (shared/body-encoding.ts). Batches of different agents run on different workers at once.
 */
import { hash, type KeyObject } from 'node:crypto';
import { publicKeyFromJwk, verifyEd25519 } from '../../shared/crypto.ts';
import { acceptsBatch } from '../../shared/batch-accept.ts';
import { decodeBody, type BodyEncoding } from '../../shared/body-encoding.ts';
import { parseJsonText } from '../../shared/json-text.ts';
import { ProblemError, type ProblemCode } from '../../shared/problem.ts';
import { batchSchema, describeZodError, type Batch } from '../../shared/protocol.ts';
import { canonicalRecordText } from '../../shared/record.ts';
import { NO_TEXTS, PackedTextsBuilder, type PackedTexts } from './packed-texts.ts';
import type { HistoryKey } from '../../shared/key-history.ts';
import { planBatchKeys, type BatchKeyPlan, type BatchRotation } from './batch-keys.ts';
import type { LedgerRecordFields } from './ledger.ts';

export interface BatchCheckTask {
  /** The body bytes as sent, in `encoding`. */
  body: Uint8Array;
  encoding: BodyEncoding;
  /** The most bytes the body may inflate to (413 `batch.too_large` past it). */
  maxDecodedBytes: number;
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
      /** Per record, in order, as UTF-8 bytes (packed-texts.ts); empty if a record has no canonical form (then deferredRefusal says which). */
      canonical: PackedTexts;
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

/**
 * One scratch buffer per worker, reused for every record: 0x00 then the record's canonical
 * UTF-8 bytes (the RFC 9162 leaf-hash input, whose tail is the canonical bytes). Per-record
 * Buffers were most of the worker's garbage.
 */
let scratch = Buffer.allocUnsafe(128 * 1024);

function encodeLeafInput(text: string): Buffer {
  // A JS string of n UTF-16 units is at most 3n UTF-8 bytes.
  if (scratch.length < 1 + 3 * text.length) scratch = Buffer.allocUnsafe(1 + 3 * text.length);
  scratch[0] = 0;
  return scratch.subarray(0, 1 + scratch.write(text, 1, 'utf8'));
}

/**
 * The canonical bytes of a record without its `sig` member — what `sig` signs — made in place:
 * the tail after the member is moved over it. `canonical` is unusable afterwards.
 */
function withoutSigMember(canonical: Buffer): Buffer {
  const at = canonical.lastIndexOf(SIG_MEMBER);
  canonical.copyWithin(at, at + SIG_MEMBER_BYTES);
  return canonical.subarray(0, canonical.length - SIG_MEMBER_BYTES);
}

const signature = Buffer.allocUnsafe(64);

/** `sig` (schema-checked: base64url of 64 bytes) decoded into a reused buffer. */
function decodeSignature(sig: string): Buffer {
  signature.write(sig, 'base64url');
  return signature;
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
  let decoded: Buffer;
  try {
    decoded = decodeBody(task.body, task.encoding, task.maxDecodedBytes);
    body = parseJsonText(decoded.toString('utf8'), task.maxDepth);
  } catch (err) {
    if (err instanceof ProblemError) return { ok: false, refusal: refusal(err.code, err.message, err.extras) };
    throw err;
  }
  const forbidden = foreignAgent(body, task.agent);
  if (forbidden) return { ok: false, refusal: forbidden };
  // The common case, a valid batch, without zod's copy of every field (shared/batch-accept.ts);
  // anything else goes to batchSchema, for its verdict and its error messages.
  const parsed = acceptsBatch(body) ? { success: true as const, data: body } : batchSchema.safeParse(body);
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

  const records: LedgerRecordFields[] = signed.map(({ id, agent, epoch, seq, prev, kind, type, at }) => ({ id, agent, epoch, seq, prev, kind, type, at }));

  // Refusals that need no signature check; the hashes are still computed (a retry of a stored
  // batch is answered by them).
  let deferredRefusal: Refusal | undefined;
  let plan: BatchKeyPlan | undefined;
  if (batch.epoch !== task.epoch) {
    deferredRefusal = refusal('batch.epoch_stale', `epoch ${batch.epoch} is not the current epoch ${task.epoch} of ${task.agent}`, { currentEpoch: task.epoch });
  } else {
    const seenIds = new Set<string>();
    for (const record of signed) {
      if (seenIds.has(record.id)) {
        deferredRefusal = recordRefusal(record, 'the id appears twice in the batch');
        break;
      }
      seenIds.add(record.id);
    }
    if (!deferredRefusal) {
      plan = planBatchKeys(signed, task.history);
      if (!plan.ok) deferredRefusal = recordRefusal(signed[plan.index]!, plan.reason);
    }
  }

  // Record by record: canonical text, both hashes and (while no refusal is known) the signature,
  // all from one UTF-8 encoding in a reused scratch buffer. The first bad record in batch order
  // is the one named.
  const canonical = new PackedTextsBuilder(signed.length, decoded.byteLength);
  const recordHashes: string[] = [];
  const leafHashes = new Uint8Array(32 * signed.length);
  const leafHashBytes = Buffer.from(leafHashes.buffer, leafHashes.byteOffset, leafHashes.byteLength);
  for (const segment of plan?.ok ? plan.segments : [{ start: 0, end: signed.length, publicKeyX: '' }]) {
    const key = deferredRefusal ? undefined : keyFor(segment.publicKeyX);
    for (let i = segment.start; i < segment.end; i++) {
      const record = signed[i]!;
      let text: string;
      try {
        text = canonicalRecordText(record);
      } catch (err) {
        // e.g. a number JSON can parse but RFC 8785 cannot write (1e400 is Infinity): no hashes.
        const uncanonical = recordRefusal(record, `no canonical form: ${(err as Error).message}`);
        return { ok: true, batch, records, canonical: NO_TEXTS, recordHashes: [], leafHashes, rotations: [], deferredRefusal: deferredRefusal ?? uncanonical };
      }
      const leafInput = encodeLeafInput(text);
      const bytes = leafInput.subarray(1);
      canonical.append(bytes);
      recordHashes.push(hash('sha256', bytes, 'base64url'));
      // As a latin1 string written in place: no Buffer (and ArrayBuffer) per digest (shared/crypto.ts sha256).
      leafHashBytes.write(hash('sha256', leafInput, 'binary'), 32 * i, 32, 'latin1');
      if (key && !deferredRefusal && !verifyEd25519(key, withoutSigMember(bytes), decodeSignature(record.sig))) {
        deferredRefusal = recordRefusal(record, 'signature does not verify with the agent key valid at its seq');
      }
    }
  }
  const texts = canonical.finish();
  if (deferredRefusal) return { ok: true, batch, records, canonical: texts, recordHashes, leafHashes, rotations: [], deferredRefusal };
  return { ok: true, batch, records, canonical: texts, recordHashes, leafHashes, rotations: plan?.ok ? plan.rotations : [] };
}
