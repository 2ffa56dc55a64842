/**
 * Exponential backoff with full jitter (the "Full Jitter" of the AWS Architecture Blog's
 * "Exponential Backoff and Jitter"): the n-th retry waits a uniformly random time in
 * [0, min(max, base · 2^n)). Randomness spreads a fleet of agents that lost the collector at the
 * same moment, so they do not all come back in the same second.
 */

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

/** The upper bound of the wait before retry number `attempt` (0 for the first retry). */
export function backoffCeiling(attempt: number, policy: BackoffPolicy): number {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 52);
  return Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
}

/**
 * The wait in ms before retry number `attempt`: `floor(random() · ceiling)`. `random` MUST
 * return a number in [0, 1) (injectable for tests).
 */
export function fullJitterDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeiling(attempt, policy));
}
