import assert from 'node:assert/strict';
import fc from 'fast-check';
import { backoffCeiling, fullJitterDelay } from '../../../agent/sync/backoff.ts';

const policy = { baseMs: 500, maxMs: 300_000 };

describe('agent/sync/backoff', () => {
  it('doubles the ceiling per attempt from the base up to the maximum', () => {
    assert.deepEqual([0, 1, 2, 3].map((n) => backoffCeiling(n, policy)), [500, 1000, 2000, 4000]);
    assert.equal(backoffCeiling(9, policy), 256_000);
    assert.equal(backoffCeiling(10, policy), 300_000);
    assert.equal(backoffCeiling(5000, policy), 300_000, 'a huge attempt count neither overflows nor exceeds the maximum');
  });

  it('draws every delay from [0, ceiling) whatever the random source returns', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, r) => {
        const delay = fullJitterDelay(attempt, policy, () => r);
        assert.ok(Number.isInteger(delay));
        assert.ok(delay >= 0 && delay < Math.max(1, backoffCeiling(attempt, policy)), `${delay} for attempt ${attempt}`);
      }),
    );
  });

  it('spans the whole range: zero at random 0, just under the ceiling near 1', () => {
    assert.equal(fullJitterDelay(3, policy, () => 0), 0);
    assert.equal(fullJitterDelay(3, policy, () => 0.999999), 3999);
    assert.equal(fullJitterDelay(3, policy, () => 0.5), 2000);
  });

  it('spreads a fleet: delays for the same attempt are not all alike', () => {
    const delays = new Set(Array.from({ length: 50 }, () => fullJitterDelay(6, policy)));
    assert.ok(delays.size > 10, `only ${delays.size} distinct delays`);
  });
});
