/**
 * The one place that decides what a failed batch send means. Pure: the outcome of one attempt
 * in, a decision out; the syncer carries it out.
 *
 * | outcome                                   | decision                                          |
 * |-------------------------------------------|---------------------------------------------------|
 * | network error (refused, reset, DNS …)     | back off and retry; counts against the circuit    |
 * | timeout                                   | back off, retry with a smaller batch; counts      |
 * | 408                                       | as a timeout                                      |
 * | 429 `rate.limited`                        | wait Retry-After (else back off); not a failure   |
 * | 503 `ingest.busy` (collector's queues     | wait Retry-After (else back off); not a failure:  |
 * |   full; nothing stored)                   |   the collector is up and said when to come back  |
 * | 5xx (503 honours Retry-After)             | back off and retry; counts                        |
 * | 413 `batch.too_large`                     | resend at once with a smaller batch               |
 * | 409 `batch.out_of_order` + `expectedSeq`  | resend at once from `expectedSeq`                 |
 * | 2xx whose receipt is missing or invalid   | back off and retry; counts; logged at error       |
 * | any other 3xx/4xx (auth, invalid,         | stop: surface it (last error, log at error), try  |
 * |   equivocation, revoked, epoch …)         | again only after a long delay                     |
 */

export type SendOutcome =
  | { kind: 'network'; code: string; message: string }
  | { kind: 'timeout'; phase: string }
  | {
      kind: 'http';
      status: number;
      code?: string | undefined;
      detail?: string | undefined;
      expectedSeq?: number | undefined;
      retryAfter?: string | undefined;
    }
  | { kind: 'bad_receipt'; reason: string };

export type RetryDecision =
  /** Wait (Retry-After if given, else backoff), then retry. */
  | { action: 'backoff'; reason: string; retryAfterMs: number | undefined; shrinkBatch: boolean; countsAsFailure: boolean }
  /** Send again now: from `fromSeq` if given, with a smaller batch if `shrinkBatch`. */
  | { action: 'resend'; reason: string; fromSeq: number | undefined; shrinkBatch: boolean }
  /** Retrying will not help: surface the problem and wait long before trying again. */
  | { action: 'stop'; reason: string };

/**
 * Parses a Retry-After value (delta-seconds or an HTTP date) into milliseconds from `nowMs`.
 * Undefined if absent or unparseable; never negative.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/[a-z]/i.test(text)) return undefined;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

export function classifyOutcome(outcome: SendOutcome, nowMs: number = Date.now()): RetryDecision {
  switch (outcome.kind) {
    case 'network':
      return { action: 'backoff', reason: 'network', retryAfterMs: undefined, shrinkBatch: false, countsAsFailure: true };
    case 'timeout':
      return { action: 'backoff', reason: 'timeout', retryAfterMs: undefined, shrinkBatch: true, countsAsFailure: true };
    case 'bad_receipt':
      return { action: 'backoff', reason: 'bad_receipt', retryAfterMs: undefined, shrinkBatch: false, countsAsFailure: true };
    case 'http':
      return classifyHttp(outcome, nowMs);
  }
}

function classifyHttp(outcome: Extract<SendOutcome, { kind: 'http' }>, nowMs: number): RetryDecision {
  const { status, code } = outcome;
  if (status === 429) {
    return { action: 'backoff', reason: 'rate_limited', retryAfterMs: parseRetryAfter(outcome.retryAfter, nowMs), shrinkBatch: false, countsAsFailure: false };
  }
  if (status === 503 && code === 'ingest.busy') {
    return { action: 'backoff', reason: 'collector_busy', retryAfterMs: parseRetryAfter(outcome.retryAfter, nowMs), shrinkBatch: false, countsAsFailure: false };
  }
  if (status === 408) {
    return { action: 'backoff', reason: 'timeout', retryAfterMs: undefined, shrinkBatch: true, countsAsFailure: true };
  }
  if (status >= 500) {
    return { action: 'backoff', reason: 'server_error', retryAfterMs: parseRetryAfter(outcome.retryAfter, nowMs), shrinkBatch: false, countsAsFailure: true };
  }
  if (status === 413) {
    return { action: 'resend', reason: 'too_large', fromSeq: undefined, shrinkBatch: true };
  }
  if (status === 409 && code === 'batch.out_of_order' && Number.isSafeInteger(outcome.expectedSeq) && (outcome.expectedSeq as number) >= 1) {
    return { action: 'resend', reason: 'out_of_order', fromSeq: outcome.expectedSeq, shrinkBatch: false };
  }
  return { action: 'stop', reason: code ?? `http_${status}` };
}
