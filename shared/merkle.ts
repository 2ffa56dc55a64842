/**
 * RFC 9162 §2.1 Merkle tree (SHA-256): hashes, roots, inclusion and consistency proofs.
 *
 * Two families of functions:
 * - Reference functions over leaf hashes (`rootHash`, `inclusionProof`, `consistencyProof`): a
 *   direct transcription of MTH, PATH and PROOF/SUBPROOF (§2.1.1, §2.1.3.1, §2.1.4.1). They
 *   cost O(n) hashes and exist to define the answer, for tests and small trees.
 * - Storage-facing functions over complete subtrees (`appendLeaves`, `rootFromSubtrees`,
 *   `…FromSubtrees`): the collector's ledger. A complete subtree (level, index) is the hash of
 *   leaves [index·2^level, (index+1)·2^level); level 0 nodes are leaf hashes. Such a node never
 *   changes once complete, so it is stored exactly once, when it becomes complete. Every
 *   range the proofs need splits into O(log n) complete subtrees, so appending and proving read
 *   O(log n) nodes and never rescan the log.
 *
 * Verification (`verifyInclusion`, `verifyConsistency`) follows transparency-dev/merkle
 * `proof/verify.go`: pure functions with explicit preconditions that throw a
 * `MerkleProofError` — `InvalidProofShapeError` when the inputs cannot form a proof,
 * `RootMismatchError` when the recomputed root differs. They never return false.
 *
 * Edge policy (the upstream library's, as pinned by the conformance vectors' `edge_policy`;
 * RFC 9162 itself only defines proofs for 0 ≤ index < size and 0 < fromSize < toSize):
 * - Size 0: the root is SHA-256("") (`EMPTY_ROOT`); no inclusion proof exists (index ≥ size).
 * - Inclusion: index ≥ size, a leaf hash or proof element that is not 32 bytes, and a proof of
 *   any length but the exact expected one (extra leading or trailing elements) are rejected.
 * - Consistency: toSize < fromSize is rejected; fromSize 0 is rejected even when toSize is 0
 *   (a proof from the empty tree proves nothing); fromSize == toSize requires an empty proof
 *   and fromRoot == toRoot, compared byte for byte (root lengths are not checked here, as
 *   upstream); otherwise an empty proof is rejected.
 * - Proof generators throw RangeError for the same impossible requests (index ≥ size,
 *   fromSize 0 or > toSize) and return [] for fromSize == toSize.
 *
 * Indices are JS numbers up to Number.MAX_SAFE_INTEGER (2^53 − 1). Bit tricks use arithmetic
 * (division, remainder), never 32-bit bitwise operators, so trees beyond 2^32 leaves work.
 */
import { sha256 } from './crypto.ts';

export const HASH_SIZE = 32;

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** RFC 9162 §2.1.1 leaf hash: SHA-256(0x00 || data). */
export function leafHash(data: Uint8Array): Buffer {
  return sha256(Buffer.concat([LEAF_PREFIX, data]));
}

/** 0x01 || left || right, rewritten for every interior node (hashing is synchronous). */
const nodeInput = Buffer.alloc(1 + 2 * 32, 0x01);

/** RFC 9162 §2.1.1 interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  // Hashes are 32 bytes; anything else takes the general (allocating) path.
  if (left.length !== 32 || right.length !== 32) return sha256(Buffer.concat([NODE_PREFIX, left, right]));
  nodeInput.set(left, 1);
  nodeInput.set(right, 33);
  return sha256(nodeInput);
}

/** MTH({}) = SHA-256 of the empty string. */
export const EMPTY_ROOT: Buffer = sha256(Buffer.alloc(0));

// ---------------------------------------------------------------------------------------------
// Errors

export class MerkleProofError extends Error {
  override name = 'MerkleProofError';
}

/** The inputs cannot form a proof: bad sizes or indices, wrong proof length, bad hash size. */
export class InvalidProofShapeError extends MerkleProofError {
  override name = 'InvalidProofShapeError';
}

/** The proof is well-formed but recomputes a different root. Both roots are lowercase hex. */
export class RootMismatchError extends MerkleProofError {
  override name = 'RootMismatchError';
  expected: string;
  computed: string;

  constructor(expected: Uint8Array, computed: Uint8Array, what = 'root') {
    const expectedHex = Buffer.from(expected).toString('hex');
    const computedHex = Buffer.from(computed).toString('hex');
    super(`computed ${what} ${computedHex} does not match expected ${what} ${expectedHex}`);
    this.expected = expectedHex;
    this.computed = computedHex;
  }
}

// ---------------------------------------------------------------------------------------------
// Integer helpers: exact for every safe integer, unlike `>>`, `&` and `^` (32-bit only).

export function isSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

export function pow2(level: number): number {
  return 2 ** level;
}

/** Largest power of two strictly less than n (n ≥ 2): the RFC's split point k. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Number of trailing zero bits of n > 0. */
function trailingZeros(n: number): number {
  let count = 0;
  while (n % 2 === 0) {
    n /= 2;
    count++;
  }
  return count;
}

/** Number of one bits of n ≥ 0. */
function onesCount(n: number): number {
  let count = 0;
  while (n > 0) {
    count += n % 2;
    n = Math.floor(n / 2);
  }
  return count;
}

/**
 * Splits the inclusion proof of `index` in a tree of `size` into its inner part (below the
 * node where the paths to `index` and `size − 1` meet: bitlen(index XOR (size − 1))) and its
 * border part (left siblings along the right border above it).
 */
function decompInclProof(index: number, size: number): { inner: number; border: number } {
  let a = index;
  let b = size - 1;
  let inner = 0;
  while (a !== b) {
    a = Math.floor(a / 2);
    b = Math.floor(b / 2);
    inner++;
  }
  return { inner, border: onesCount(Math.floor(index / pow2(inner))) };
}

// ---------------------------------------------------------------------------------------------
// Reference functions (RFC 9162 definitions over leaf hashes)

export function assertHash(hash: Uint8Array, what: string): void {
  if (hash.length !== HASH_SIZE) throw new TypeError(`${what} is ${hash.length} bytes, not ${HASH_SIZE}`);
}

/** MTH(D[begin:end]) by the RFC's recursive definition. */
function mth(begin: number, end: number, getLeaf: (i: number) => Uint8Array): Buffer {
  const n = end - begin;
  if (n === 1) {
    const leaf = getLeaf(begin);
    assertHash(leaf, `leaf hash ${begin}`);
    return Buffer.from(leaf);
  }
  const k = splitPoint(n);
  return nodeHash(mth(begin, begin + k, getLeaf), mth(begin + k, end, getLeaf));
}

/** RFC 9162 §2.1.1 MTH over leaf hashes. O(n). */
export function rootHash(leafHashes: readonly Uint8Array[]): Buffer {
  if (leafHashes.length === 0) return Buffer.from(EMPTY_ROOT);
  return mth(0, leafHashes.length, (i) => leafHashes[i]!);
}

/** RFC 9162 §2.1.3.1 PATH(index, D[0:size]), leaf first. Reference implementation: O(size). */
export function inclusionProof(index: number, size: number, getLeaf: (i: number) => Uint8Array): Buffer[] {
  if (!isSize(size) || !isSize(index) || index >= size) {
    throw new RangeError(`no inclusion proof for index ${index} in a tree of size ${size}`);
  }
  const path: Buffer[] = [];
  let begin = 0;
  let end = size;
  while (end - begin > 1) {
    const k = splitPoint(end - begin);
    if (index < begin + k) {
      path.push(mth(begin + k, end, getLeaf));
      end = begin + k;
    } else {
      path.push(mth(begin, begin + k, getLeaf));
      begin += k;
    }
  }
  return path.reverse();
}

/** RFC 9162 §2.1.4.1 PROOF(fromSize, D[0:toSize]). Reference implementation: O(toSize). */
export function consistencyProof(fromSize: number, toSize: number, getLeaf: (i: number) => Uint8Array): Buffer[] {
  checkConsistencyRequest(fromSize, toSize);
  return subproof(fromSize, toSize, (begin, end) => mth(begin, end, getLeaf));
}

export function checkConsistencyRequest(fromSize: number, toSize: number): void {
  if (!isSize(fromSize) || !isSize(toSize) || fromSize > toSize || fromSize === 0) {
    throw new RangeError(`no consistency proof from size ${fromSize} to size ${toSize}`);
  }
}

/** SUBPROOF(m, D[0:n], true), unrolled; `hashOf(begin, end)` gives MTH(D[begin:end]). */
export function subproof(m: number, n: number, hashOf: (begin: number, end: number) => Buffer): Buffer[] {
  const proof: Buffer[] = [];
  let begin = 0;
  let end = n;
  let startsAtOldRoot = true;
  while (m !== end) {
    const k = splitPoint(end - begin);
    if (m <= begin + k) {
      proof.push(hashOf(begin + k, end));
      end = begin + k;
    } else {
      proof.push(hashOf(begin, begin + k));
      begin += k;
      startsAtOldRoot = false;
    }
  }
  // m == end: the old tree's own subtree; the verifier already knows it only if it is the old root.
  if (!startsAtOldRoot) proof.push(hashOf(begin, end));
  return proof.reverse();
}

// ---------------------------------------------------------------------------------------------
// Verification (transparency-dev/merkle proof/verify.go)

function checkProofHashes(proof: readonly Uint8Array[]): void {
  for (let i = 0; i < proof.length; i++) {
    if (proof[i]!.length !== HASH_SIZE) {
      throw new InvalidProofShapeError(`proof element ${i} is ${proof[i]!.length} bytes, not ${HASH_SIZE}`);
    }
  }
}

/** Chains a path from `seed` at position `index` on its level up through `proof`. */
function chainInner(seed: Uint8Array, proof: readonly Uint8Array[], index: number): Buffer {
  let hash: Buffer = Buffer.from(seed);
  for (const sibling of proof) {
    hash = index % 2 === 0 ? nodeHash(hash, sibling) : nodeHash(sibling, hash);
    index = Math.floor(index / 2);
  }
  return hash;
}

/** Like chainInner, but only left siblings count: the hash of the earlier version of the subtree. */
function chainInnerRight(seed: Uint8Array, proof: readonly Uint8Array[], index: number): Buffer {
  let hash: Buffer = Buffer.from(seed);
  for (const sibling of proof) {
    if (index % 2 === 1) hash = nodeHash(sibling, hash);
    index = Math.floor(index / 2);
  }
  return hash;
}

/** Chains along the right border, where every sibling is on the left. */
function chainBorderRight(seed: Uint8Array, proof: readonly Uint8Array[]): Buffer {
  let hash: Buffer = Buffer.from(seed);
  for (const sibling of proof) hash = nodeHash(sibling, hash);
  return hash;
}

/**
 * The root that `proof` implies for `leafHash` at `index` in a tree of `size`. Throws
 * InvalidProofShapeError if the inputs cannot form a proof. Requires 0 ≤ index < size.
 */
export function rootFromInclusionProof(
  leafHash: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
): Buffer {
  if (!isSize(index) || !isSize(size)) throw new InvalidProofShapeError(`index ${index} and size ${size} must be non-negative safe integers`);
  if (index >= size) throw new InvalidProofShapeError(`index ${index} is beyond the tree size ${size}`);
  if (leafHash.length !== HASH_SIZE) throw new InvalidProofShapeError(`leaf hash is ${leafHash.length} bytes, not ${HASH_SIZE}`);
  const { inner, border } = decompInclProof(index, size);
  if (proof.length !== inner + border) {
    throw new InvalidProofShapeError(`inclusion proof has ${proof.length} elements, want ${inner + border}`);
  }
  checkProofHashes(proof);
  const hash = chainInner(leafHash, proof.slice(0, inner), index);
  return chainBorderRight(hash, proof.slice(inner));
}

/** Throws unless `proof` shows `leafHash` at `index` in the tree of `size` with `root`. */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  const computed = rootFromInclusionProof(leafHash, index, size, proof);
  if (!computed.equals(root)) throw new RootMismatchError(root, computed);
}

/** Throws unless `proof` shows that the tree of `toSize` with `toRoot` extends the tree of `fromSize` with `fromRoot`. */
export function verifyConsistency(
  fromSize: number,
  toSize: number,
  proof: readonly Uint8Array[],
  fromRoot: Uint8Array,
  toRoot: Uint8Array,
): void {
  if (!isSize(fromSize) || !isSize(toSize)) {
    throw new InvalidProofShapeError(`sizes ${fromSize} and ${toSize} must be non-negative safe integers`);
  }
  if (toSize < fromSize) throw new InvalidProofShapeError(`toSize ${toSize} < fromSize ${fromSize}`);
  if (fromSize === 0) throw new InvalidProofShapeError('a consistency proof from the empty tree is meaningless');
  if (fromSize === toSize) {
    if (proof.length !== 0) throw new InvalidProofShapeError('fromSize == toSize, but the proof is not empty');
    if (!Buffer.from(fromRoot).equals(toRoot)) throw new RootMismatchError(toRoot, fromRoot);
    return;
  }
  if (proof.length === 0) throw new InvalidProofShapeError('empty consistency proof');
  checkProofHashes(proof);

  // The proof is a suffix of the inclusion proof of leaf fromSize−1 in the new tree, seen from
  // level `shift`: the largest complete subtree that ends at fromSize.
  const decomp = decompInclProof(fromSize - 1, toSize);
  const shift = trailingZeros(fromSize);
  const inner = decomp.inner - shift;
  const border = decomp.border;

  // That subtree's hash leads the proof, unless it is the whole old tree (fromSize = 2^shift).
  let seed: Uint8Array;
  let start: number;
  if (fromSize === pow2(shift)) {
    seed = fromRoot;
    start = 0;
  } else {
    seed = proof[0]!;
    start = 1;
  }
  if (proof.length !== start + inner + border) {
    throw new InvalidProofShapeError(`consistency proof has ${proof.length} elements, want ${start + inner + border}`);
  }
  const rest = proof.slice(start);
  const mask = Math.floor((fromSize - 1) / pow2(shift));

  const hash1 = chainBorderRight(chainInnerRight(seed, rest.slice(0, inner), mask), rest.slice(inner));
  if (!hash1.equals(fromRoot)) throw new RootMismatchError(fromRoot, hash1, 'old root');
  const hash2 = chainBorderRight(chainInner(seed, rest.slice(0, inner), mask), rest.slice(inner));
  if (!hash2.equals(toRoot)) throw new RootMismatchError(toRoot, hash2, 'new root');
}

// The tree over stored complete subtrees (what the collector keeps): shared/merkle-subtrees.ts.
export * from './merkle-subtrees.ts';
