/**
 * What the witness keeps in the outbox, read without loading the HTTP client, so that `status`
 * (often another process) and `witness clear` can show it:
 *
 * - the `witness.alarm` state: the active alarm (WitnessAlarm), until an operator clears it. Its
 *   presence freezes the witness: nothing more is verified or alarmed until `witness clear`.
 * - the `witness.lastError` state: the last transient failure (network, timeout, 5xx…), cleared
 *   by the next success. Not an alarm: the check is retried.
 * - the last verified checkpoint, in its own table (`witness_checkpoint`, schema 2).
 *
 * The stored shapes are part of the outbox's format (agent/outbox/state-values.ts).
 */
import type { SqliteOutbox } from '../outbox/sqlite-outbox.ts';
import type { WitnessAlarm, WitnessErrorInfo } from '../outbox/state-values.ts';

export { WITNESS_ALARM_REASONS } from '../outbox/state-values.ts';
export type { CheckpointRef, WitnessAlarm, WitnessAlarmReason, WitnessErrorInfo } from '../outbox/state-values.ts';

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

/** The witness part of `status --json`. */
export interface WitnessStatus {
  /** The last verified checkpoint. */
  verified: { size: number; root: string; verifiedAt: string } | null;
  lastError: WitnessErrorInfo | null;
}

export function readWitnessAlarm(outbox: SqliteOutbox): WitnessAlarm | null {
  return outbox.state.witness.alarm.get() ?? null;
}

export function readWitnessStatus(outbox: SqliteOutbox): WitnessStatus {
  const verified = outbox.witnessCheckpoint();
  return {
    verified: verified ? { size: verified.size, root: verified.root, verifiedAt: verified.verifiedAt } : null,
    lastError: outbox.state.witness.lastError.get() ?? null,
  };
}
