import assert from 'node:assert/strict';
import { assessClock, emptyClockSkewState, type ClockedBatch } from '../../../collector/services/clock-skew.ts';

const T = 5 * 60_000;
const R = '2026-11-22T12:00:00.000Z';
const at = (offsetMs: number) => new Date(Date.parse(R) + offsetMs).toISOString();
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const batch = (over: Partial<ClockedBatch> = {}): ClockedBatch => ({ receivedAt: R, backlogPending: 1000, recordCount: 3, lastSeq: 3, ...over });

describe('collector/services/clock-skew', () => {
  it('accepts an outage backlog: old records in a chain whose clock only moves forward', () => {
    const records = [1, 2, 3].map((seq) => ({ seq, at: at(-2 * DAY + seq * HOUR) }));
    const { state, flagged } = assessClock(undefined, records, batch(), T);
    assert.deepEqual(flagged, { ahead: 0, backwards: 0, behind: 0 });
    assert.equal(state.implausible, 0);
    assert.equal(state.lastSeq, 3);
    assert.equal(state.lastAt, records[2]!.at);
    assert.equal(state.caughtUpSeq, null, 'the backlog was not drained by this batch');
  });

  it('flags records ahead of the receive time beyond the tolerance, with the largest offset', () => {
    const records = [
      { seq: 1, at: at(T) },
      { seq: 2, at: at(DAY) },
      { seq: 3, at: at(DAY + 1000) },
    ];
    const { state, flagged } = assessClock(undefined, records, batch(), T);
    assert.deepEqual(flagged, { ahead: 2, backwards: 0, behind: 0 });
    assert.equal(state.maxAheadMs, DAY + 1000);
    assert.deepEqual(state.lastSkew, { seq: 3, at: records[2]!.at, receivedAt: R, rule: 'ahead', offsetMs: DAY + 1000 });
  });

  it('flags a backwards jump between consecutive seqs, also across batches', () => {
    const first = assessClock(undefined, [{ seq: 1, at: at(-1000) }], batch({ recordCount: 1, lastSeq: 1 }), T);
    const { state, flagged } = assessClock(
      first.state,
      [
        { seq: 2, at: at(-HOUR) },
        { seq: 3, at: at(-HOUR + 1000) },
        { seq: 4, at: at(-HOUR - 60_000) },
      ],
      batch({ lastSeq: 4 }),
      T,
    );
    assert.deepEqual(flagged, { ahead: 0, backwards: 1, behind: 0 }, 'a jump back of 1 h is flagged once; a minute back is within the tolerance');
    assert.equal(state.maxBackwardsMs, HOUR - 1000);
    assert.equal(state.backwards, 1);
  });

  it('flags records written after a caught-up batch but dated long before it (a clock behind)', () => {
    // Batch 1 carried the whole backlog at R: the agent had nothing else pending.
    const caughtUp = assessClock(undefined, [{ seq: 1, at: at(-DAY) }], batch({ backlogPending: 1, recordCount: 1, lastSeq: 1 }), T);
    assert.equal(caughtUp.state.caughtUpSeq, 1);
    assert.equal(caughtUp.flagged.behind, 0, 'the first batch has nothing to compare with');
    const later = '2026-11-22T12:10:00.000Z';
    const { state, flagged } = assessClock(
      caughtUp.state,
      [
        { seq: 2, at: at(-DAY + 10 * 60_000) },
        { seq: 3, at: at(-DAY + 10 * 60_000 + 5) },
      ],
      batch({ receivedAt: later, backlogPending: 2, recordCount: 2, lastSeq: 3 }),
      T,
    );
    assert.deepEqual(flagged, { ahead: 0, backwards: 0, behind: 2 });
    assert.equal(state.maxBehindMs, DAY - 10 * 60_000);
    assert.equal(state.caughtUpAt, later);
  });

  it('counts each record once, under the first rule it breaks, and keeps the totals consistent', () => {
    const base = { ...emptyClockSkewState(), lastSeq: 1, lastAt: at(2 * DAY), caughtUpSeq: 1, caughtUpAt: R };
    const { state } = assessClock(base, [{ seq: 2, at: at(DAY) }], batch({ lastSeq: 2 }), T);
    assert.equal(state.implausible, 1);
    assert.equal(state.ahead, 1, 'ahead wins over backwards');
    assert.equal(state.implausible, state.ahead + state.backwards + state.behind);
  });
});
