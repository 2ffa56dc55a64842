import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ChainTracker, subtractRanges, type SeqRange } from '../../../verifier/chain-tracker.ts';
import { ProblemList } from '../../../verifier/problems.ts';
import type { RecordSummary } from '../../../verifier/record-check.ts';

/** Sorted, disjoint, non-adjacent ranges from a set of seqs. */
function rangesOf(seqs: Iterable<number>): SeqRange[] {
  const sorted = [...new Set(seqs)].sort((a, b) => a - b);
  const ranges: SeqRange[] = [];
  for (const seq of sorted) {
    const last = ranges.at(-1);
    if (last && seq === last.to + 1) last.to = seq;
    else ranges.push({ from: seq, to: seq });
  }
  return ranges;
}

describe('verifier/chain-tracker', () => {
  it('subtractRanges gives exactly the seqs of a that are not in b', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 60 })), fc.array(fc.integer({ min: 1, max: 60 })), (a, b) => {
        const inB = new Set(b);
        assert.deepEqual(subtractRanges(rangesOf(a), rangesOf(b)), rangesOf(a.filter((seq) => !inB.has(seq))));
      }),
    );
  });

  it('finds the undeclared part of a gap and the declared gap that is not missing', () => {
    const problems = new ProblemList();
    const tracker = new ChainTracker(
      [{ agent: 'AS-A-001', epoch: 1, firstSeq: 1, lastSeq: 10, records: 4, gaps: [{ from: 2, to: 3, reason: 'excluded-by-filter' }, { from: 9, to: 9, reason: 'not-in-ledger' }], dropped: [], revokedAt: null, revokedIndex: null, supersededBy: null }],
      [{ agent: 'AS-A-001', epoch: 1, enrolledAt: '2026-11-22T00:00:00.000Z', revokedAt: null, revokedIndex: null, supersededBy: null, keys: [] }],
      problems,
    );
    const record = (seq: number, line: number): RecordSummary => ({ line, parsed: true, id: `id-${seq}`, agent: 'AS-A-001', epoch: 1, seq, prev: `h${seq - 1}`, hash: `h${seq}`, kind: 'audit', problems: 0 });
    // Present: 1, 5, 9, 10 — so 2–4 and 6–8 are missing; 9 is declared missing but present.
    [1, 5, 9, 10].forEach((seq, i) => tracker.add(record(seq, i + 1)));
    const [verdict] = tracker.finish();
    assert.deepEqual(verdict!.undeclaredGaps, [{ from: 4, to: 4 }, { from: 6, to: 8 }]);
    assert.deepEqual(
      problems.listed.map((problem) => [problem.check, problem.found]),
      [
        ['chain.undeclared_gap', 'seq 4'],
        ['chain.undeclared_gap', 'seq 6–8'],
        ['manifest.gap_not_missing', 'seq 9'],
      ],
    );
    assert.equal(verdict!.complete, false);
  });

  it('names a broken prev link and a seq that goes backwards', () => {
    const problems = new ProblemList();
    const tracker = new ChainTracker([], [], problems);
    const base = { parsed: true, agent: 'AS-A-001', epoch: 1, kind: 'audit', problems: 0 } as const;
    tracker.add({ ...base, line: 1, id: 'a', seq: 1, prev: 'A'.repeat(43), hash: 'h1' });
    tracker.add({ ...base, line: 2, id: 'b', seq: 2, prev: 'not-h1', hash: 'h2' });
    tracker.add({ ...base, line: 3, id: 'c', seq: 2, prev: 'h1', hash: 'h2b' });
    assert.deepEqual(
      problems.listed.map((problem) => [problem.check, problem.line, problem.expected]),
      [
        ['chain.prev_mismatch', 2, 'h1'],
        ['chain.seq_order', 3, 'seq > 2'],
      ],
    );
  });
});
