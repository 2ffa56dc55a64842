import assert from 'node:assert/strict';
import { RateLimiter } from '../../../collector/services/rate-limiter.ts';

describe('rate limiter (token buckets)', () => {
  it('allows a burst, then refuses with the whole seconds until the next token, then refills at the rate', () => {
    let now = 0;
    const limiter = new RateLimiter({ ratePerSecond: 0.5, burst: 3 }, { now: () => now });
    assert.deepEqual([1, 2, 3].map(() => limiter.take('a').allowed), [true, true, true]);
    assert.deepEqual(limiter.take('a'), { allowed: false, retryAfterSeconds: 2 });
    now += 1000;
    assert.deepEqual(limiter.take('a'), { allowed: false, retryAfterSeconds: 1 });
    now += 1000;
    assert.equal(limiter.take('a').allowed, true);
    now += 60_000;
    assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a').allowed), [true, true, true, false], 'refills only up to the burst');
  });

  it('keeps one bucket per key', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1 }, { now: () => 0 });
    assert.equal(limiter.take('agent:A').allowed, true);
    assert.equal(limiter.take('agent:A').allowed, false);
    assert.equal(limiter.take('agent:B').allowed, true);
  });

  it('holds at most maxKeys buckets, dropping refilled ones first, so a flood of new keys cannot exhaust memory', () => {
    let now = 0;
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 2 }, { now: () => now, maxKeys: 100 });
    limiter.take('busy');
    limiter.take('busy');
    for (let i = 0; i < 10_000; i++) limiter.take(`ip-${i}`);
    assert.ok(limiter.size <= 100, `size ${limiter.size}`);
    now += 10;
    // 'busy' may have been dropped (more lenient, never stricter); the limiter still works.
    assert.equal(typeof limiter.take('busy').allowed, 'boolean');
  });

  it('refuses a rate of 0 or a burst below 1 at construction', () => {
    assert.throws(() => new RateLimiter({ ratePerSecond: 0, burst: 1 }));
    assert.throws(() => new RateLimiter({ ratePerSecond: 1, burst: 0 }));
  });
});
