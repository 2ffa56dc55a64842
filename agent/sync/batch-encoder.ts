/**
 * Encodes a batch for the wire: `{ batchId, agent, epoch, records, backlog, witness?, agentVersion? }`
 * as JSON, then gzip. `witness` is the newest checkpoint this agent verified (agent/witness/), if
 * any; `agentVersion` the version of the software sending it (shared/agent-version.ts).
 * Records are spliced in as their stored canonical text, never parsed and re-serialised, so the
 * bytes sent are the bytes signed.
 *
 * ## Why one gzip engine, reset between batches (BatchCompressor)
 * A new zlib deflate engine allocates ~260 KB of native state in ~64 KB blocks (window, hash
 * chains, pending buffer) from the main thread's malloc heap and frees it at the end. Doing that
 * a dozen times a second for a long drain fragments glibc's heap, which then grows and never
 * gives the memory back: the largest part of the agent's growth under a long backlog
 * (docs/perf/2026-11-benchmark-history.md, agent memory, has the figures). One engine per
 * syncer, finished with `Z_FINISH` and `reset()` for each batch, allocates that state once; each
 * batch is still a complete, independent gzip member. The JSON is built in pieces of
 * `RECORDS_PER_PIECE` records (~25 KB), so no batch-sized string (a V8 large object, freed only
 * by a full GC) is built, and copied through one reused buffer, so no buffer per piece either:
 * what is left per batch is the gzipped body itself. zlib runs on the thread pool, off the event
 * loop.
 */
import { constants, createGzip, type Gzip, type ZlibReset } from 'node:zlib';
import type { Backlog } from '../../shared/protocol.ts';

export interface BatchEnvelope {
  batchId: string;
  agent: string;
  epoch: number;
  backlog: Backlog;
  witness?: { size: number; root: string } | undefined;
  agentVersion?: string | undefined;
}

/** Records per piece of the batch JSON text: ~25 KB, far below V8's large-object size. */
const RECORDS_PER_PIECE = 32;

/** The batch JSON as consecutive pieces of text; joined, they are `encodeBatchJson`'s text. */
export function* batchJsonPieces(envelope: BatchEnvelope, canonicalRecords: readonly string[]): Generator<string> {
  yield `{"batchId":${JSON.stringify(envelope.batchId)},"agent":${JSON.stringify(envelope.agent)},"epoch":${envelope.epoch},"records":[`;
  for (let i = 0; i < canonicalRecords.length; i += RECORDS_PER_PIECE) {
    yield (i > 0 ? ',' : '') + canonicalRecords.slice(i, i + RECORDS_PER_PIECE).join(',');
  }
  yield `],"backlog":${JSON.stringify(envelope.backlog)}` +
    (envelope.witness ? `,"witness":${JSON.stringify({ size: envelope.witness.size, root: envelope.witness.root })}` : '') +
    (envelope.agentVersion !== undefined ? `,"agentVersion":${JSON.stringify(envelope.agentVersion)}` : '') +
    '}';
}

/** JSON text of a batch whose `records` are the given canonical record texts. */
export function encodeBatchJson(envelope: BatchEnvelope, canonicalRecords: readonly string[]): string {
  return [...batchJsonPieces(envelope, canonicalRecords)].join('');
}

/** Size of the reused input buffer the batch JSON is copied into on its way to zlib. */
const SCRATCH_BYTES = 64 * 1024;
/** zlib's output buffer: a whole gzipped batch (~85 KB at 500 records) usually fits in one. */
const OUTPUT_CHUNK_BYTES = 128 * 1024;

/**
 * Gzips batches with one reused zlib engine (see above). The JSON text is copied into one reused
 * 64 KB buffer and handed to zlib from there, a piece at a time: no new buffer per piece either.
 * One batch at a time: the syncer keeps one batch in flight; a second concurrent call is a
 * programming error and throws. After a zlib error the engine is dropped and the next batch
 * gets a fresh one.
 */
export class BatchCompressor {
  #engine: Gzip | undefined;
  #chunks: Buffer[] = [];
  #busy = false;
  readonly #scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);

  /** The gzip of `encodeBatchJson(envelope, canonicalRecords)`, a complete gzip member. */
  async gzip(envelope: BatchEnvelope, canonicalRecords: readonly string[]): Promise<Buffer> {
    if (this.#busy) throw new Error('BatchCompressor: one batch at a time');
    this.#busy = true;
    const engine = (this.#engine ??= this.#newEngine());
    const scratch = this.#scratch;
    let used = 0;
    // zlib has consumed a write's input when its callback runs: the scratch buffer is free again.
    const write = (chunk: Buffer | string) => new Promise<void>((resolve, reject) => engine.write(chunk, (err) => (err ? reject(err) : resolve())));
    const flushScratch = async () => {
      if (used > 0) await write(scratch.subarray(0, used));
      used = 0;
    };
    try {
      for (const piece of batchJsonPieces(envelope, canonicalRecords)) {
        const bytes = Buffer.byteLength(piece, 'utf8');
        if (used + bytes > scratch.length) await flushScratch();
        if (bytes > scratch.length) await write(piece); // larger than the buffer: zlib converts it
        else used += scratch.write(piece, used, 'utf8');
      }
      await flushScratch();
      await new Promise<void>((resolve, reject) => {
        engine.once('error', reject);
        // Every output chunk of this batch has been emitted to #chunks before the callback runs.
        engine.flush(constants.Z_FINISH, () => {
          engine.off('error', reject);
          resolve();
        });
      });
      // Node's reset() is deflateReset() for gzip too (@types/node lists it for Deflate only).
      (engine as Gzip & ZlibReset).reset();
      return Buffer.concat(this.#chunks);
    } catch (err) {
      this.#engine = undefined;
      engine.destroy();
      throw err;
    } finally {
      this.#chunks = [];
      this.#busy = false;
    }
  }

  /** Frees the engine's native state (the next `gzip` would make a new one). */
  close(): void {
    this.#engine?.destroy();
    this.#engine = undefined;
  }

  #newEngine(): Gzip {
    const engine = createGzip({ chunkSize: OUTPUT_CHUNK_BYTES });
    engine.on('data', (chunk: Buffer) => this.#chunks.push(chunk));
    // Errors reach the pending write or flush; this keeps one from being thrown as unhandled.
    engine.on('error', () => {});
    return engine;
  }
}
