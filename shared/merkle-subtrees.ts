/**
 * The Merkle tree over stored complete subtrees: appending, roots and proofs in O(log n) reads
 * of the nodes a store keeps (collector/store), equal to the RFC 9162 reference functions in
 * merkle.ts, which re-exports this module.
 */
import { HASH_SIZE, nodeHash, EMPTY_ROOT, isSize, pow2, splitPoint, assertHash, checkConsistencyRequest, subproof } from './merkle.ts';

// ---------------------------------------------------------------------------------------------
// Storage-facing functions over complete subtrees

export interface SubtreeNode {
  level: number;
  index: number;
  hash: Buffer;
}

/** MUST return the stored complete subtree (level, index); MUST throw if it is absent. */
export type SubtreeReader = (level: number, index: number) => Buffer;

function readNode(read: SubtreeReader, level: number, index: number): Buffer {
  const hash = read(level, index);
  // A short or missing hash would silently yield a wrong root; storage corruption must be loud.
  if (!hash || hash.length !== HASH_SIZE) {
    throw new TypeError(`subtree reader returned no ${HASH_SIZE}-byte hash for node (level ${level}, index ${index})`);
  }
  return hash;
}

/**
 * Appends leaves to a tree of `size` leaves and returns every node that becomes complete, in
 * the order it completes: each new leaf (level 0), then the ancestors it completes. Storing
 * all of them keeps the invariant that every complete subtree is stored.
 *
 * Reads only the left siblings that the new nodes complete: at most one per level from before
 * the batch (O(log n)); siblings produced by this batch come from the batch itself.
 *
 * A leaf hash given as a Buffer is returned as its level-0 node's `hash` itself, not a copy: a
 * caller that changes those bytes afterwards changes the node it got back.
 */
export function appendLeaves(size: number, newLeafHashes: readonly Uint8Array[], read: SubtreeReader): SubtreeNode[] {
  if (!isSize(size) || !isSize(size + newLeafHashes.length)) {
    throw new RangeError(`cannot append ${newLeafHashes.length} leaves to a tree of size ${size}`);
  }
  const out: SubtreeNode[] = [];
  // Nodes of this batch at an even index: the left siblings later leaves of the batch may need.
  // Nodes complete left to right, so each level has at most one waiting: (pendingIndex, pendingHash).
  const pendingIndex: number[] = [];
  const pendingHash: (Buffer | undefined)[] = [];
  for (let j = 0; j < newLeafHashes.length; j++) {
    const leaf = newLeafHashes[j]!;
    assertHash(leaf, `new leaf hash ${j}`);
    let level = 0;
    let index = size + j;
    // A Buffer is used as given (no copy per leaf): the level-0 node shares the caller's bytes.
    let hash: Buffer = Buffer.isBuffer(leaf) ? leaf : Buffer.from(leaf);
    out.push({ level, index, hash });
    while (index % 2 === 1) {
      let left = pendingIndex[level] === index - 1 ? pendingHash[level] : undefined;
      if (left) pendingHash[level] = undefined;
      else left = readNode(read, level, index - 1);
      hash = nodeHash(left, hash);
      level++;
      index = (index - 1) / 2;
      out.push({ level, index, hash });
    }
    pendingIndex[level] = index;
    pendingHash[level] = hash;
  }
  return out;
}

/**
 * MTH(D[begin:end]) for a node of the RFC tree (a complete subtree, or a node on the right
 * border): the complete subtrees that tile the range, largest first, folded from the right.
 * O(log n) reads.
 */
function rangeHash(begin: number, end: number, read: SubtreeReader): Buffer {
  const parts: Buffer[] = [];
  while (begin < end) {
    let level = 0;
    while (pow2(level + 1) <= end - begin && begin % pow2(level + 1) === 0) level++;
    parts.push(readNode(read, level, begin / pow2(level)));
    begin += pow2(level);
  }
  let hash = parts.pop()!;
  while (parts.length > 0) hash = nodeHash(parts.pop()!, hash);
  return hash;
}

/** Root of the tree of `size` leaves from stored complete subtrees. At most log2(n) + 1 reads. */
export function rootFromSubtrees(size: number, read: SubtreeReader): Buffer {
  if (!isSize(size)) throw new RangeError(`tree size ${size} must be a non-negative safe integer`);
  if (size === 0) return Buffer.from(EMPTY_ROOT);
  return rangeHash(0, size, read);
}

/**
 * Inclusion proof of leaf `index` in the tree of `size`, identical to `inclusionProof`.
 * O(log n) reads: only the first right-hand sibling can be an incomplete (border) subtree.
 */
export function inclusionProofFromSubtrees(index: number, size: number, read: SubtreeReader): Buffer[] {
  if (!isSize(size) || !isSize(index) || index >= size) {
    throw new RangeError(`no inclusion proof for index ${index} in a tree of size ${size}`);
  }
  const path: Buffer[] = [];
  let begin = 0;
  let end = size;
  while (end - begin > 1) {
    const k = splitPoint(end - begin);
    if (index < begin + k) {
      path.push(rangeHash(begin + k, end, read));
      end = begin + k;
    } else {
      path.push(rangeHash(begin, begin + k, read)); // complete: a single read
      begin += k;
    }
  }
  return path.reverse();
}

/** Consistency proof from `fromSize` to `toSize`, identical to `consistencyProof`. O(log n) reads. */
export function consistencyProofFromSubtrees(fromSize: number, toSize: number, read: SubtreeReader): Buffer[] {
  checkConsistencyRequest(fromSize, toSize);
  return subproof(fromSize, toSize, (begin, end) => rangeHash(begin, end, read));
}

/**
 * Inclusion proofs in one tree of `size` leaves for ascending leaf indexes (a report export walks
 * the ledger in order), each identical to `inclusionProofFromSubtrees`. Consecutive leaves share
 * most of their path, so the sibling range at each depth is kept with its hash and reused while
 * the next proof needs the same range: a run of leaves costs about two stored-subtree reads per
 * proof (the previous leaf's own hash, given to `proof`, saves one more), instead of ~log2(n)
 * reads and a re-hash of the tree's right edge for every proof. Memory: one range per depth.
 *
 * Reads may be asynchronous in a store: `missing(index)` lists the nodes `proof(index, …)` will
 * read, to be fetched in one batch first.
 */
export class AscendingInclusionProver {
  readonly size: number;
  /** Per depth (0 = the root's children): the sibling range last used there, and its hash. */
  readonly #kept: { begin: number; end: number; hash: Buffer }[] = [];
  #lastIndex = -1;
  #lastLeafHash: Buffer | undefined;

  constructor(size: number) {
    if (!isSize(size)) throw new RangeError(`tree size ${size} must be a non-negative safe integer`);
    this.size = size;
  }

  /** The stored complete subtrees that `proof(index, read)` will read, top-down. */
  missing(index: number): { level: number; index: number }[] {
    const nodes: { level: number; index: number }[] = [];
    this.#walk(index, (depth, begin, end) => {
      if (!this.#isKept(depth, begin, end)) this.#tile(begin, end, (level, at) => nodes.push({ level, index: at }));
    });
    return nodes;
  }

  /**
   * The inclusion proof of `index`, which MUST be greater than the previous call's. `leafHash`
   * (the leaf's own hash, if the caller has it) serves the next proof's sibling at no read.
   */
  proof(index: number, read: SubtreeReader, leafHash?: Buffer): Buffer[] {
    if (!isSize(index) || index >= this.size) throw new RangeError(`no inclusion proof for index ${index} in a tree of size ${this.size}`);
    if (index <= this.#lastIndex) throw new RangeError(`index ${index} is not after the previous proof's ${this.#lastIndex}`);
    const path: Buffer[] = [];
    const readKnown: SubtreeReader = (level, at) => (level === 0 && at === this.#lastIndex && this.#lastLeafHash ? this.#lastLeafHash : read(level, at));
    this.#walk(index, (depth, begin, end) => {
      if (!this.#isKept(depth, begin, end)) this.#kept[depth] = { begin, end, hash: rangeHash(begin, end, readKnown) };
      path.push(this.#kept[depth]!.hash);
    });
    this.#lastIndex = index;
    this.#lastLeafHash = leafHash;
    return path.reverse();
  }

  #isKept(depth: number, begin: number, end: number): boolean {
    const kept = this.#kept[depth];
    return kept !== undefined && kept.begin === begin && kept.end === end;
  }

  /** Visits the sibling range at each depth of the path from the root down to leaf `index`. */
  #walk(index: number, visit: (depth: number, begin: number, end: number) => void): void {
    let begin = 0;
    let end = this.size;
    for (let depth = 0; end - begin > 1; depth++) {
      const k = splitPoint(end - begin);
      if (index < begin + k) {
        visit(depth, begin + k, end);
        end = begin + k;
      } else {
        visit(depth, begin, begin + k);
        begin += k;
      }
    }
  }

  /** The complete subtrees tiling [begin, end), as rangeHash reads them, minus the known previous leaf. */
  #tile(begin: number, end: number, node: (level: number, index: number) => void): void {
    while (begin < end) {
      let level = 0;
      while (pow2(level + 1) <= end - begin && begin % pow2(level + 1) === 0) level++;
      if (!(level === 0 && begin === this.#lastIndex && this.#lastLeafHash)) node(level, begin / pow2(level));
      begin += pow2(level);
    }
  }
}
