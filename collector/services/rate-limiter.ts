/**
 * In-memory token buckets, one per key (an IP address, or a verified agent id). Hand-written
 * (≈60 lines, unit-tested) rather than a library: the collector needs exactly one algorithm,
 * an injected clock for tests, a bounded map and a Retry-After value, nothing else.
 *
 * A bucket holds at most `burst` tokens and gains `ratePerSecond` tokens a second; a request
 * takes one. An empty bucket answers how long until the next token: the caller sends that as
 * `Retry-After` (whole seconds, at least 1).
 *
 * Memory is bounded: at most `maxKeys` buckets. When the map is full, buckets that have refilled
 * (an idle key, indistinguishable from a new one) are dropped first; if none has, the oldest
 * keys are dropped. Dropping a bucket can only make the limiter more lenient for that key,
 * never stricter. State is per process (with several collector replicas, the limit is per
 * replica): it guards the process, it is not a quota.
 */

export interface RateLimit {
  /** Tokens added per second (> 0). */
  ratePerSecond: number;
  /** Bucket size: requests allowed at once after a quiet period (≥ 1). */
  burst: number;
}

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  /** ms timestamp of the last refill. */
  at: number;
}

export const DEFAULT_MAX_KEYS = 100_000;

export class RateLimiter {
  readonly limit: RateLimit;
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;
  readonly #maxKeys: number;

  constructor(limit: RateLimit, options: { now?: () => number; maxKeys?: number } = {}) {
    if (!(limit.ratePerSecond > 0) || !(limit.burst >= 1)) throw new Error('a rate limit needs ratePerSecond > 0 and burst >= 1');
    this.limit = limit;
    this.#now = options.now ?? Date.now;
    this.#maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
  }

  /** Takes one token from `key`'s bucket, or says how long to wait for one. */
  take(key: string): RateDecision {
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (bucket) {
      bucket.tokens = Math.min(this.limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.limit.ratePerSecond);
      bucket.at = now;
    } else {
      if (this.#buckets.size >= this.#maxKeys) this.#evict(now);
      bucket = { tokens: this.limit.burst, at: now };
      this.#buckets.set(key, bucket);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    const seconds = (1 - bucket.tokens) / this.limit.ratePerSecond;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(seconds)) };
  }

  /** Number of buckets held (for tests and metrics). */
  get size(): number {
    return this.#buckets.size;
  }

  #evict(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.limit.ratePerSecond >= this.limit.burst) this.#buckets.delete(key);
    }
    // Still full: drop the oldest tenth (Map keeps insertion order).
    if (this.#buckets.size >= this.#maxKeys) {
      let drop = Math.max(1, Math.floor(this.#maxKeys / 10));
      for (const key of this.#buckets.keys()) {
        if (drop-- <= 0) break;
        this.#buckets.delete(key);
      }
    }
  }
}
