/**
 * The shapes of the JSON values the outbox's `state` table holds (state-table.ts names the key of
 * each). They belong to the on-disk format, not only to the module that writes them: `status`
 * and `verify`, often in another process and possibly of another agent version, read what the
 * writer stored. So a field may be added, never renamed or removed, and stored codes
 * (WITNESS_ALARM_REASONS) are never renamed. What each value means is its writer's business:
 * enrollment (Pins), the sync loop (agent/sync/), the witness (agent/witness/), the buffer cap
 * (buffer-cap.ts, DropCounter).
 */
import type { Ed25519PublicJwk } from '../../shared/crypto.ts';
import type { Receipt } from '../../shared/protocol.ts';

// ---- enrollment ---------------------------------------------------------------------------

/** Collector facts pinned at enrollment. */
export interface Pins {
  collector: string;
  origin: string;
  logKey: string;
  receiptKey: Ed25519PublicJwk;
  agent: string;
  epoch: number;
  kid: string;
  enrolledAt: string;
}

// ---- the sync loop ------------------------------------------------------------------------

/** The newest verified receipt, as `status` shows it; the witness re-offers its checkpoint at start. */
export type LastReceipt = Pick<Receipt, 'batchId' | 'epoch' | 'highestSeq' | 'accepted' | 'duplicates' | 'ledger' | 'checkpoint' | 'receivedAt'> & {
  verifiedAt: string;
};

/** What `status --json` shows as the sync loop's last error. */
export interface SyncErrorInfo {
  at: string;
  reason: string;
  detail: string;
  status?: number | undefined;
  code?: string | undefined;
  /** The collector refused the batch and retrying would not help; retried only after a long delay. */
  refused: boolean;
  batchId: string;
  traceId: string;
  firstSeq: number;
  lastSeq: number;
}

export type CircuitState = 'closed' | 'open' | 'half-open';

/** The circuit breaker's state (agent/sync/circuit-breaker.ts), as the sync loop persists it. */
export interface CircuitSnapshot {
  state: CircuitState;
  consecutiveFailures: number;
  /** When an open circuit lets the next trial through (ISO), else null. */
  openUntil: string | null;
}

// ---- the witness --------------------------------------------------------------------------

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

/** The active witness alarm (agent/witness/witness-alarm.ts), until an operator clears it. */
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
