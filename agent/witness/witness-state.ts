/**
 * The witness's keys in the outbox `state` table, and the shapes stored there, so that `status`
 * (often another process) and `witness clear` can read them without loading the HTTP client.
 *
 * - `witness.alarm`: the active alarm (WitnessAlarm), until an operator clears it. Its presence
 *   freezes the witness: nothing more is verified or alarmed until `witness clear`.
 * - `witness.lastError`: the last transient failure (network, timeout, 5xx…), cleared by the
 *   next success. Not an alarm: the check is retried.
 *
 * The last verified checkpoint itself is in its own table (`witness_checkpoint`, schema 2).
 */
import type { Receipt } from '../../shared/protocol.ts';
import type { SqliteOutbox } from '../outbox/sqlite-outbox.ts';

export const STATE_WITNESS_ALARM = 'witness.alarm';
export const STATE_WITNESS_LAST_ERROR = 'witness.lastError';

/** Record types the witness writes into the agent's own chain (kind `agent`). */
export const WITNESS_ALARM_RECORD_TYPE = 'witness.alarm';
export const WITNESS_CLEARED_RECORD_TYPE = 'witness.cleared';

/**
 * True for the record types only the witness writes (kind `agent`, type `witness.*`). Local
 * callers (the local API, `emit`) MUST be refused these: an alarm in the agent's chain has to
 * mean that the agent itself found the collector's log inconsistent.
 */
export function isWitnessRecordType(kind: string, type: string): boolean {
  return kind === 'agent' && type.startsWith('witness.');
}

/** A checkpoint as receipts name it: tree size and base64url root. */
export type CheckpointRef = Receipt['checkpoint'];

/**
 * Why the witness raised an alarm. Stable codes (they are stored, logged and shown), never
 * renamed. Each means the collector's log cannot be shown to extend what this agent verified.
 */
export const WITNESS_ALARM_REASONS = [
  /** The checkpoint is not a signed note that verifies with the pinned log key. */
  'bad_signature',
  /** Signed by the pinned key, but not a valid checkpoint of the pinned origin. */
  'bad_checkpoint',
  /** The signed checkpoint is for another tree size than the one asked for. */
  'size_mismatch',
  /** The signed checkpoint's root differs from the root the signed receipt named. */
  'root_mismatch',
  /** The consistency proof does not show the new tree extending the last verified one. */
  'inconsistent',
  /** The consistency proof answer is malformed (other sizes, hashes that are not 32 bytes …). */
  'bad_proof',
  /**
   * A receipt names a checkpoint smaller than the last verified one, and the collector cannot
   * show that it is a prefix of it: history was cut back (a collector restored from a backup).
   */
  'rolled_back',
  /** Two different roots for one tree size. */
  'equivocation',
  /** The collector refuses (4xx) to serve the checkpoint its receipt named, or the proof. */
  'refused',
  /** The pinned log key cannot be parsed, so no checkpoint can ever be verified. */
  'pinned_key_invalid',
] as const;

export type WitnessAlarmReason = (typeof WITNESS_ALARM_REASONS)[number];

export interface WitnessAlarm {
  reason: WitnessAlarmReason;
  detail: string;
  /** The last verified checkpoint (null before the first). */
  previous: CheckpointRef | null;
  /** The checkpoint that failed verification, as the receipt named it. */
  offered: CheckpointRef;
  raisedAt: string;
  /** The `witness.alarm` record written into the agent's own chain. */
  record: { id: string; epoch: number; seq: number };
  /** The batch whose receipt offered the checkpoint, when known. */
  traceId?: string | undefined;
  batchId?: string | undefined;
}

/** A transient failure of a witness check (retried with backoff; not an alarm). */
export interface WitnessErrorInfo {
  at: string;
  reason: string;
  detail: string;
  offered: CheckpointRef;
  retryAt: string;
}

/** The witness part of `status --json`. */
export interface WitnessStatus {
  /** The last verified checkpoint. */
  verified: { size: number; root: string; verifiedAt: string } | null;
  lastError: WitnessErrorInfo | null;
}

export function readWitnessAlarm(outbox: SqliteOutbox): WitnessAlarm | null {
  return outbox.getState<WitnessAlarm>(STATE_WITNESS_ALARM) ?? null;
}

export function readWitnessStatus(outbox: SqliteOutbox): WitnessStatus {
  const verified = outbox.witnessCheckpoint();
  return {
    verified: verified ? { size: verified.size, root: verified.root, verifiedAt: verified.verifiedAt } : null,
    lastError: outbox.getState<WitnessErrorInfo>(STATE_WITNESS_LAST_ERROR) ?? null,
  };
}
