/**
 * What the witness checks, as pure functions: the signed checkpoint the collector serves for a
 * size a verified receipt named, and the consistency proof from the last verified checkpoint to
 * it. Every failure is a WitnessFailure with a stable reason (witness-state.ts); none of them is
 * transient — a check that could not be made (network, 5xx) never reaches these functions.
 *
 * The log key and origin are the ones pinned at enrollment, never ones the collector offers now:
 * a collector that rewrote its history and re-signed it with a new key must fail here.
 */
import { CheckpointError, verifyCheckpoint, type Checkpoint } from '../../shared/checkpoint.ts';
import { fromBase64Url, toBase64Url } from '../../shared/crypto.ts';
import { HASH_SIZE, InvalidProofShapeError, MerkleProofError, verifyConsistency } from '../../shared/merkle.ts';
import { NoteError, parseVerifierKey, type NoteVerifier } from '../../shared/signed-note.ts';
import type { CheckpointRef, WitnessAlarmReason } from './witness-state.ts';

export class WitnessFailure extends Error {
  override name = 'WitnessFailure';
  readonly reason: WitnessAlarmReason;

  constructor(reason: WitnessAlarmReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** The collector's log identity, as pinned at enrollment. */
export interface PinnedLog {
  origin: string;
  verifier: NoteVerifier;
}

const BASE64URL_HASH = /^[A-Za-z0-9_-]{43}$/;

/** Parses the pinned log key. Throws WitnessFailure `pinned_key_invalid` if it cannot be used. */
export function pinnedLog(pins: { origin: string; logKey: string }): PinnedLog {
  try {
    return { origin: pins.origin, verifier: parseVerifierKey(pins.logKey) };
  } catch (err) {
    throw new WitnessFailure('pinned_key_invalid', `the pinned log key cannot be used: ${(err as Error).message}`);
  }
}

/**
 * How a checkpoint a verified receipt names relates to the last verified one: `newer` needs a
 * check from the verified one to it; `covered` needs none (same size and root, or empty); `older`
 * must be shown to be a prefix of the verified one (a receipt another process received earlier,
 * or a log cut back: `proveOlder` tells). Another root for the verified size throws
 * WitnessFailure `equivocation`: the collector signed two different trees of one size.
 */
export function compareWithVerified(verified: CheckpointRef | undefined, offered: CheckpointRef): 'newer' | 'covered' | 'older' {
  if (offered.size === 0 && (verified === undefined || verified.size === 0)) return 'covered';
  if (verified === undefined) return 'newer';
  if (offered.size > verified.size) return 'newer';
  if (offered.size < verified.size) return 'older';
  if (offered.root !== verified.root) {
    throw new WitnessFailure('equivocation', `the collector names root ${offered.root} for size ${offered.size}, whose verified root is ${verified.root}`);
  }
  return 'covered';
}

/**
 * Verifies the signed note the collector served for `offered` (a checkpoint a verified receipt
 * named): signature by the pinned log key, the pinned origin, the same size and the same root.
 * Returns the checkpoint.
 */
export function verifyOfferedCheckpoint(note: string, offered: CheckpointRef, log: PinnedLog): Checkpoint {
  let checkpoint: Checkpoint;
  try {
    checkpoint = verifyCheckpoint(note, log.verifier, log.origin);
  } catch (err) {
    if (err instanceof NoteError) throw new WitnessFailure('bad_signature', `checkpoint ${offered.size}: ${err.message}`);
    if (err instanceof CheckpointError) throw new WitnessFailure('bad_checkpoint', `checkpoint ${offered.size}: ${err.message}`);
    throw err;
  }
  if (checkpoint.size !== offered.size) {
    throw new WitnessFailure('size_mismatch', `asked for the checkpoint of size ${offered.size}, got a signed checkpoint of size ${checkpoint.size}`);
  }
  const root = toBase64Url(checkpoint.rootHash);
  if (root !== offered.root) {
    throw new WitnessFailure('root_mismatch', `the signed checkpoint of size ${offered.size} has root ${root}, but the receipt named ${offered.root}`);
  }
  return checkpoint;
}

/** A consistency proof answer as the collector sends it (`GET /proofs/consistency`). */
export interface ConsistencyAnswer {
  from: number;
  to: number;
  path: readonly string[];
}

/** The proof's hashes, after checking that the answer is for the sizes asked. */
export function decodeConsistencyAnswer(answer: ConsistencyAnswer, from: number, to: number): Buffer[] {
  if (answer.from !== from || answer.to !== to) {
    throw new WitnessFailure('bad_proof', `asked for a consistency proof ${from} → ${to}, got one for ${answer.from} → ${answer.to}`);
  }
  return answer.path.map((element, i) => {
    if (!BASE64URL_HASH.test(element)) throw new WitnessFailure('bad_proof', `consistency proof element ${i} is not a base64url ${HASH_SIZE}-byte hash`);
    return fromBase64Url(element);
  });
}

/**
 * Throws WitnessFailure unless `proof` shows the tree `next` extending the tree `previous`
 * (RFC 9162 §2.1.4.2). `previous.size` MUST be at least 1 (nothing is proved from the empty tree).
 */
export function verifyConsistencyStep(previous: CheckpointRef, next: CheckpointRef, proof: readonly Buffer[]): void {
  try {
    verifyConsistency(previous.size, next.size, proof, fromBase64Url(previous.root), fromBase64Url(next.root));
  } catch (err) {
    if (!(err instanceof MerkleProofError)) throw err;
    const reason = err instanceof InvalidProofShapeError ? 'bad_proof' : 'inconsistent';
    throw new WitnessFailure(reason, `checkpoint ${next.size} is not consistent with the verified checkpoint ${previous.size}: ${err.message}`);
  }
}
