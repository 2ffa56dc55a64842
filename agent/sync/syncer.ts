/**
 * The sync loop: moves pending records from the outbox to the collector, oldest first, and marks
 * them acknowledged only after a verified receipt covers them.
 *
 * One step = at most one request: read the next batch (bounded by count and bytes, an index range
 * read, so memory stays flat however large the backlog), send it, then act on the outcome as
 * retry.ts decides — acknowledge, back off (full jitter, Retry-After), resend at once (from the
 * collector's `expectedSeq`, or smaller after a 413), or stop and surface a refusal. A circuit
 * breaker keeps an unreachable collector from being hammered. `run` loops steps until aborted;
 * `drain` (for `sync --once`) loops until what was pending at its start is acknowledged, and
 * fails on the first error that needs waiting.
 *
 * Crash safety comes from the outbox: nothing is acknowledged before a verified receipt is
 * committed, and a record sent twice is a duplicate the collector skips.
 *
 * Every state change that `status --json` shows (last error, next attempt, circuit) is written to
 * the outbox's `state` table. Every log line about a batch carries its `traceId` and `batchId`.
 *
 * With a witness (agent/witness/witness.ts), every verified receipt's checkpoint is offered to it
 * after the acknowledgement is committed — the check runs in the background and never delays
 * acking — and each batch carries the newest checkpoint it verified as `batch.witness`.
 */
import type { SyncAttemptOutcome } from '../metrics/agent-metrics.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentVersion } from '../../shared/agent-version.ts';
import { publicKeyFromJwk } from '../../shared/crypto.ts';
import { newId } from '../../shared/ids.ts';
import type { Logger } from '../../shared/logger.ts';
import { newTraceContext } from '../../shared/trace.ts';
import type { RecordSigner, SqliteOutbox } from '../outbox/sqlite-outbox.ts';
import type { SyncErrorInfo } from '../outbox/state-values.ts';
import type { Witness } from '../witness/witness.ts';
import { AdaptiveBatchSize } from './batch-size.ts';
import { BatchCompressor } from './batch-encoder.ts';
import { fullJitterDelay, type BackoffPolicy } from './backoff.ts';
import { CircuitBreaker, type CircuitBreakerOptions } from './circuit-breaker.ts';
import type { BatchClient } from './client.ts';
import { checkReceipt, ReceiptRejectedError } from './receipt-check.ts';
import { classifyOutcome, type RetryDecision, type SendOutcome } from './retry.ts';

export type { SyncErrorInfo };

/** Immediate resends in a row (out of order, too large) before a drain gives up. */
const MAX_IMMEDIATE_RESENDS = 50;

export interface SyncerOptions {
  outbox: SqliteOutbox;
  client: BatchClient;
  key: RecordSigner;
  logger: Logger;
  batch: { maxRecords: number; maxBytes: number };
  backoff: BackoffPolicy;
  circuit: Omit<CircuitBreakerOptions, 'now'>;
  /** Wait after a refusal that retrying cannot fix. */
  refusedRetryMs: number;
  /** Idle poll interval of `run`. */
  idleIntervalMs: number;
  /** Checks the checkpoints that receipts name; optional (tests of the sync loop alone). */
  witness?: Witness | undefined;
  /** Told what each request to the collector came to (agent/metrics/agent-metrics.ts). */
  onAttempt?: ((outcome: SyncAttemptOutcome) => void) | undefined;
  /** Called after each acknowledgement is committed (the agent retires keys the collector no longer needs: ADR 0006). */
  onAcknowledged?: (() => void) | undefined;
  /** The version each batch reports as `agentVersion`; default this package's. */
  agentVersion?: string;
  random?: () => number;
  now?: () => number;
}

export type StepResult =
  | { kind: 'idle' }
  | { kind: 'acknowledged'; batchId: string; newlyAcked: number; highestSeq: number }
  | { kind: 'resend'; reason: string }
  | { kind: 'failed'; delayMs: number; error: SyncErrorInfo }
  | { kind: 'circuit_open'; delayMs: number };

export class SyncFailedError extends Error {
  override name = 'SyncFailedError';
  readonly info: SyncErrorInfo | undefined;
  constructor(message: string, info?: SyncErrorInfo) {
    super(message);
    this.info = info;
  }
}

export class Syncer {
  readonly #o: SyncerOptions;
  readonly #now: () => number;
  readonly #breaker: CircuitBreaker;
  readonly #size: AdaptiveBatchSize;
  readonly #receiptKey;
  readonly #agentVersion: string;
  /** One gzip engine for every batch: allocating one per batch fragmented the malloc heap. */
  readonly #compressor = new BatchCompressor();
  /** Consecutive backoff attempts (the exponent of the next backoff). */
  #attempt = 0;
  /** Where the collector asked us to resend from; otherwise the first unacknowledged seq. */
  #resendFrom: number | undefined;
  /** The `fromSeq` of the last out-of-order answer, to stop a loop of identical answers. */
  #lastOutOfOrder: number | undefined;

  constructor(options: SyncerOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#breaker = new CircuitBreaker({ ...options.circuit, now: this.#now });
    this.#size = new AdaptiveBatchSize(options.batch.maxRecords);
    this.#agentVersion = options.agentVersion ?? agentVersion();
    this.#receiptKey = publicKeyFromJwk(options.outbox.pins().receiptKey);
  }

  get batchSize(): number {
    return this.#size.current;
  }

  get circuit(): CircuitBreaker {
    return this.#breaker;
  }

  /** One attempt: at most one request. Never throws for collector or network trouble. */
  async step(signal?: AbortSignal): Promise<StepResult> {
    const { outbox, logger } = this.#o;
    const pins = outbox.pins();
    const chain = outbox.chain();
    const fromSeq = this.#resendFrom ?? chain.ackedSeq + 1;
    if (fromSeq > chain.headSeq) {
      this.#resendFrom = undefined;
      return { kind: 'idle' };
    }
    if (!this.#breaker.allowRequest()) {
      return { kind: 'circuit_open', delayMs: this.#breaker.msUntilTrial() };
    }
    const batch = outbox.readBatch(fromSeq, { maxRecords: this.#size.current, maxBytes: this.#o.batch.maxBytes });
    if (batch === undefined) {
      // The chain head says records exist from fromSeq on; a hole means a damaged outbox.
      throw new SyncFailedError(`outbox has no record ${fromSeq} although its head is ${chain.headSeq}`);
    }
    const batchId = newId();
    const trace = newTraceContext();
    const witnessed = outbox.witnessCheckpoint();
    const gzipped = await this.#compressor.gzip(
      {
        batchId,
        agent: pins.agent,
        epoch: pins.epoch,
        backlog: outbox.backlog(),
        witness: witnessed && { size: witnessed.size, root: witnessed.root },
        agentVersion: this.#agentVersion,
      },
      batch.records,
    );
    const about = { traceId: trace.traceId, batchId, firstSeq: batch.firstSeq, lastSeq: batch.lastSeq };
    logger.debug({ ...about, records: batch.records.length, bytes: batch.bytes, gzippedBytes: gzipped.length }, 'sending batch');

    const result = await this.#o.client.send({ batchId, gzipped, traceparent: trace.traceparent }, signal);
    if (signal?.aborted && !result.ok) {
      // Stopping, not failing: the records stay pending and nothing is recorded as an error.
      logger.info(about, 'batch send abandoned: stopping');
      return { kind: 'idle' };
    }
    let outcome: SendOutcome;
    if (result.ok) {
      try {
        await checkReceipt(result.signed, this.#receiptKey, { batchId, agent: pins.agent, epoch: pins.epoch, lastSeq: batch.lastSeq });
        const ack = outbox.markAcknowledged(result.signed, { traceId: trace.traceId, verifiedAt: new Date(this.#now()) });
        const { receipt } = result.signed;
        this.#onSuccess();
        this.#o.onAttempt?.('delivered');
        this.#resendFrom = receipt.highestSeq < ack.ackedSeq ? receipt.highestSeq + 1 : undefined;
        try {
          this.#o.onAcknowledged?.();
        } catch (err) {
          logger.error({ ...about, err }, 'post-acknowledgement step failed; the batch stays acknowledged');
        }
        logger.info(
          { ...about, accepted: receipt.accepted, duplicates: receipt.duplicates, highestSeq: receipt.highestSeq, newlyAcked: ack.newlyAcked, checkpointSize: receipt.checkpoint.size },
          'batch acknowledged',
        );
        try {
          this.#o.witness?.observe(receipt.checkpoint, { traceId: trace.traceId, batchId });
        } catch (err) {
          // The batch is acknowledged whatever happens here; the witness retries from the last receipt.
          logger.error({ ...about, err }, 'witness could not take the receipt\u2019s checkpoint');
        }
        return { kind: 'acknowledged', batchId, newlyAcked: ack.newlyAcked, highestSeq: receipt.highestSeq };
      } catch (err) {
        if (!(err instanceof ReceiptRejectedError)) throw err;
        outcome = { kind: 'bad_receipt', reason: err.message };
      }
    } else {
      outcome = result.outcome;
    }
    return this.#onFailure(outcome, classifyOutcome(outcome, this.#now()), about, batch.records.length, chain.headSeq);
  }

  /**
   * Sends until everything pending when it was called is acknowledged. Throws SyncFailedError
   * at the first failure that would need waiting (network, refusal, open circuit).
   */
  async drain(signal?: AbortSignal): Promise<{ acknowledged: number; batches: number }> {
    this.#o.witness?.start();
    try {
      return await this.#drain(signal);
    } finally {
      this.#compressor.close();
      // The witness checks of this drain's receipts finish before `sync --once` reports.
      await this.#o.witness?.settle();
    }
  }

  async #drain(signal?: AbortSignal): Promise<{ acknowledged: number; batches: number }> {
    const target = this.#o.outbox.chain().headSeq;
    let acknowledged = 0;
    let batches = 0;
    let resends = 0;
    while (this.#o.outbox.chain().ackedSeq < target || this.#resendFrom !== undefined) {
      const result = await this.step(signal);
      switch (result.kind) {
        case 'idle':
          return { acknowledged, batches };
        case 'acknowledged':
          acknowledged += result.newlyAcked;
          batches += 1;
          resends = 0;
          break;
        case 'resend':
          if (++resends > MAX_IMMEDIATE_RESENDS) throw new SyncFailedError(`gave up after ${MAX_IMMEDIATE_RESENDS} immediate resends (${result.reason})`);
          break;
        case 'failed':
          throw new SyncFailedError(describeSyncError(result.error), result.error);
        case 'circuit_open':
          throw new SyncFailedError(`circuit open: not contacting the collector for ${Math.ceil(result.delayMs / 1000)} s`);
      }
    }
    return { acknowledged, batches };
  }

  /** Steps until `signal` aborts, sleeping between them as each step says. */
  async run(signal: AbortSignal): Promise<void> {
    const { logger, outbox } = this.#o;
    // A fresh loop starts closed; replace whatever a previous (perhaps killed) loop left.
    outbox.state.sync.circuit.set(this.#breaker.snapshot());
    outbox.state.sync.nextAttemptAt.clear();
    this.#o.witness?.start();
    while (!signal.aborted) {
      let delayMs: number;
      try {
        const result = await this.step(signal);
        delayMs = result.kind === 'idle' ? this.#o.idleIntervalMs : result.kind === 'acknowledged' || result.kind === 'resend' ? 0 : result.delayMs;
      } catch (err) {
        if (signal.aborted) break;
        logger.error({ err }, 'sync step failed');
        delayMs = this.#nextBackoff();
      }
      if (delayMs > 0) await sleep(delayMs, undefined, { signal }).catch(() => undefined);
    }
    this.#compressor.close();
    this.#o.witness?.stop();
    await this.#o.witness?.settle();
  }

  #onSuccess(): void {
    const { outbox } = this.#o;
    this.#attempt = 0;
    this.#lastOutOfOrder = undefined;
    this.#breaker.recordSuccess();
    this.#size.grow();
    outbox.state.sync.lastError.clear();
    outbox.state.sync.nextAttemptAt.clear();
    outbox.state.sync.circuit.set(this.#breaker.snapshot());
  }

  #onFailure(
    outcome: SendOutcome,
    decision: RetryDecision,
    about: { traceId: string; batchId: string; firstSeq: number; lastSeq: number },
    batchRecords: number,
    headSeq: number,
  ): StepResult {
    const { outbox, logger } = this.#o;
    if (decision.action === 'resend') {
      const refusal = this.#checkResend(decision, about, batchRecords, headSeq);
      if (refusal === undefined) {
        if (decision.shrinkBatch) this.#size.shrink();
        if (decision.fromSeq !== undefined) {
          this.#lastOutOfOrder = decision.fromSeq;
          this.#resendFrom = decision.fromSeq;
        }
        logger.warn({ ...about, reason: decision.reason, resendFrom: decision.fromSeq, batchSize: this.#size.current }, 'resending batch');
        this.#o.onAttempt?.('resend');
        return { kind: 'resend', reason: decision.reason };
      }
      decision = { action: 'stop', reason: refusal };
    }

    const nowMs = this.#now();
    let delayMs: number;
    let refused = false;
    if (decision.action === 'backoff') {
      if (decision.shrinkBatch) this.#size.shrink();
      if (decision.countsAsFailure) this.#breaker.recordFailure();
      delayMs = decision.retryAfterMs !== undefined ? Math.min(decision.retryAfterMs, this.#o.backoff.maxMs) : this.#nextBackoff();
      if (this.#breaker.state === 'open') delayMs = Math.max(delayMs, this.#breaker.msUntilTrial());
    } else {
      refused = true;
      delayMs = this.#o.refusedRetryMs;
      this.#resendFrom = undefined;
    }
    this.#o.onAttempt?.(refused ? 'refused' : decision.reason);
    const info: SyncErrorInfo = {
      at: new Date(nowMs).toISOString(),
      reason: decision.reason,
      detail: describeOutcome(outcome),
      status: outcome.kind === 'http' ? outcome.status : undefined,
      code: outcome.kind === 'http' ? outcome.code : undefined,
      refused,
      ...about,
    };
    outbox.state.sync.lastError.set(info);
    outbox.state.sync.nextAttemptAt.set(new Date(nowMs + delayMs).toISOString());
    outbox.state.sync.circuit.set(this.#breaker.snapshot());
    const fields = { ...about, reason: info.reason, status: info.status, code: info.code, detail: info.detail, retryInMs: delayMs, circuit: this.#breaker.state };
    if (refused || outcome.kind === 'bad_receipt') logger.error(fields, refused ? 'batch refused by the collector' : 'receipt rejected; nothing acknowledged');
    else logger.warn(fields, 'batch send failed; will retry');
    return { kind: 'failed', delayMs, error: info };
  }

  /** Undefined if the resend makes sense, else why it does not (then it is a refusal). */
  #checkResend(
    decision: Extract<RetryDecision, { action: 'resend' }>,
    about: { firstSeq: number },
    batchRecords: number,
    headSeq: number,
  ): string | undefined {
    if (decision.shrinkBatch && batchRecords <= 1) return 'too_large_single_record';
    if (decision.fromSeq !== undefined) {
      if (decision.fromSeq > headSeq) return 'collector_ahead_of_agent';
      if (decision.fromSeq === about.firstSeq || decision.fromSeq === this.#lastOutOfOrder) return 'out_of_order_loop';
    }
    return undefined;
  }

  #nextBackoff(): number {
    const delay = fullJitterDelay(this.#attempt, this.#o.backoff, this.#o.random);
    this.#attempt += 1;
    return delay;
  }
}

function describeOutcome(outcome: SendOutcome): string {
  switch (outcome.kind) {
    case 'network':
      return `${outcome.code}: ${outcome.message}`;
    case 'timeout':
      return `timed out (${outcome.phase})`;
    case 'bad_receipt':
      return outcome.reason;
    case 'http':
      return outcome.detail ?? `HTTP ${outcome.status}`;
  }
}

export function describeSyncError(info: SyncErrorInfo): string {
  const where = info.status !== undefined ? `HTTP ${info.status}${info.code ? ` ${info.code}` : ''}` : info.reason;
  return `sync failed (${where}) for records ${info.firstSeq}..${info.lastSeq}: ${info.detail}`;
}
