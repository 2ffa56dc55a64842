/**
 * Per-principal rate limits that hold across collector replicas: the buckets live in the shared
 * database (CollectorStore.takeRateToken, one atomic statement per request, outside the writer's
 * lock). Per-address limits stay in each replica's memory (services/rate-limiter.ts): they guard
 * that process before anything is authenticated, and an address's share of several replicas is
 * what a load balancer in front already decides.
 *
 * A database that cannot answer does not stop the request here: it falls back to this
 * process's in-memory bucket, and the request then meets the database where it needs it (and
 * gets 503 there if it must).
 */
import type { CollectorStore, StoreUnavailableError } from '../store/store.ts';
import { RateLimiter, type RateDecision, type RateLimit } from './rate-limiter.ts';

/** What the principal limit needs: a bucket per key, possibly answered by the database. */
export interface PrincipalLimiter {
  take(key: string): RateDecision | Promise<RateDecision>;
}

export class SharedRateLimiter implements PrincipalLimiter {
  readonly limit: RateLimit;
  readonly #store: Required<Pick<CollectorStore, 'takeRateToken'>>;
  readonly #fallback: RateLimiter;
  readonly #now: () => number;

  constructor(store: Required<Pick<CollectorStore, 'takeRateToken'>>, limit: RateLimit, options: { now?: () => number } = {}) {
    this.limit = limit;
    this.#store = store;
    this.#now = options.now ?? Date.now;
    this.#fallback = new RateLimiter(limit, { now: this.#now });
  }

  async take(key: string): Promise<RateDecision> {
    try {
      return await this.#store.takeRateToken(key, this.limit, this.#now());
    } catch (err) {
      if ((err as StoreUnavailableError).name !== 'StoreUnavailableError') throw err;
      return this.#fallback.take(key);
    }
  }
}
