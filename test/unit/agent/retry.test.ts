import assert from 'node:assert/strict';
import { classifyOutcome, parseRetryAfter, type RetryDecision, type SendOutcome } from '../../../agent/sync/retry.ts';

const NOW = Date.parse('2026-11-22T04:00:00.000Z');

describe('agent/sync/retry classifier', () => {
  const table: Array<[string, SendOutcome, Partial<RetryDecision>]> = [
    ['a refused connection backs off and counts against the circuit', { kind: 'network', code: 'ECONNREFUSED', message: 'refused' }, { action: 'backoff', reason: 'network', countsAsFailure: true, shrinkBatch: false }],
    ['a reset connection backs off', { kind: 'network', code: 'ECONNRESET', message: 'reset' }, { action: 'backoff', reason: 'network' }],
    ['a timeout backs off with a smaller batch', { kind: 'timeout', phase: 'response' }, { action: 'backoff', reason: 'timeout', shrinkBatch: true, countsAsFailure: true }],
    ['a 408 is treated as a timeout', { kind: 'http', status: 408 }, { action: 'backoff', reason: 'timeout', shrinkBatch: true }],
    ['a 429 waits for Retry-After and does not count as a failure', { kind: 'http', status: 429, code: 'rate.limited', retryAfter: '7' }, { action: 'backoff', reason: 'rate_limited', retryAfterMs: 7000, countsAsFailure: false }],
    ['a 429 without Retry-After backs off', { kind: 'http', status: 429 }, { action: 'backoff', retryAfterMs: undefined }],
    ['a 500 backs off and counts', { kind: 'http', status: 500, code: 'internal.error' }, { action: 'backoff', reason: 'server_error', countsAsFailure: true, retryAfterMs: undefined }],
    ['a 503 honours an HTTP-date Retry-After', { kind: 'http', status: 503, code: 'service.unavailable', retryAfter: 'Sun, 22 Nov 2026 04:00:30 GMT' }, { action: 'backoff', reason: 'server_error', retryAfterMs: 30_000 }],
    ['a 503 ingest.busy waits for Retry-After, keeps the batch as it is and does not count as a failure', { kind: 'http', status: 503, code: 'ingest.busy', retryAfter: '2' }, { action: 'backoff', reason: 'collector_busy', retryAfterMs: 2000, shrinkBatch: false, countsAsFailure: false }],
    ['a 503 ingest.busy without Retry-After backs off', { kind: 'http', status: 503, code: 'ingest.busy' }, { action: 'backoff', reason: 'collector_busy', retryAfterMs: undefined }],
    ['a 503 service.unavailable still counts against the circuit', { kind: 'http', status: 503, code: 'service.unavailable', retryAfter: '5' }, { action: 'backoff', reason: 'server_error', retryAfterMs: 5000, countsAsFailure: true }],
    ['a 502 from a proxy backs off', { kind: 'http', status: 502 }, { action: 'backoff', reason: 'server_error' }],
    ['a 413 resends at once with a smaller batch', { kind: 'http', status: 413, code: 'batch.too_large' }, { action: 'resend', reason: 'too_large', shrinkBatch: true, fromSeq: undefined }],
    ['an out-of-order answer resends from the expected seq', { kind: 'http', status: 409, code: 'batch.out_of_order', expectedSeq: 41 }, { action: 'resend', reason: 'out_of_order', fromSeq: 41, shrinkBatch: false }],
    ['an out-of-order answer without an expected seq stops', { kind: 'http', status: 409, code: 'batch.out_of_order' }, { action: 'stop', reason: 'batch.out_of_order' }],
    ['an equivocation stops', { kind: 'http', status: 409, code: 'record.equivocation' }, { action: 'stop', reason: 'record.equivocation' }],
    ['an invalid token stops', { kind: 'http', status: 401, code: 'auth.invalid_token' }, { action: 'stop', reason: 'auth.invalid_token' }],
    ['a revoked agent stops', { kind: 'http', status: 403, code: 'agent.revoked' }, { action: 'stop', reason: 'agent.revoked' }],
    ['an invalid batch stops', { kind: 'http', status: 400, code: 'batch.invalid' }, { action: 'stop', reason: 'batch.invalid' }],
    ['a 4xx without a problem body stops with the status as reason', { kind: 'http', status: 404 }, { action: 'stop', reason: 'http_404' }],
    ['a redirect stops (the pinned URL is wrong)', { kind: 'http', status: 301 }, { action: 'stop', reason: 'http_301' }],
    ['a receipt that fails verification backs off and counts', { kind: 'bad_receipt', reason: 'signature' }, { action: 'backoff', reason: 'bad_receipt', countsAsFailure: true }],
  ];

  for (const [title, outcome, expected] of table) {
    it(title, () => {
      const decision = classifyOutcome(outcome, NOW);
      for (const [field, value] of Object.entries(expected)) {
        assert.deepEqual((decision as unknown as { [k: string]: unknown })[field], value, `${field} of ${JSON.stringify(decision)}`);
      }
    });
  }

  it('never retries a non-retryable 4xx immediately or with a short backoff', () => {
    for (let status = 400; status < 500; status++) {
      if ([408, 409, 413, 429].includes(status)) continue;
      assert.equal(classifyOutcome({ kind: 'http', status }, NOW).action, 'stop', `status ${status}`);
    }
  });
});

describe('agent/sync/retry Retry-After parsing', () => {
  it('reads delta-seconds', () => {
    assert.equal(parseRetryAfter('0', NOW), 0);
    assert.equal(parseRetryAfter('120', NOW), 120_000);
  });

  it('reads an HTTP date relative to now, and never returns a negative wait', () => {
    assert.equal(parseRetryAfter('Sun, 22 Nov 2026 04:01:00 GMT', NOW), 60_000);
    assert.equal(parseRetryAfter('Sun, 22 Nov 2026 03:00:00 GMT', NOW), 0);
  });

  it('ignores absent and unparseable values', () => {
    assert.equal(parseRetryAfter(undefined, NOW), undefined);
    assert.equal(parseRetryAfter('soon', NOW), undefined);
    assert.equal(parseRetryAfter('-5', NOW), undefined);
    assert.equal(parseRetryAfter('1.5', NOW), undefined);
  });
});
