/**
 * Ed25519 verification of batch records in a pool of worker threads (piscina).
 *
 * Signature checks are the collector's bottleneck (≈10k verifies per second per core), so they
 * run off the event loop, a batch split into chunks across the workers. Each worker also
 * returns the canonical text, record hash and leaf hash of every record, which the ledger
 * needs anyway: every record is canonicalised exactly once, in a worker.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { SignedRecord } from '../../shared/record.ts';
import type { VerifyChunkResult, VerifyChunkTask } from './signature-worker.ts';

/** Smallest chunk worth a hop to a worker thread. */
export const MIN_CHUNK_RECORDS = 32;

/** The worker file next to this one, with this file's extension (.ts from source, .js from dist/). */
const WORKER_URL = new URL(`./signature-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

export interface VerifiedRecord {
  canonical: string;
  /** base64url sha256 of the canonical bytes. */
  recordHash: string;
  /** RFC 9162 leaf hash of the canonical bytes. */
  leafHash: Buffer;
}

export type VerifyOutcome =
  | { ok: true; records: VerifiedRecord[] }
  | { ok: false; index: number; reason: string };

export class SignaturePool {
  readonly threads: number;
  readonly #pool: Piscina<VerifyChunkTask, VerifyChunkResult>;

  constructor(options: { threads: number }) {
    this.threads = options.threads;
    this.#pool = new Piscina<VerifyChunkTask, VerifyChunkResult>({
      filename: WORKER_URL.href,
      minThreads: options.threads,
      maxThreads: options.threads,
      idleTimeout: 60_000,
      // A second task waits in each worker: better-sqlite3 blocks the event loop for each
      // batch's transaction, and a worker that finishes meanwhile would otherwise sit idle
      // until the loop can hand it the next chunk. The task is synchronous, so the two run
      // back to back, never interleaved.
      concurrentTasksPerWorker: 2,
    });
  }

  /**
   * Verifies every record against the Ed25519 key with base64url `publicKeyX`. Resolves with
   * the first failing record's index (in batch order) or with every record's hashes, in order.
   */
  async verify(records: readonly SignedRecord[], publicKeyX: string): Promise<VerifyOutcome> {
    const chunkSize = Math.max(MIN_CHUNK_RECORDS, Math.ceil(records.length / this.threads));
    const starts: number[] = [];
    for (let start = 0; start < records.length; start += chunkSize) starts.push(start);
    const results = await Promise.all(
      starts.map((start) => this.#pool.run({ publicKeyX, records: records.slice(start, start + chunkSize) })),
    );
    const verified: VerifiedRecord[] = [];
    for (let c = 0; c < results.length; c++) {
      const result = results[c]!;
      if (!result.ok) return { ok: false, index: starts[c]! + result.index, reason: result.reason };
      const leaves = Buffer.from(result.leafHashes.buffer, result.leafHashes.byteOffset, result.leafHashes.byteLength);
      for (let i = 0; i < result.canonical.length; i++) {
        verified.push({
          canonical: result.canonical[i]!,
          recordHash: result.recordHashes[i]!,
          leafHash: Buffer.from(leaves.subarray(32 * i, 32 * i + 32)),
        });
      }
    }
    return { ok: true, records: verified };
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}
