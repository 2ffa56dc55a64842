/**
 * Worker threads (piscina) that check batches: parse, validate, canonicalise, hash and verify
 * the signatures of a whole batch off the event loop (batch-check-worker.ts). Signature checks
 * are most of the collector's CPU; batches of different agents run on different workers at once.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { BatchCheckResult, BatchCheckTask } from './batch-check-worker.ts';

/** The worker file next to this one, with this file's extension (.ts from source, .js from dist/). */
const WORKER_URL = new URL(`./batch-check-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/**
 * A small young generation for the workers. By default V8 lets a worker's young generation grow
 * to 192 MiB; a batch's short-lived objects then spread over far more memory than the caches
 * hold. Capped at 16 MiB the workers spent 103–104 µs per record instead of 115–130 µs
 * (`node bench/run.ts --only ingest`, 2026-11-30: 4, 8, 16, 32, 64 MiB and the default tried;
 * 8–32 MiB alike). docs/benchmarks.md has the runs.
 */
const WORKER_YOUNG_GENERATION_MB = 16;

/**
 * A second task waits in each worker: better-sqlite3 blocks the event loop for each batch's
 * transaction, and a worker that finishes meanwhile would otherwise sit idle until the loop can
 * hand it the next batch. Tasks are synchronous: they run back to back.
 */
export const BATCH_CHECK_TASKS_PER_WORKER = 2;

export class BatchCheckPool {
  readonly threads: number;
  readonly #pool: Piscina<BatchCheckTask, BatchCheckResult>;

  constructor(options: { threads: number }) {
    this.threads = options.threads;
    this.#pool = new Piscina<BatchCheckTask, BatchCheckResult>({
      filename: WORKER_URL.href,
      minThreads: options.threads,
      maxThreads: options.threads,
      idleTimeout: 60_000,
      concurrentTasksPerWorker: BATCH_CHECK_TASKS_PER_WORKER,
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    });
  }

  /** Checks one batch. The body's bytes are moved to the worker: `task.body` is unusable after. */
  async check(task: BatchCheckTask): Promise<BatchCheckResult> {
    const body = task.body;
    // Only a whole ArrayBuffer can be transferred; a view into a shared one (small Buffers come
    // from Node's pool) is copied.
    const own = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength && body.buffer instanceof ArrayBuffer;
    const bytes = own ? body : new Uint8Array(body);
    return this.#pool.run({ ...task, body: bytes }, { transferList: [bytes.buffer as ArrayBuffer] });
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}
