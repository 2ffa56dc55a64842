/**
 * The ledger's Merkle tree on SQLite (issue 3), with the collector's real schema (migrated by
 * its own code) and pragmas, through plain better-sqlite3 statements and shared/merkle.ts:
 *
 * - Append: `appendLeaves` + the new root (`rootFromSubtrees`) for batches of 500 leaves, each
 *   batch one IMMEDIATE transaction writing every newly complete subtree to `merkle_subtrees`,
 *   as the ledger does per batch. From an empty tree and on top of 10^6 leaves: with O(log n)
 *   reads per batch the two rates are about the same. `prepareLedger` returns the appends as
 *   round runners; run.ts times them in turn with the bare insert loop (lib/rounds.ts).
 * - Inclusion proofs: `inclusionProofFromSubtrees` reading the table, for random leaves of a
 *   10^4-leaf and a 10^6-leaf tree. O(log n) means the latency grows by about
 *   log(10^6)/log(10^4) = 1.5, not by the factor 100 a rescan would cost. Every proof is then
 *   verified against the tree's root (outside the timing).
 *
 * The big tree is built quickly: random leaf hashes appended in chunks of 2^16 per transaction.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type Database from 'better-sqlite3';
import { appendLeaves, inclusionProofFromSubtrees, rootFromSubtrees, verifyInclusion, type SubtreeReader } from '../shared/merkle.ts';
import { INSERT_SUBTREE_RUN, writeSubtrees } from '../collector/store/sqlite/sqlite-store.ts';
import type { Cleanup } from './lib/cleanup.ts';
import { chunk, type RoundRunner } from './lib/rounds.ts';
import { nowMs, summarise, type LatencySummary } from './lib/stats.ts';
import { BATCHES_PER_ROUND, migratedCollectorDatabase, openLikeCollector } from './sqlite-insert-baseline.ts';

export interface LedgerOptions {
  /** Leaves appended from an empty tree (the same count as the ingest benchmark's records). */
  appendLeaves: number;
  batchSize: number;
  smallTree: number;
  bigTree: number;
  /** Leaves appended on top of the big tree (taking turns with the append from empty). */
  appendOnBigTree: number;
  proofs: number;
}

export interface ProofFigures {
  size: number;
  proofs: number;
  latencyMs: LatencySummary;
  readsPerProof: number;
}

export interface ProofResult {
  buildBigTreeSeconds: number;
  small: ProofFigures;
  big: ProofFigures;
}

class SubtreeTable {
  readonly db: Database.Database;
  readonly #read: Database.Statement;
  readonly #insert: Database.Statement;
  readonly #insertRun: Database.Statement;
  size = 0;
  reads = 0;
  readonly reader: SubtreeReader;

  constructor(db: Database.Database) {
    this.db = db;
    this.#read = db.prepare(`SELECT hash FROM merkle_subtrees WHERE level = ? AND idx = ?`).pluck();
    this.#insert = db.prepare(`INSERT INTO merkle_subtrees (level, idx, hash) VALUES (?, ?, ?)`);
    this.#insertRun = db.prepare(INSERT_SUBTREE_RUN);
    this.reader = (level, index) => {
      this.reads++;
      const hash = this.#read.get(level, index) as Buffer | undefined;
      if (!hash) throw new Error(`subtree (${level}, ${index}) is missing`);
      return hash;
    };
  }

  /** Appends `leaves` in one IMMEDIATE transaction; returns the new root and the nodes written. */
  append(leaves: readonly Buffer[]): { root: Buffer; nodes: number } {
    return this.db
      .transaction(() => {
        const nodes = appendLeaves(this.size, leaves, this.reader);
        writeSubtrees(nodes, this.#insert, this.#insertRun); // as the collector's store writes them
        this.size += leaves.length;
        return { root: rootFromSubtrees(this.size, this.reader), nodes: nodes.length };
      })
      .immediate();
  }
}

async function openTable(cleanup: Cleanup, prefix: string): Promise<SubtreeTable> {
  const db = openLikeCollector(await migratedCollectorDatabase(cleanup, prefix));
  cleanup.defer('close a Merkle benchmark database', () => {
    db.close();
  });
  return new SubtreeTable(db);
}

function randomLeaves(count: number): Buffer[] {
  const bytes = randomBytes(32 * count);
  return Array.from({ length: count }, (_, i) => bytes.subarray(32 * i, 32 * i + 32));
}

/** Appending `leaves` random leaves to `table` in batches, as rounds of BATCHES_PER_ROUND batches. */
function appendRunner(label: string, table: SubtreeTable, leaves: number, batchSize: number): RoundRunner {
  const batches = Array.from({ length: Math.ceil(leaves / batchSize) }, (_, b) => randomLeaves(Math.min(batchSize, leaves - b * batchSize)));
  return {
    label,
    rounds: chunk(batches, BATCHES_PER_ROUND).map((round) => () => {
      for (const batch of round) table.append(batch);
      return round.reduce((n, batch) => n + batch.length, 0);
    }),
  };
}

async function buildTree(cleanup: Cleanup, size: number, prefix: string): Promise<SubtreeTable> {
  const table = await openTable(cleanup, prefix);
  const chunk = 1 << 16;
  while (table.size < size) table.append(randomLeaves(Math.min(chunk, size - table.size)));
  return table;
}

/**
 * Times `proofs` inclusion proofs of random leaves in each table, the tables taking turns
 * proof by proof so that a slow spell of the machine hits both sizes alike; then verifies every
 * proof against its tree's root.
 */
function timeProofs(tables: readonly SubtreeTable[], proofs: number): ProofFigures[] {
  const roots = tables.map((table) => rootFromSubtrees(table.size, table.reader));
  // Warm-up: JIT and the page cache, as on a server that has been answering proofs.
  for (let i = 0; i < 200; i++) for (const table of tables) inclusionProofFromSubtrees(randomInt(table.size), table.size, table.reader);

  const indices = tables.map((table) => Array.from({ length: proofs }, () => randomInt(table.size)));
  const latencies = tables.map((): number[] => []);
  const answers = tables.map((): Buffer[][] => []);
  for (const table of tables) table.reads = 0;
  for (let i = 0; i < proofs; i++) {
    for (const [t, table] of tables.entries()) {
      const started = nowMs();
      answers[t]!.push(inclusionProofFromSubtrees(indices[t]![i]!, table.size, table.reader));
      latencies[t]!.push(nowMs() - started);
    }
  }
  return tables.map((table, t) => {
    const readsPerProof = table.reads / proofs;
    indices[t]!.forEach((index, i) => verifyInclusion(table.reader(0, index), index, table.size, answers[t]![i]!, roots[t]!));
    return { size: table.size, proofs, latencyMs: summarise(latencies[t]!), readsPerProof };
  });
}

/**
 * Builds the trees and times the proofs; returns the figures and the two append runners (from
 * empty, on the big tree), to be timed in turn with the bare insert loop.
 */
export async function prepareLedger(options: LedgerOptions, cleanup: Cleanup): Promise<{ proofs: ProofResult; appendFromEmpty: RoundRunner; appendOnBigTree: RoundRunner }> {
  const small = await buildTree(cleanup, options.smallTree, 'sakshya-bench-merkle-small-');
  const buildStart = nowMs();
  const big = await buildTree(cleanup, options.bigTree, 'sakshya-bench-merkle-big-');
  const buildBigTreeSeconds = (nowMs() - buildStart) / 1000;
  const [smallProofs, bigProofs] = timeProofs([small, big], options.proofs) as [ProofFigures, ProofFigures];
  const fresh = await openTable(cleanup, 'sakshya-bench-merkle-');
  return {
    proofs: { buildBigTreeSeconds, small: smallProofs, big: bigProofs },
    appendFromEmpty: appendRunner('Merkle append from empty', fresh, options.appendLeaves, options.batchSize),
    appendOnBigTree: appendRunner(`Merkle append on ${big.size} leaves`, big, options.appendOnBigTree, options.batchSize),
  };
}
