/**
 * Which key must have signed each record of a batch (key rotation, ADR 0006).
 *
 * The key valid for record (agent, epoch, seq) is the key of the epoch's history with the
 * largest `fromSeq` ≤ seq. A batch may itself rotate the key: a valid `key.rotated` record at
 * seq s, signed with the key valid at s, makes its `newKey` the key from s + 1 on, for the rest
 * of the batch and (once committed) for every later batch. Pure: the caller verifies the
 * signatures of each segment with the key the plan names, and stores the rotations it returns
 * in the batch's transaction.
 */
import type { Ed25519PublicJwk } from '../../shared/crypto.ts';
import { checkKeyRotation, isKeyRotationRecord } from '../../shared/key-rotation.ts';
import type { SignedRecord } from '../../shared/record.ts';

export interface HistoryKey {
  fromSeq: number;
  kid: string;
  publicJwk: Ed25519PublicJwk;
}

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

/** The key valid at `seq` in `history` (ascending fromSeq). */
export function keyAt<K extends { fromSeq: number }>(history: readonly K[], seq: number): K | undefined {
  let found: K | undefined;
  for (const key of history) if (key.fromSeq <= seq) found = key;
  return found;
}

/**
 * Plans the signature checks of `records` (ascending, contiguous seq) against the stored
 * `history` (ascending fromSeq). Fails at the first record whose `kid` is not the key valid for
 * it, or at a key.rotated record that does not hold a valid new key.
 */
export function planBatchKeys(records: readonly SignedRecord[], history: readonly HistoryKey[]): BatchKeyPlan {
  const keys = [...history];
  const used = new Set(keys.map((key) => key.kid));
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
    const checked = checkKeyRotation(record.body, used);
    if (!checked.ok) return { ok: false, index, reason: checked.reason };
    const added: HistoryKey = { fromSeq: record.seq + 1, kid: checked.rotation.newKid, publicJwk: checked.rotation.newKey };
    keys.push(added);
    used.add(added.kid);
    rotations.push({ rotationSeq: record.seq, key: added });
  }
  return { ok: true, segments, rotations };
}
