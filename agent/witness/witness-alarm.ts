/**
 * Raising and clearing the witness alarm. The alarm is durable state, not a log line only:
 *
 * ## Invariants
 * 1. Raising writes, in ONE transaction, the `witness.alarm` state key and one record
 *    `{ kind: agent, type: witness.alarm, body: { reason, detail, previous, offered } }` into the
 *    agent's own signed chain (which the collector and auditors receive). Both or neither.
 * 2. At most one alarm is active. While one is, raising again changes nothing (no second
 *    record): a forked collector fails every later check too, and the chain must not fill with
 *    copies of the same finding (each would be a new batch, a new receipt, a new failure …).
 * 3. Only an operator clears it (`sakshya-agent witness clear`), which writes a
 *    `witness.cleared` record in the same transaction that removes the alarm; with
 *    `--reset-trust` it also forgets the last verified checkpoint, so the next one is trusted on
 *    first use again (for a collector that was knowingly rebuilt). Without it, the witness goes
 *    on from the last checkpoint it verified, and a collector that still serves the rewritten
 *    history raises the alarm again at its next receipt.
 *
 * ## Crash behaviour
 * A crash before COMMIT leaves no alarm and no record: the next receipt that grows the log (or
 * the next start, from the last receipt) checks again and raises it then.
 */
import type { RecordSigner, SqliteOutbox } from '../outbox/sqlite-outbox.ts';
import {
  readWitnessAlarm,
  WITNESS_ALARM_RECORD_TYPE,
  WITNESS_CLEARED_RECORD_TYPE,
  type CheckpointRef,
  type WitnessAlarm,
  type WitnessAlarmReason,
} from './witness-state.ts';

const MAX_DETAIL_CHARS = 2000;

export interface AlarmInput {
  reason: WitnessAlarmReason;
  detail: string;
  previous: CheckpointRef | null;
  offered: CheckpointRef;
  traceId?: string | undefined;
  batchId?: string | undefined;
}

/**
 * Raises the alarm (see the header). Returns the active alarm and whether this call raised it.
 * MUST be durable on return.
 */
export function raiseWitnessAlarm(outbox: SqliteOutbox, key: RecordSigner, input: AlarmInput, now: Date = new Date()): { alarm: WitnessAlarm; raised: boolean } {
  return outbox.transaction(() => {
    const active = readWitnessAlarm(outbox);
    if (active !== null) return { alarm: active, raised: false };
    const detail = input.detail.length > MAX_DETAIL_CHARS ? `${input.detail.slice(0, MAX_DETAIL_CHARS)}…` : input.detail;
    const previous = input.previous === null ? null : { size: input.previous.size, root: input.previous.root };
    const offered = { size: input.offered.size, root: input.offered.root };
    const { record } = outbox.append(
      { kind: 'agent', type: WITNESS_ALARM_RECORD_TYPE, body: { reason: input.reason, detail, previous, offered } },
      key,
      now,
    );
    const alarm: WitnessAlarm = {
      reason: input.reason,
      detail,
      previous,
      offered,
      raisedAt: now.toISOString(),
      record: { id: record.id, epoch: record.epoch, seq: record.seq },
      traceId: input.traceId,
      batchId: input.batchId,
    };
    outbox.state.witness.alarm.set(alarm);
    outbox.state.witness.lastError.clear();
    return { alarm, raised: true };
  });
}

export interface ClearResult {
  /** The alarm that was cleared, or null if none was active. */
  cleared: WitnessAlarm | null;
  /** Whether the last verified checkpoint was forgotten. */
  resetTrust: boolean;
  /** The size of the checkpoint forgotten by resetTrust. */
  forgotten: CheckpointRef | null;
  /** The `witness.cleared` record, if one was written (not when there was nothing to do). */
  record: { id: string; epoch: number; seq: number } | null;
}

/** Clears the active alarm (and with `resetTrust` the last verified checkpoint), see the header. */
export function clearWitnessAlarm(outbox: SqliteOutbox, key: RecordSigner, options: { resetTrust: boolean }, now: Date = new Date()): ClearResult {
  return outbox.transaction((): ClearResult => {
    const alarm = readWitnessAlarm(outbox);
    const verified = outbox.witnessCheckpoint();
    const forgotten = options.resetTrust && verified ? { size: verified.size, root: verified.root } : null;
    if (alarm === null && forgotten === null) return { cleared: null, resetTrust: options.resetTrust, forgotten: null, record: null };
    const { record } = outbox.append(
      {
        kind: 'agent',
        type: WITNESS_CLEARED_RECORD_TYPE,
        body: {
          alarm: alarm ? { reason: alarm.reason, raisedAt: alarm.raisedAt, record: alarm.record.id, previous: alarm.previous, offered: alarm.offered } : null,
          resetTrust: options.resetTrust,
          forgotten,
        },
      },
      key,
      now,
    );
    outbox.state.witness.alarm.clear();
    outbox.state.witness.lastError.clear();
    if (options.resetTrust) outbox.clearWitnessCheckpoint();
    return { cleared: alarm, resetTrust: options.resetTrust, forgotten, record: { id: record.id, epoch: record.epoch, seq: record.seq } };
  });
}
