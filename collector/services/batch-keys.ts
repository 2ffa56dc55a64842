/**
 * Which key must have signed each record of a batch (key rotation, ADR 0006).
 *
 * The key valid for record (agent, epoch, seq) is `keyAt` of the epoch's stored history
 * (shared/key-history.ts). A batch may itself rotate the key: a `key.rotated` record at seq s,
 * signed with the key valid at s, extends the history (`applyKeyRotation`) so that its new key
 * signs from s + 1 on, for the rest of the batch and (once committed) for every later batch.
 * Pure: the caller verifies the signatures of each segment with the key the plan names, and
 * stores the rotations it returns in the batch's transaction.
 */
import { applyKeyRotation, keyAt, KeyRotationError, type HistoryKey } from '../../shared/key-history.ts';
import { isKeyRotationRecord } from '../../shared/key-rotation.ts';
import type { SignedRecord } from '../../shared/record.ts';

/** Records [start, end) of the batch, all signed with the key whose `x` is `publicKeyX`. */
export interface KeySegment {
  start: number;
  end: number;
  publicKeyX: string;
}

/** A key the batch introduces: valid from `rotationSeq` + 1. */
export interface BatchRotation {
  rotationSeq: number;
  key: HistoryKey;
}

export type BatchKeyPlan =
  | { ok: true; segments: KeySegment[]; rotations: BatchRotation[] }
  | { ok: false; index: number; reason: string };

/**
 * Plans the signature checks of `records` (ascending, contiguous seq) against the stored
 * `history` (ascending fromSeq). Fails at the first record whose `kid` is not the key valid for
 * it, or at a key.rotated record that does not hold a valid new key.
 */
export function planBatchKeys(records: readonly SignedRecord[], history: readonly HistoryKey[]): BatchKeyPlan {
  let keys: readonly HistoryKey[] = history;
  const segments: KeySegment[] = [];
  const rotations: BatchRotation[] = [];
  for (const [index, record] of records.entries()) {
    const key = keyAt(keys, record.seq);
    if (!key) return { ok: false, index, reason: `no key of this epoch is valid at seq ${record.seq}` };
    if (record.kid !== key.kid) {
      return { ok: false, index, reason: `kid is not the thumbprint of the key valid at seq ${record.seq} (${key.kid})` };
    }
    const last = segments.at(-1);
    if (last && last.publicKeyX === key.publicJwk.x && last.end === index) last.end = index + 1;
    else segments.push({ start: index, end: index + 1, publicKeyX: key.publicJwk.x });

    if (!isKeyRotationRecord(record)) continue;
    // A rotation the history already holds (or one below a later stored rotation) is a stored
    // record sent again: the sequence check decides whether it is a duplicate or an equivocation.
    if (keys.some((stored) => stored.fromSeq > record.seq)) continue;
    try {
      keys = applyKeyRotation(keys, record);
    } catch (err) {
      if (err instanceof KeyRotationError) return { ok: false, index, reason: err.message };
      throw err;
    }
    rotations.push({ rotationSeq: record.seq, key: keys.at(-1)! });
  }
  return { ok: true, segments, rotations };
}
