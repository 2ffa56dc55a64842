/**
 * The collector's ingest path taken apart: the CPU cost of each stage per record, measured on
 * one thread of this process (no contention, no profiler), with the collector's own code on
 * realistic batches of 500. Together with the per-thread CPU of the real run it says which
 * stages stand between the collector and the Ed25519 verify limit.
 *
 * `npm run bench` runs this file in a fresh Node process (`node bench/ingest-stages.ts '<options
 * JSON>'` prints the result as JSON), so the heap the other benchmarks leave behind does not
 * slow the allocation-heavy stages (JSON.parse, zod) through extra garbage collection.
 *
 * Main-thread stages run once per batch in the collector's event loop; worker stages run in
 * the batch-check pool (collector/services/batch-check-worker.ts, called here directly, with
 * the gzip body as sent: the worker inflates it). The
 * hand-off back from the workers is approximated by `structuredClone` of what a worker returns
 * (postMessage serialises on one side and deserialises on the other; the body's bytes go to
 * the worker transferred, not copied). The agent
 * JWT's `jti` is remembered through the collector store's own `rememberJti` (its own write
 * transaction, WAL + synchronous=FULL) in a temp database. SQLite and Merkle costs come from
 * the bare insert loop and the Merkle benchmark of the same run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { jwtVerify } from 'jose';
import { readLimitedBody } from '../collector/http/json-body.ts';
import { decodeBody } from '../shared/body-encoding.ts';
import { acceptsBatch } from '../shared/batch-accept.ts';
import checkBatch, { type BatchCheckTask } from '../collector/services/batch-check-worker.ts';
import { defaultDatabaseUrl, openStore } from '../collector/store/open-store.ts';
import { signCheckpoint } from '../shared/checkpoint.ts';
import { canonicalJson } from '../shared/canonical-json.ts';
import { newId } from '../shared/ids.ts';
import { jsonDepthExceeds, MAX_JSON_DEPTH } from '../shared/json-text.ts';
import { fromBase64Url, generateSigningKey, publicKeyFromJwk, sha256, verifyEd25519 } from '../shared/crypto.ts';
import { batchSchema, MAX_BATCH_DECODED_BYTES, type Receipt } from '../shared/protocol.ts';
import { signReceipt } from '../shared/receipt.ts';
import { canonicalRecordText, leafHashOfCanonical, signingBytes, type SignedRecord } from '../shared/record.ts';
import { noteSignerFromSigningKey } from '../shared/signed-note.ts';
import { nowMs } from './lib/stats.ts';
import { SimulatedAgent } from './lib/workload.ts';

export interface StageCost {
  stage: string;
  where: 'main thread' | 'batch-check worker';
  /** CPU microseconds per record on one core. */
  micros: number;
  /** Part of the stage above it (not added again to the total). */
  partOf?: string;
  /** Not part of the work at all: a comparison (e.g. what a shortcut saves); never added to a total. */
  comparison?: true;
}

export interface StageCostResult {
  records: number;
  stages: StageCost[];
  /** Sum of the top-level stages: the modelled CPU cost of one record. */
  totalMicros: number;
  mainMicros: number;
  workerMicros: number;
}

/**
 * Every stage runs ROUNDS times for at least ROUND_MILLIS, the stages taking turns round by
 * round, so a slow spell of the machine hits them all alike; a stage's fastest round counts
 * (the least disturbed).
 */
const ROUNDS = 6;
const ROUND_MILLIS = 50;

const bodyLimits = { limit: MAX_BATCH_DECODED_BYTES, compressedLimit: MAX_BATCH_DECODED_BYTES, maxDepth: MAX_JSON_DEPTH };

/** A body as the HTTP server hands it over: in chunks of up to 64 KiB. */
function chunksOf(bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 64 * 1024) chunks.push(bytes.subarray(at, at + 64 * 1024));
  return chunks;
}

interface StageSpec {
  stage: string;
  where: StageCost['where'];
  partOf?: string;
  comparison?: true;
  /** Records handled per call of `run` (a per-batch stage divides by the batch size). */
  records: number;
  run: () => unknown;
}

async function timeRound(spec: StageSpec): Promise<number> {
  let runs = 0;
  const started = nowMs();
  do {
    await spec.run();
    runs++;
  } while (nowMs() - started < ROUND_MILLIS);
  return ((nowMs() - started) * 1000) / (runs * spec.records);
}

async function measureStages(specs: readonly StageSpec[]): Promise<StageCost[]> {
  for (const spec of specs) await spec.run(); // warm-up
  const best = specs.map(() => Number.POSITIVE_INFINITY);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, spec] of specs.entries()) best[i] = Math.min(best[i]!, await timeRound(spec));
  }
  return specs.map(({ stage, where, partOf, comparison }, i) => ({ stage, where, micros: best[i]!, ...(partOf ? { partOf } : {}), ...(comparison ? { comparison } : {}) }));
}

export async function benchIngestStages(options: {
  batches: number;
  batchSize: number;
  /** From the same run: rows/s of the bare insert loop and leaves/s of the Merkle append. */
  sqliteRowsPerSecond: number;
  merkleLeavesPerSecond: number;
}): Promise<StageCostResult> {
  const agent = new SimulatedAgent('BN-STG-001');
  const batches = Array.from({ length: options.batches }, () => agent.nextBatch(options.batchSize, 0));
  const n = options.batches * options.batchSize;
  const texts = batches.map((batch) => gunzipSync(batch.gzipped).toString('utf8'));
  const bodies = texts.map((text) => JSON.parse(text) as { records: SignedRecord[] });
  const records = bodies.flatMap((body) => body.records);
  const publicKey = publicKeyFromJwk(agent.key.publicJwk);
  const history = [{ fromSeq: 1, kid: agent.key.kid, publicJwk: agent.key.publicJwk }];
  /** Reads every batch's gzip body as the HTTP layer does, one batch after another; inflating it or not. */
  const readOneByOne = async (inflate: boolean) => {
    for (const batch of batches) await readLimitedBody(Readable.from(chunksOf(batch.gzipped)), 'gzip', bodyLimits, inflate);
  };
  const taskOf = (i: number): BatchCheckTask => ({
    body: batches[i]!.gzipped,
    encoding: 'gzip',
    maxDecodedBytes: MAX_BATCH_DECODED_BYTES,
    agent: agent.id,
    idempotencyKey: batches[i]!.batchId,
    epoch: 1,
    history,
    maxDepth: MAX_JSON_DEPTH,
  });
  const results = batches.map((_, i) => checkBatch(taskOf(i)));
  if (!results.every((result) => result.ok && !result.deferredRefusal)) throw new Error('the stage benchmark batches do not pass the batch check');
  const token = await agent.token('bench.sakshya.local/collector');
  const receiptKey = generateSigningKey().key;
  const logSigner = noteSignerFromSigningKey('bench.sakshya.local/collector', generateSigningKey().key);
  const receipt: Receipt = {
    v: 1,
    collector: 'bench.sakshya.local/collector',
    batchId: batches[0]!.batchId,
    agent: agent.id,
    epoch: 1,
    accepted: options.batchSize,
    duplicates: 0,
    highestSeq: batches[0]!.lastSeq,
    ledger: { first: 1000, last: 1000 + options.batchSize - 1 },
    checkpoint: { size: 1000 + options.batchSize, root: 'A'.repeat(43) },
    receivedAt: new Date().toISOString(),
  };
  const perBatch = options.batchSize;
  const storeDir = mkdtempSync(join(tmpdir(), 'sakshya-bench-stages-'));
  const store = openStore({ url: defaultDatabaseUrl(storeDir) });
  try {
    await store.migrate();
    return await measureAll();
  } finally {
    await store.close();
    rmSync(storeDir, { recursive: true, force: true });
  }

  async function measureAll(): Promise<StageCostResult> {

    const signed = records.map((record) => ({ bytes: signingBytes(record), sig: fromBase64Url(record.sig), canonical: Buffer.from(canonicalJson(record)) }));
    const WORKER_TASK = 'checkBatch (whole worker task)';
    const measured = await measureStages([
      {
        stage: 'read the gzip body (as sent, 64 KiB chunks)',
        where: 'main thread',
        records: n,
        run: () => readOneByOne(false),
      },
      // What the event loop did before the workers inflated batches themselves (wall time, one
      // batch at a time: the thread pool's share runs while the event loop waits for it).
      {
        stage: 'streaming gunzip of the body on the event loop (before; wall time)',
        where: 'main thread',
        comparison: true,
        records: n,
        run: () => readOneByOne(true),
      },
      {
        stage: 'hand-off of the result from the worker (structured clone)',
        where: 'main thread',
        records: n,
        run: () => results.forEach((result) => structuredClone(result)),
      },
      {
        stage: 'agent JWT verify (per batch)',
        where: 'main thread',
        records: perBatch,
        run: () => jwtVerify(token, publicKey, { audience: 'bench.sakshya.local/collector' }),
      },
      {
        stage: 'jti replay row, own write transaction + fsync (per batch)',
        where: 'main thread',
        records: perBatch,
        run: () => {
          const now = Math.floor(Date.now() / 1000);
          return store.rememberJti(newId(), agent.id, now + 300, now);
        },
      },
      { stage: 'receipt JWS signing (per batch)', where: 'main thread', records: perBatch, run: () => signReceipt(receipt, receiptKey.privateKey, receiptKey.kid) },
      {
        stage: 'checkpoint signed note (per batch)',
        where: 'main thread',
        records: perBatch,
        run: () => signCheckpoint({ origin: 'bench.sakshya.local/collector', size: 1500, rootHash: Buffer.alloc(32, 1), extensions: [] }, logSigner),
      },
      { stage: WORKER_TASK, where: 'batch-check worker', records: n, run: () => batches.forEach((_, i) => checkBatch(taskOf(i))) },
      {
        stage: 'inflate the body (gunzipSync into one buffer)',
        where: 'batch-check worker',
        partOf: WORKER_TASK,
        records: n,
        run: () => batches.forEach((batch) => decodeBody(batch.gzipped, 'gzip', MAX_BATCH_DECODED_BYTES)),
      },
      { stage: 'JSON.parse the body', where: 'batch-check worker', partOf: WORKER_TASK, records: n, run: () => texts.forEach((text) => JSON.parse(text)) },
      {
        stage: 'nesting-depth check of the body text (jsonDepthExceeds)',
        where: 'batch-check worker',
        partOf: WORKER_TASK,
        records: n,
        run: () => texts.forEach((text) => jsonDepthExceeds(text, MAX_JSON_DEPTH)),
      },
      { stage: 'schema check without a copy (acceptsBatch)', where: 'batch-check worker', partOf: WORKER_TASK, records: n, run: () => bodies.forEach((body) => acceptsBatch(body)) },
      // Not run for a valid batch any more; what acceptsBatch saves.
      { stage: 'zod batchSchema.safeParse (only for invalid batches now)', where: 'batch-check worker', comparison: true, records: n, run: () => bodies.forEach((body) => batchSchema.safeParse(body)) },
      { stage: 'JCS of the record (body canonicalised once)', where: 'batch-check worker', partOf: WORKER_TASK, records: n, run: () => records.forEach((record) => canonicalRecordText(record)) },
      { stage: 'Ed25519 verify', where: 'batch-check worker', partOf: WORKER_TASK, records: n, run: () => signed.forEach((s) => verifyEd25519(publicKey, s.bytes, s.sig)) },
      {
        stage: 'record hash + leaf hash (sha256 ×2)',
        where: 'batch-check worker',
        partOf: WORKER_TASK,
        records: n,
        run: () => signed.forEach((s) => (sha256(s.canonical), leafHashOfCanonical(s.canonical))),
      },
    ]);
    const main: StageCost[] = [
      ...measured.filter((stage) => stage.where === 'main thread'),
      { stage: 'SQLite insert into records (bare loop)', where: 'main thread', micros: 1e6 / options.sqliteRowsPerSecond },
      { stage: 'Merkle append + root into merkle_subtrees', where: 'main thread', micros: 1e6 / options.merkleLeavesPerSecond },
    ];
    const worker = measured.filter((stage) => stage.where === 'batch-check worker');

    const sum = (stages: StageCost[]) => stages.filter((s) => !s.partOf && !s.comparison).reduce((total, s) => total + s.micros, 0);
    const mainMicros = sum(main);
    const workerMicros = sum(worker);
    return { records: n, stages: [...main, ...worker], totalMicros: mainMicros + workerMicros, mainMicros, workerMicros };
  }
}

export type StageOptions = Parameters<typeof benchIngestStages>[0];

if (import.meta.url === `file://${process.argv[1]}`) {
  const options = JSON.parse(process.argv[2] ?? 'null') as StageOptions | null;
  if (!options) {
    process.stderr.write(`usage: node bench/ingest-stages.ts '{"batches":4,"batchSize":500,"sqliteRowsPerSecond":60000,"merkleLeavesPerSecond":70000}'\n`);
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(await benchIngestStages(options)) + '\n');
}
