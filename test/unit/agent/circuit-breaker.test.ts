import assert from 'node:assert/strict';
import { CircuitBreaker } from '../../../agent/sync/circuit-breaker.ts';

function breaker(threshold = 3, cooldownMs = 1000) {
  const clock = { now: 1_000_000 };
  return { clock, cb: new CircuitBreaker({ failureThreshold: threshold, cooldownMs, now: () => clock.now }) };
}

describe('agent/sync/circuit-breaker', () => {
  it('stays closed below the failure threshold and resets the count on success', () => {
    const { cb } = breaker(3);
    cb.recordFailure();
    cb.recordFailure();
    assert.equal(cb.state, 'closed');
    assert.equal(cb.allowRequest(), true);
    cb.recordSuccess();
    cb.recordFailure();
    cb.recordFailure();
    assert.equal(cb.state, 'closed', 'failures are counted consecutively');
  });

  it('opens after N consecutive failures and refuses requests during the cooldown', () => {
    const { cb, clock } = breaker(3, 1000);
    for (let i = 0; i < 3; i++) cb.recordFailure();
    assert.equal(cb.state, 'open');
    assert.equal(cb.allowRequest(), false);
    assert.equal(cb.msUntilTrial(), 1000);
    clock.now += 999;
    assert.equal(cb.allowRequest(), false);
    assert.deepEqual(cb.snapshot(), { state: 'open', consecutiveFailures: 3, openUntil: new Date(1_001_000).toISOString() });
  });

  it('lets exactly one trial through once the cooldown has passed (half-open)', () => {
    const { cb, clock } = breaker(2, 1000);
    cb.recordFailure();
    cb.recordFailure();
    clock.now += 1000;
    assert.equal(cb.allowRequest(), true);
    assert.equal(cb.state, 'half-open');
    assert.equal(cb.allowRequest(), false, 'no second request while the trial is out');
  });

  it('closes when the trial succeeds', () => {
    const { cb, clock } = breaker(2, 1000);
    cb.recordFailure();
    cb.recordFailure();
    clock.now += 1000;
    cb.allowRequest();
    cb.recordSuccess();
    assert.equal(cb.state, 'closed');
    assert.deepEqual(cb.snapshot(), { state: 'closed', consecutiveFailures: 0, openUntil: null });
    assert.equal(cb.allowRequest(), true);
  });

  it('opens again for a full cooldown when the trial fails', () => {
    const { cb, clock } = breaker(5, 1000);
    for (let i = 0; i < 5; i++) cb.recordFailure();
    clock.now += 1500;
    assert.equal(cb.allowRequest(), true);
    cb.recordFailure();
    assert.equal(cb.state, 'open');
    assert.equal(cb.msUntilTrial(), 1000);
    assert.equal(cb.allowRequest(), false);
  });

  it('refuses a threshold below one', () => {
    assert.throws(() => new CircuitBreaker({ failureThreshold: 0, cooldownMs: 1 }), RangeError);
  });
});
