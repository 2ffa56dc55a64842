/**
 * A circuit breaker for the collector link: after `failureThreshold` consecutive failed
 * attempts it opens and no request is sent for `cooldownMs`; then it lets one trial request
 * through (half-open): success closes it, failure opens it again for another cooldown.
 *
 * The state is a plain snapshot, so the syncer can persist it for `status --json` (its shape is
 * part of the outbox's stored state: agent/outbox/state-values.ts). A restarted
 * agent starts closed: restarting is an operator's way of saying "try now".
 */
import type { CircuitSnapshot, CircuitState } from '../outbox/state-values.ts';

export type { CircuitSnapshot, CircuitState };

export interface CircuitBreakerOptions {
  failureThreshold: number;
  cooldownMs: number;
  now?: () => number;
}

export class CircuitBreaker {
  readonly #threshold: number;
  readonly #cooldownMs: number;
  readonly #now: () => number;
  #state: CircuitState = 'closed';
  #failures = 0;
  #openUntil = 0;

  constructor(options: CircuitBreakerOptions) {
    if (!(options.failureThreshold >= 1)) throw new RangeError('failureThreshold must be at least 1');
    this.#threshold = options.failureThreshold;
    this.#cooldownMs = options.cooldownMs;
    this.#now = options.now ?? Date.now;
  }

  get state(): CircuitState {
    return this.#state;
  }

  /**
   * Whether a request may be sent now. An open circuit whose cooldown has passed turns
   * half-open and allows one trial; while that trial is out, further calls answer false.
   */
  allowRequest(): boolean {
    if (this.#state === 'closed') return true;
    if (this.#state === 'open' && this.#now() >= this.#openUntil) {
      this.#state = 'half-open';
      return true;
    }
    return false;
  }

  /** Milliseconds until an open circuit allows a trial (0 when closed or half-open). */
  msUntilTrial(): number {
    return this.#state === 'open' ? Math.max(0, this.#openUntil - this.#now()) : 0;
  }

  recordSuccess(): void {
    this.#state = 'closed';
    this.#failures = 0;
    this.#openUntil = 0;
  }

  recordFailure(): void {
    this.#failures += 1;
    if (this.#state === 'half-open' || this.#failures >= this.#threshold) {
      this.#state = 'open';
      this.#openUntil = this.#now() + this.#cooldownMs;
    }
  }

  snapshot(): CircuitSnapshot {
    return {
      state: this.#state,
      consecutiveFailures: this.#failures,
      openUntil: this.#state === 'open' ? new Date(this.#openUntil).toISOString() : null,
    };
  }
}
