/**
 * Runs the per-record checks (record-check.ts) on every core. Ed25519 verification is the cost
 * of checking a bundle (≈7k verifies per second per core), so chunks of lines go to a piscina
 * pool of worker threads sized to the cores; with `threads: 0` they run inline on the main
 * thread (small bundles, where starting workers costs more than it saves).
 *
 * Why not the collector's SignaturePool: it checks one agent's batch against one key and stops
 * at the first bad record, over parsed objects. A bundle mixes agents and rotated keys, must
 * report every bad record, and must check the exact bytes of each line; and the verifier must
 * not depend on collector code. The piscina pattern (worker file next to this one, same
 * extension from source or dist/) is the same.
 */
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { checkRecordChunk, type ChunkResult, type RecordCheckContext, type RecordChunk } from './record-check.ts';

const WORKER_URL = new URL(`./record-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** Default: one worker per core. */
export function defaultThreads(): number {
  return availableParallelism();
}

export class RecordPool {
  readonly threads: number;
  readonly #context: RecordCheckContext;
  readonly #pool: Piscina<RecordChunk, ChunkResult> | undefined;

  constructor(context: RecordCheckContext, threads: number) {
    this.threads = threads;
    this.#context = context;
    this.#pool =
      threads > 0
        ? new Piscina<RecordChunk, ChunkResult>({ filename: WORKER_URL.href, minThreads: threads, maxThreads: threads, workerData: context })
        : undefined;
  }

  check(chunk: RecordChunk): Promise<ChunkResult> {
    if (!this.#pool) return Promise.resolve(checkRecordChunk(this.#context, chunk));
    return this.#pool.run(chunk);
  }

  async close(): Promise<void> {
    await this.#pool?.destroy();
  }
}
