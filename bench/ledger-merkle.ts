/**
 * The ledger's Merkle tree in the collector's store, written and read through the store contract
 * (`collector/store/store.ts`) and shared/merkle.ts, on the collector's real schema and pragmas
 * (a store opened with `openStore` and migrated by its own code):
 *
 * - Append: for batches of 500 leaves, one `store.write` each, as the ledger plans a batch
 *   (`LedgerService.planAppend`): `appendLeaves` over `tx.subtreeReader`, the new root
 *   (`rootFromSubtrees`) over the nodes just made and the stored ones, then every newly complete
 *   subtree written with `tx.putSubtrees`. From an empty tree and on top of 10^6 leaves: with
 *   O(log n) reads per batch the two rates are about the same. `prepareLedger` returns the
 *   appends as round runners; the ingest benchmark times them in turn with the bare insert loop
 *   (lib/rounds.ts).
 * - Inclusion proofs, as the collector serves them: `inclusionProofFromSubtrees` over the nodes
 *   it needs, read in one `store.readSubtrees` call (`computeFromStoredSubtrees`), for random
 *   leaves of a 10^4-leaf and a 10^6-leaf tree. O(log n) means the latency grows by about
 *   log(10^6)/log(10^4) = 1.5, not by the factor 100 a rescan would cost. Every proof is then
 *   verified against the tree's root (outside the timing).
 *
 * The big tree is built quickly: random leaf hashes appended in chunks of 2^16 per transaction.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { computeFromStoredSubtrees } from '../collector/services/ledger.ts';
import { defaultDatabaseUrl, openStore } from '../collector/store/open-store.ts';
import type { CollectorStore } from '../collector/store/store.ts';
import { appendLeaves, inclusionProofFromSubtrees, rootFromSubtrees, verifyInclusion } from '../shared/merkle.ts';
import type { Cleanup } from './lib/cleanup.ts';
import { chunk, type RoundRunner } from './lib/rounds.ts';
import { nowMs, summarise, type LatencySummary } from './lib/stats.ts';
import { BATCHES_PER_ROUND } from './sqlite-insert-baseline.ts';

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

/** A Merkle tree of random leaves in a store of its own. */
class StoredTree {
  readonly #store: CollectorStore;
  size = 0;
  /** Subtree nodes read for proofs, since the count was last reset. */
  reads = 0;

  constructor(store: CollectorStore) {
    this.#store = store;
  }

  /** Appends `leaves` in one write transaction; resolves with the new root and the nodes written. */
  append(leaves: readonly Buffer[]): Promise<{ root: Buffer; nodes: number }> {
    return this.#store.write(async (tx) => {
      const stored = await tx.subtreeReader(this.size);
      const nodes = appendLeaves(this.size, leaves, stored);
      const made = new Map<string, Buffer>();
      for (const node of nodes) made.set(`${node.level}/${node.index}`, node.hash);
      const size = this.size + leaves.length;
      const root = rootFromSubtrees(size, (level, index) => made.get(`${level}/${index}`) ?? stored(level, index));
      await tx.putSubtrees(nodes);
      this.size = size;
      return { root, nodes: nodes.length };
    });
  }

  /** The inclusion proof of leaf `index` in the whole tree, from committed nodes. */
  inclusionProof(index: number): Promise<Buffer[]> {
    return computeFromStoredSubtrees(
      (read) => inclusionProofFromSubtrees(index, this.size, read),
      (nodes) => {
        this.reads += nodes.length;
        return this.#store.readSubtrees(nodes);
      },
    );
  }

  root(): Promise<Buffer> {
    return computeFromStoredSubtrees((read) => rootFromSubtrees(this.size, read), (nodes) => this.#store.readSubtrees(nodes));
  }

  async leaf(index: number): Promise<Buffer> {
    const [hash] = await this.#store.readSubtrees([{ level: 0, index }]);
    if (!hash) throw new Error(`leaf ${index} is missing`);
    return hash;
  }
}

async function openTree(cleanup: Cleanup, prefix: string): Promise<StoredTree> {
  const store = openStore({ url: defaultDatabaseUrl(cleanup.tempDir(prefix)) });
  cleanup.defer('close a Merkle benchmark store', () => store.close());
  await store.migrate();
  return new StoredTree(store);
}

function randomLeaves(count: number): Buffer[] {
  const bytes = randomBytes(32 * count);
  return Array.from({ length: count }, (_, i) => bytes.subarray(32 * i, 32 * i + 32));
}

/** Appending `leaves` random leaves to `tree` in batches, as rounds of BATCHES_PER_ROUND batches. */
function appendRunner(label: string, tree: StoredTree, leaves: number, batchSize: number): RoundRunner {
  const batches = Array.from({ length: Math.ceil(leaves / batchSize) }, (_, b) => randomLeaves(Math.min(batchSize, leaves - b * batchSize)));
  return {
    label,
    rounds: chunk(batches, BATCHES_PER_ROUND).map((round) => async () => {
      for (const batch of round) await tree.append(batch);
      return round.reduce((n, batch) => n + batch.length, 0);
    }),
  };
}

async function buildTree(cleanup: Cleanup, size: number, prefix: string): Promise<StoredTree> {
  const tree = await openTree(cleanup, prefix);
  const chunk = 1 << 16;
  while (tree.size < size) await tree.append(randomLeaves(Math.min(chunk, size - tree.size)));
  return tree;
}

/**
 * Times `proofs` inclusion proofs of random leaves in each tree, the trees taking turns proof
 * by proof so that a slow spell of the machine hits both sizes alike; then verifies every proof
 * against its tree's root.
 */
async function timeProofs(trees: readonly StoredTree[], proofs: number): Promise<ProofFigures[]> {
  const roots = await Promise.all(trees.map((tree) => tree.root()));
  // Warm-up: JIT and the page cache, as on a server that has been answering proofs.
  for (let i = 0; i < 200; i++) for (const tree of trees) await tree.inclusionProof(randomInt(tree.size));

  const indices = trees.map((tree) => Array.from({ length: proofs }, () => randomInt(tree.size)));
  const latencies = trees.map((): number[] => []);
  const answers = trees.map((): Buffer[][] => []);
  for (const tree of trees) tree.reads = 0;
  for (let i = 0; i < proofs; i++) {
    for (const [t, tree] of trees.entries()) {
      const started = nowMs();
      answers[t]!.push(await tree.inclusionProof(indices[t]![i]!));
      latencies[t]!.push(nowMs() - started);
    }
  }
  const figures: ProofFigures[] = [];
  for (const [t, tree] of trees.entries()) {
    const readsPerProof = tree.reads / proofs;
    for (const [i, index] of indices[t]!.entries()) verifyInclusion(await tree.leaf(index), index, tree.size, answers[t]![i]!, roots[t]!);
    figures.push({ size: tree.size, proofs, latencyMs: summarise(latencies[t]!), readsPerProof });
  }
  return figures;
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
  const [smallProofs, bigProofs] = (await timeProofs([small, big], options.proofs)) as [ProofFigures, ProofFigures];
  const fresh = await openTree(cleanup, 'sakshya-bench-merkle-');
  return {
    proofs: { buildBigTreeSeconds, small: smallProofs, big: bigProofs },
    appendFromEmpty: appendRunner('Merkle append from empty', fresh, options.appendLeaves, options.batchSize),
    appendOnBigTree: appendRunner(`Merkle append on ${big.size} leaves`, big, options.appendOnBigTree, options.batchSize),
  };
}
