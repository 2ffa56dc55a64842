/**
 * Clock skew (DESIGN: "each record gets the collector's receive time; an `at` far from it is kept
 * as sent and counted as clock skew for that agent"). Order never comes from `at` — the ledger
 * orders by seq — and `at` is stored exactly as signed. This module only judges whether an `at`
 * is plausible, per (agent, epoch), and keeps the counts that `agents list --json` reports.
 *
 * ## The rule
 * An old `at` alone proves nothing: an office that was offline for two days legitimately sends
 * records written two days ago. So a record's `at` (A) is implausible, with tolerance T
 * (`SAKSHYA_CLOCK_SKEW_TOLERANCE`), if
 * 1. **ahead**: A > R + T, R = the collector's receive time of the batch — nothing can be written
 *    in the future;
 * 2. **backwards**: A < (the `at` of the previous seq of the same chain) − T — the agent writes its
 *    records in seq order, so a chain's `at` going back by more than T means its clock jumped
 *    back (or the earlier one was ahead);
 * 3. **behind**: seq > S and A < C − T, where C is the receive time of the newest batch that
 *    carried the agent's WHOLE backlog (its `backlog.pending` ≤ the records it sent) and S that
 *    batch's last seq. A record after S did not exist when that batch was built — just before C
 *    — so it cannot have been written long before C: the agent's clock is behind. This is the
 *    "older than its reported backlog can explain" test; an outage backlog passes it, because
 *    every record in it was written after the agent's last caught-up batch.
 * A record counts once, under the first rule it breaks, in this order. The offsets are reported in
 * milliseconds: how far ahead of R, how far back from the previous `at`, how far behind C.
 *
 * Limits (documented for operators in docs/operations-collector.md): rule 3 needs one caught-up batch of
 * the epoch first, so an agent whose clock is constantly behind is flagged from its second
 * round trip on; a clock behind by less than T, or a backwards jump of less than T, is not
 * flagged (that is what the tolerance is for); and a slow link stretches the time between a
 * batch's build and its receipt, which T must cover.
 */
import type { ClockSkewState, SkewRule } from '../store/store.ts';

export const DEFAULT_CLOCK_SKEW_TOLERANCE_MS = 5 * 60_000;

export interface ClockedRecord {
  seq: number;
  at: string;
}

export interface ClockedBatch {
  /** The collector's receive time. */
  receivedAt: string;
  /** The agent's reported backlog when it built the batch (records in the batch included). */
  backlogPending: number;
  /** Every record the batch carried (duplicates included): the new ones are given separately. */
  recordCount: number;
  /** The highest seq in the batch. */
  lastSeq: number;
}

export interface ClockAssessment {
  state: ClockSkewState;
  /** Records of this batch found implausible, by rule. */
  flagged: { [R in SkewRule]: number };
}

/** The state of a chain nothing has been judged for yet. */
export function emptyClockSkewState(): ClockSkewState {
  return {
    lastSeq: 0,
    lastAt: null,
    caughtUpSeq: null,
    caughtUpAt: null,
    implausible: 0,
    ahead: 0,
    backwards: 0,
    behind: 0,
    maxAheadMs: null,
    maxBackwardsMs: null,
    maxBehindMs: null,
    lastSkew: null,
  };
}

/**
 * Judges the NEW records of one batch (ascending seq, continuing the stored chain) and returns the
 * chain's next state. Pure: the caller stores the state in the batch's transaction.
 */
export function assessClock(previous: ClockSkewState | undefined, records: readonly ClockedRecord[], batch: ClockedBatch, toleranceMs: number): ClockAssessment {
  const state: ClockSkewState = { ...(previous ?? emptyClockSkewState()) };
  const flagged = { ahead: 0, backwards: 0, behind: 0 };
  const received = Date.parse(batch.receivedAt);
  const caughtUp = state.caughtUpAt === null ? undefined : Date.parse(state.caughtUpAt);
  let prevAt = state.lastAt === null ? undefined : Date.parse(state.lastAt);
  for (const record of records) {
    const at = Date.parse(record.at);
    let rule: SkewRule | undefined;
    let offsetMs = 0;
    if (at - received > toleranceMs) {
      rule = 'ahead';
      offsetMs = at - received;
      state.maxAheadMs = Math.max(state.maxAheadMs ?? 0, offsetMs);
    } else if (prevAt !== undefined && prevAt - at > toleranceMs) {
      rule = 'backwards';
      offsetMs = prevAt - at;
      state.maxBackwardsMs = Math.max(state.maxBackwardsMs ?? 0, offsetMs);
    } else if (caughtUp !== undefined && state.caughtUpSeq !== null && record.seq > state.caughtUpSeq && caughtUp - at > toleranceMs) {
      rule = 'behind';
      offsetMs = caughtUp - at;
      state.maxBehindMs = Math.max(state.maxBehindMs ?? 0, offsetMs);
    }
    if (rule !== undefined) {
      state[rule] += 1;
      state.implausible += 1;
      flagged[rule] += 1;
      state.lastSkew = { seq: record.seq, at: record.at, receivedAt: batch.receivedAt, rule, offsetMs };
    }
    prevAt = at;
    state.lastSeq = record.seq;
    state.lastAt = record.at;
  }
  if (batch.recordCount >= batch.backlogPending) {
    state.caughtUpSeq = batch.lastSeq;
    state.caughtUpAt = batch.receivedAt;
  }
  return { state, flagged };
}
