/**
 * Backpressure on batch ingest: how many batches may be in each of ingest's two queues, and the
 * named refusal past either bound (tessera's ErrPushback).
 *
 * - Check queue: batches admitted to be checked (agent keys read, then parse, schema, hashes and
 *   signatures in a batch-check worker). At most `checkSlots` run at once (workers × tasks per
 *   worker); `checkQueue` more may wait for a worker.
 * - Write queue: checked batches waiting for the single write transaction. One is in it;
 *   `writeQueue` more may wait.
 *
 * Past either bound a batch is refused with 503 `ingest.busy` and `Retry-After` (IngestBusyError)
 * and nothing of it is stored; the agent keeps it and sends it again after Retry-After
 * (agent/sync/retry.ts). The batch route asks `assertRoom` before authentication and before
 * reading the body, so a refusal costs no signature check, no jti write and no body; the bounds
 * themselves are held by `enterCheck` and `enterWrite` (a batch whose body was being read while
 * the queue filled is refused there, still before anything is stored).
 *
 * Counting is synchronous, on the event loop: no locks, O(1) per batch.
 */
import { ProblemError } from '../../shared/problem.ts';

export type IngestQueue = 'check' | 'write';

export interface IngestBounds {
  /** Batches checked at once: batch-check workers × tasks per worker. */
  checkSlots: number;
  /** Batches that may wait for a batch-check worker beyond `checkSlots`. */
  checkQueue: number;
  /** Checked batches that may wait for the write transaction beyond the one in it. */
  writeQueue: number;
}

export interface IngestLoad {
  /** Batches in the check queue (being checked or waiting for a worker). */
  checking: number;
  /** Checked batches in the write queue (in the write transaction or waiting for it). */
  writing: number;
}

/**
 * Retry-After of a refusal: 1–3 s, at random, so that agents refused together do not all come
 * back in the same second. A queue drains in well under a second (a 500-record batch is checked
 * in tens of milliseconds), so a longer wait would only leave the collector idle.
 */
export const INGEST_BUSY_RETRY_AFTER_SECONDS = { min: 1, max: 3 } as const;

/** Past a bound of ingest's queues: answered 503 `ingest.busy` with Retry-After; nothing was stored. */
export class IngestBusyError extends ProblemError {
  override name = 'IngestBusyError';
  /** The queue that was full. */
  readonly queue: IngestQueue;
  readonly load: IngestLoad;

  constructor(queue: IngestQueue, load: IngestLoad, retryAfterSeconds: number) {
    super(
      'ingest.busy',
      `the collector's ${queue === 'check' ? 'batch-check' : 'write'} queue is full; nothing of the batch was stored; send it again after ${retryAfterSeconds} s`,
      { retryAfterSeconds },
      retryAfterSeconds,
    );
    this.queue = queue;
    this.load = load;
  }
}

export class IngestAdmission {
  readonly bounds: IngestBounds;
  /** Refusals since start, by the queue that was full (ingest_busy_total{queue}). */
  readonly refusals: { [Q in IngestQueue]: number } = { check: 0, write: 0 };
  readonly #maxChecking: number;
  readonly #maxWriting: number;
  readonly #random: () => number;
  #checking = 0;
  #writing = 0;

  constructor(bounds: IngestBounds, options: { random?: () => number } = {}) {
    for (const [name, value] of Object.entries(bounds)) {
      if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a whole number ≥ 0, not ${value}`);
    }
    if (bounds.checkSlots < 1) throw new RangeError('checkSlots must be at least 1');
    this.bounds = { ...bounds };
    this.#maxChecking = bounds.checkSlots + bounds.checkQueue;
    this.#maxWriting = 1 + bounds.writeQueue;
    this.#random = options.random ?? Math.random;
  }

  get load(): IngestLoad {
    return { checking: this.#checking, writing: this.#writing };
  }

  /** Throws IngestBusyError if a batch arriving now would be refused; reserves nothing. */
  assertRoom(): void {
    if (this.#checking >= this.#maxChecking) throw this.#refuse('check');
    if (this.#writing >= this.#maxWriting) throw this.#refuse('write');
  }

  /**
   * Takes a place in the check queue, or throws IngestBusyError (also if the write queue is full:
   * the batch would only be refused after its check). The returned release MUST be called once
   * the check is over, however it ended; calling it again does nothing.
   */
  enterCheck(): () => void {
    this.assertRoom();
    this.#checking++;
    return once(() => this.#checking--);
  }

  /** Takes a place in the write queue, or throws IngestBusyError. Release as for enterCheck. */
  enterWrite(): () => void {
    if (this.#writing >= this.#maxWriting) throw this.#refuse('write');
    this.#writing++;
    return once(() => this.#writing--);
  }

  #refuse(queue: IngestQueue): IngestBusyError {
    this.refusals[queue]++;
    const { min, max } = INGEST_BUSY_RETRY_AFTER_SECONDS;
    return new IngestBusyError(queue, this.load, min + Math.floor(this.#random() * (max - min + 1)));
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
