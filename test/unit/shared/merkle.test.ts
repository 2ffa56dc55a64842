import assert from 'node:assert/strict';
import { skipUnlessCi } from '../../helpers/skip.ts';
import { existsSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { seededRandom } from '../../helpers/seeded-random.ts';
import {
  EMPTY_ROOT,
  HASH_SIZE,
  InvalidProofShapeError,
  MerkleProofError,
  RootMismatchError,
  AscendingInclusionProver,
  appendLeaves,
  consistencyProof,
  consistencyProofFromSubtrees,
  inclusionProof,
  inclusionProofFromSubtrees,
  leafHash,
  nodeHash,
  rootFromInclusionProof,
  rootFromSubtrees,
  rootHash,
  verifyConsistency,
  verifyInclusion,
  type SubtreeNode,
  type SubtreeReader,
} from '../../../shared/merkle.ts';

const VECTORS = new URL('../../../../shared/vectors/merkle_rfc6962.json', import.meta.url);

interface InclusionProbe { file: string; desc: string; leafIdx: number; treeSize: number; root_hex: string; leafHash_hex: string; proof: string[]; wantErr: boolean }
interface ConsistencyProbe { file: string; desc: string; size1: number; size2: number; root1_hex: string; root2_hex: string; proof: string[]; wantErr: boolean }
interface MerkleVectors {
  leaves: string[];
  leaf_hashes: string[];
  roots: { size: number; root_hex: string }[];
  complete_subtree_hashes: { levels: string[][] };
  inclusion: { index: number; size: number; path: string[]; leaf_hash_hex: string; root_hex: string }[];
  consistency: { size1: number; size2: number; proof: string[]; root1_hex: string; root2_hex: string }[];
  probes: { edge_policy: string[]; inclusion: InclusionProbe[]; consistency: ConsistencyProbe[] };
  derived: { inclusion: { index: number; size: number; path: string[] }[]; consistency: { size1: number; size2: number; proof: string[] }[] };
}

// Read at load time so that each probe can be its own test; absent vectors skip the suite.
const vectors: MerkleVectors | undefined = existsSync(VECTORS) ? JSON.parse(readFileSync(VECTORS, 'utf8')) : undefined;

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const hexAll = (list: readonly string[]): Buffer[] => list.map(hex);
const toHex = (list: readonly Uint8Array[]): string[] => list.map((b) => Buffer.from(b).toString('hex'));

function leafOf(i: number): Buffer {
  const data = Buffer.alloc(8);
  data.writeUInt32BE(i, 4);
  return leafHash(data);
}

/** The collector's storage contract in memory: each complete subtree written exactly once. */
class MemoryStore {
  readonly nodes = new Map<string, Buffer>();
  size = 0;
  reads = 0;
  readonly read: SubtreeReader = (level, index) => {
    this.reads++;
    const hash = this.nodes.get(`${level}:${index}`);
    if (!hash) throw new Error(`node (${level}, ${index}) is not stored`);
    return hash;
  };

  append(leafHashes: readonly Buffer[]): SubtreeNode[] {
    const produced = appendLeaves(this.size, leafHashes, this.read);
    for (const node of produced) {
      const key = `${node.level}:${node.index}`;
      if (this.nodes.has(key)) throw new Error(`node ${key} produced twice`);
      this.nodes.set(key, node.hash);
    }
    this.size += leafHashes.length;
    return produced;
  }

  counting<T>(fn: () => T): { result: T; reads: number } {
    const before = this.reads;
    const result = fn();
    return { result, reads: this.reads - before };
  }
}

function completeSubtreeCount(size: number): number {
  let count = 0;
  for (let width = 1; width <= size; width *= 2) count += Math.floor(size / width);
  return count;
}

/**
 * A tree of any size (up to 2^53) whose leaves are all the same except a few: complete
 * subtrees without a special leaf share one hash per level, so it costs O(specials · log n)
 * memory yet is hash-consistent, which lets proofs at 2^45 leaves verify for real.
 */
class SparseTree {
  readonly size: number;
  readonly specials: Map<number, Buffer>;
  readonly uniform: Buffer[] = [leafHash(Buffer.from('uniform'))];
  readonly memo = new Map<string, Buffer>();
  reads = 0;

  constructor(size: number, specialIndices: readonly number[]) {
    this.size = size;
    this.specials = new Map(specialIndices.map((i) => [i, leafHash(Buffer.from(`special ${i}`))]));
    for (let level = 1; level <= 53; level++) this.uniform.push(nodeHash(this.uniform[level - 1]!, this.uniform[level - 1]!));
  }

  leaf(i: number): Buffer {
    return this.specials.get(i) ?? this.uniform[0]!;
  }

  node(level: number, index: number): Buffer {
    const begin = index * 2 ** level;
    const end = begin + 2 ** level;
    if (![...this.specials.keys()].some((i) => i >= begin && i < end)) return this.uniform[level]!;
    if (level === 0) return this.specials.get(index)!;
    const key = `${level}:${index}`;
    let hash = this.memo.get(key);
    if (!hash) {
      hash = nodeHash(this.node(level - 1, 2 * index), this.node(level - 1, 2 * index + 1));
      this.memo.set(key, hash);
    }
    return hash;
  }

  /** A store holding exactly the complete subtrees of a tree of `size` leaves. */
  readonly read: SubtreeReader = (level, index) => {
    this.reads++;
    if (!Number.isSafeInteger(index) || index < 0 || (index + 1) * 2 ** level > this.size) {
      throw new Error(`node (${level}, ${index}) is not complete in a tree of size ${this.size}`);
    }
    return this.node(level, index);
  };
}

function flipBit(buf: Uint8Array, bit: number): Buffer {
  const copy = Buffer.from(buf);
  copy[Math.floor(bit / 8) % copy.length]! ^= 1 << (bit % 8);
  return copy;
}

function replaceAt(list: readonly Buffer[], i: number, value: Buffer): Buffer[] {
  const copy = list.slice();
  copy[i] = value;
  return copy;
}

describe('shared/merkle: hashing and errors', () => {
  it('hashes leaves and nodes with the RFC 9162 domain-separation prefixes', () => {
    assert.equal(HASH_SIZE, 32);
    assert.equal(EMPTY_ROOT.toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(leafHash(Buffer.alloc(0)).toString('hex'), '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
    const l = leafOf(1);
    const r = leafOf(2);
    assert.notDeepEqual(nodeHash(l, r), nodeHash(r, l));
    assert.deepEqual(rootHash([l, r]), nodeHash(l, r));
    assert.deepEqual(rootHash([]), EMPTY_ROOT);
  });

  it('gives every error a name and reports both roots of a mismatch in hex', () => {
    const root = rootHash([leafOf(0), leafOf(1)]);
    const proof = inclusionProof(0, 2, leafOf);
    let caught: unknown;
    try {
      verifyInclusion(leafOf(0), 0, 2, proof, leafOf(7));
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof RootMismatchError && caught instanceof MerkleProofError && caught instanceof Error);
    assert.equal(caught.name, 'RootMismatchError');
    assert.equal(caught.expected, leafOf(7).toString('hex'));
    assert.equal(caught.computed, root.toString('hex'));
    assert.throws(() => verifyInclusion(leafOf(0), 2, 2, proof, root), { name: 'InvalidProofShapeError' });
    assert.ok(new InvalidProofShapeError('x') instanceof MerkleProofError);
  });

  it('refuses to generate proofs that cannot exist', () => {
    assert.throws(() => inclusionProof(3, 3, leafOf), RangeError);
    assert.throws(() => inclusionProof(0, 0, leafOf), RangeError);
    assert.throws(() => consistencyProof(0, 3, leafOf), RangeError);
    assert.throws(() => consistencyProof(4, 3, leafOf), RangeError);
    assert.deepEqual(consistencyProof(3, 3, leafOf), []);
    assert.throws(() => inclusionProof(-1, 3, leafOf), RangeError);
    assert.throws(() => inclusionProof(0.5, 3, leafOf), RangeError);
  });

  it('rejects non-integer sizes and indices in verification as a malformed proof', () => {
    const root = rootHash([leafOf(0), leafOf(1)]);
    const proof = inclusionProof(1, 2, leafOf);
    assert.throws(() => verifyInclusion(leafOf(1), 1.5, 2, proof, root), InvalidProofShapeError);
    assert.throws(() => verifyInclusion(leafOf(1), 1, Number.NaN, proof, root), InvalidProofShapeError);
    assert.throws(() => verifyConsistency(1, 2 ** 53, [leafOf(1)], leafOf(0), root), InvalidProofShapeError);
  });
});

describe('shared/merkle: RFC 6962 conformance vectors', function () {
  before(function () {
    if (!vectors) {
      skipUnlessCi(this, `vectors not found at ${VECTORS.pathname} (they live in the CI checkout's ../shared)`);
    }
  });
  const v = vectors;

  it('hashes the 8 standard leaves to the expected leaf hashes', () => {
    assert.deepEqual(v!.leaves.map((l) => leafHash(hex(l)).toString('hex')), v!.leaf_hashes);
  });

  it('computes the root of every size from 0 to 8, by reference and from stored subtrees', () => {
    const leaves = hexAll(v!.leaf_hashes);
    const store = new MemoryStore();
    store.append(leaves);
    assert.equal(v!.roots.length, 9);
    for (const { size, root_hex } of v!.roots) {
      assert.equal(rootHash(leaves.slice(0, size)).toString('hex'), root_hex, `reference root of size ${size}`);
      assert.equal(rootFromSubtrees(size, store.read).toString('hex'), root_hex, `subtree root of size ${size}`);
    }
  });

  it('stores exactly the published complete subtree hashes after appending the 8 leaves one by one', () => {
    const store = new MemoryStore();
    for (const leaf of hexAll(v!.leaf_hashes)) store.append([leaf]);
    v!.complete_subtree_hashes.levels.forEach((level, l) => {
      level.forEach((hash, i) => assert.equal(store.nodes.get(`${l}:${i}`)?.toString('hex'), hash, `node (${l}, ${i})`));
    });
    assert.equal(store.nodes.size, v!.complete_subtree_hashes.levels.flat().length);
  });

  it('generates and verifies every published inclusion proof', () => {
    const leaves = hexAll(v!.leaf_hashes);
    const store = new MemoryStore();
    store.append(leaves);
    for (const c of v!.inclusion) {
      const getLeaf = (i: number): Buffer => leaves[i]!;
      assert.deepEqual(toHex(inclusionProof(c.index, c.size, getLeaf)), c.path, `reference ${c.index}/${c.size}`);
      assert.deepEqual(toHex(inclusionProofFromSubtrees(c.index, c.size, store.read)), c.path, `subtrees ${c.index}/${c.size}`);
      verifyInclusion(hex(c.leaf_hash_hex), c.index, c.size, hexAll(c.path), hex(c.root_hex));
    }
  });

  it('generates and verifies every published consistency proof', () => {
    const leaves = hexAll(v!.leaf_hashes);
    const store = new MemoryStore();
    store.append(leaves);
    for (const c of v!.consistency) {
      assert.deepEqual(toHex(consistencyProof(c.size1, c.size2, (i) => leaves[i]!)), c.proof, `reference ${c.size1}->${c.size2}`);
      assert.deepEqual(toHex(consistencyProofFromSubtrees(c.size1, c.size2, store.read)), c.proof, `subtrees ${c.size1}->${c.size2}`);
      verifyConsistency(c.size1, c.size2, hexAll(c.proof), hex(c.root1_hex), hex(c.root2_hex));
    }
  });

  it('matches every derived inclusion and consistency proof for sizes 1 to 8', () => {
    const leaves = hexAll(v!.leaf_hashes);
    const roots = v!.roots.map((r) => hex(r.root_hex));
    const store = new MemoryStore();
    store.append(leaves);
    for (const c of v!.derived.inclusion) {
      assert.deepEqual(toHex(inclusionProofFromSubtrees(c.index, c.size, store.read)), c.path, `inclusion ${c.index}/${c.size}`);
      verifyInclusion(leaves[c.index]!, c.index, c.size, hexAll(c.path), roots[c.size]!);
    }
    for (const c of v!.derived.consistency) {
      assert.deepEqual(toHex(consistencyProof(c.size1, c.size2, (i) => leaves[i]!)), c.proof, `consistency ${c.size1}->${c.size2}`);
      verifyConsistency(c.size1, c.size2, hexAll(c.proof), roots[c.size1]!, roots[c.size2]!);
    }
  });

  describe('inclusion probes', () => {
    for (const p of vectors?.probes.inclusion ?? []) {
      it(`${p.wantErr ? 'rejects' : 'accepts'} ${p.file} (${p.desc})`, () => {
        const verify = (): void => verifyInclusion(hex(p.leafHash_hex), p.leafIdx, p.treeSize, hexAll(p.proof), hex(p.root_hex));
        if (p.wantErr) assert.throws(verify, MerkleProofError);
        else verify();
      });
    }
  });

  describe('consistency probes', () => {
    for (const p of vectors?.probes.consistency ?? []) {
      it(`${p.wantErr ? 'rejects' : 'accepts'} ${p.file} (${p.desc})`, () => {
        const verify = (): void => verifyConsistency(p.size1, p.size2, hexAll(p.proof), hex(p.root1_hex), hex(p.root2_hex));
        if (p.wantErr) assert.throws(verify, MerkleProofError);
        else verify();
      });
    }
  });
});

describe('shared/merkle: subtree storage', () => {
  const MAX = 300;
  const leaves = Array.from({ length: MAX }, (_, i) => leafOf(i));
  const getLeaf = (i: number): Buffer => leaves[i]!;
  const roots: Buffer[] = [];
  const store = new MemoryStore();

  before(() => {
    for (let n = 0; n <= MAX; n++) roots.push(rootHash(leaves.slice(0, n)));
    const random = seededRandom(7);
    while (store.size < MAX) {
      const batch = Math.min(MAX - store.size, 1 + Math.floor(random() * 17));
      store.append(leaves.slice(store.size, store.size + batch));
    }
  });

  it('stores every complete subtree exactly once, each with the hash of its leaves, in random batch sizes', () => {
    const random = seededRandom(11);
    const fresh = new MemoryStore();
    while (fresh.size < MAX) {
      const batch = Math.min(MAX - fresh.size, 1 + Math.floor(random() * 40));
      const before = fresh.size;
      const produced = fresh.append(leaves.slice(before, before + batch));
      assert.equal(produced.length, completeSubtreeCount(fresh.size) - completeSubtreeCount(before));
      assert.equal(fresh.nodes.size, completeSubtreeCount(fresh.size));
      for (const node of produced) {
        const begin = node.index * 2 ** node.level;
        assert.deepEqual(node.hash, rootHash(leaves.slice(begin, begin + 2 ** node.level)), `node (${node.level}, ${node.index})`);
      }
    }
  });

  it('emits each new leaf before the ancestors it completes', () => {
    const produced = appendLeaves(3, [leafOf(3)], (level, index) => {
      if (level === 0 && index === 2) return leafOf(2);
      if (level === 1 && index === 0) return nodeHash(leafOf(0), leafOf(1));
      throw new Error('absent');
    });
    assert.deepEqual(produced.map((n) => [n.level, n.index]), [[0, 3], [1, 1], [2, 0]]);
    assert.deepEqual(produced[2]!.hash, rootHash(leaves.slice(0, 4)));
  });

  it('builds a whole batch on an empty tree from the batch itself, without reading storage', () => {
    const produced = appendLeaves(0, leaves, () => {
      throw new Error('storage must not be read');
    });
    assert.equal(produced.length, completeSubtreeCount(MAX));
    const fresh = new Map(produced.map((n) => [`${n.level}:${n.index}`, n.hash]));
    assert.deepEqual(rootFromSubtrees(MAX, (l, i) => fresh.get(`${l}:${i}`)!), roots[MAX]);
  });

  it('rejects a leaf hash that is not 32 bytes and a reader that returns garbage', () => {
    assert.throws(() => appendLeaves(0, [Buffer.alloc(31)], store.read), TypeError);
    assert.throws(() => rootFromSubtrees(3, () => Buffer.alloc(0)), TypeError);
  });

  it('gives the reference root for every size up to 300', () => {
    for (let n = 0; n <= MAX; n++) assert.deepEqual(rootFromSubtrees(n, store.read), roots[n], `size ${n}`);
  });

  it('gives the reference inclusion proof for every index of every size up to 64 and a sample beyond', () => {
    const random = seededRandom(3);
    for (let n = 1; n <= MAX; n++) {
      const indices = n <= 64 ? [...Array(n).keys()] : [0, n - 1, Math.floor(n / 2), Math.floor(random() * n)];
      for (const i of indices) {
        assert.deepEqual(inclusionProofFromSubtrees(i, n, store.read), inclusionProof(i, n, getLeaf), `index ${i} size ${n}`);
      }
    }
  });

  it('gives a verifying inclusion proof for every index of every size up to 300', () => {
    for (let n = 1; n <= MAX; n++) {
      for (let i = 0; i < n; i++) verifyInclusion(leaves[i]!, i, n, inclusionProofFromSubtrees(i, n, store.read), roots[n]!);
    }
  });

  it('proves ascending indexes incrementally, identical to inclusionProofFromSubtrees, reading only what missing() lists and ~2 nodes per proof', () => {
    const random = seededRandom(13);
    // Compared with inclusionProofFromSubtrees (itself checked against the reference above): cheap enough for every index.
    for (const n of [...Array(70).keys()].map((i) => i + 1).concat([127, 128, 129, 255, 256, 257, MAX])) {
      for (const dense of [true, false]) {
        const prover = new AscendingInclusionProver(n);
        let reads = 0;
        let proofs = 0;
        for (let i = 0; i < n; i++) {
          if (!dense && random() < 0.6) continue;
          const planned = new Set(prover.missing(i).map((node) => `${node.level}/${node.index}`));
          const read: SubtreeReader = (level, index) => {
            assert.ok(planned.delete(`${level}/${index}`), `proof of ${i} in ${n} read (${level}, ${index}), which missing() did not list`);
            reads++;
            return store.read(level, index);
          };
          assert.deepEqual(prover.proof(i, read, leaves[i]), inclusionProofFromSubtrees(i, n, store.read), `index ${i} size ${n}`);
          assert.equal(planned.size, 0, `proof of ${i} in ${n} did not read every node missing() listed`);
          proofs++;
        }
        if (dense && n >= 64) assert.ok(reads <= 2 * proofs + Math.log2(n) ** 2, `${reads} reads for ${proofs} proofs of size ${n}`);
      }
    }
  });

  it('refuses an index that is not after the previous one, or outside the tree', () => {
    const prover = new AscendingInclusionProver(10);
    prover.proof(4, store.read);
    assert.throws(() => prover.proof(4, store.read), RangeError);
    assert.throws(() => prover.proof(3, store.read), RangeError);
    assert.throws(() => prover.proof(10, store.read), RangeError);
  });

  it('gives the reference consistency proof for every pair of sizes up to 64 and a sample beyond', () => {
    const random = seededRandom(5);
    for (let n = 1; n <= MAX; n++) {
      const froms = n <= 64 ? [...Array(n).keys()].map((m) => m + 1) : [1, n - 1, n, Math.floor(n / 2), 1 + Math.floor(random() * n)];
      for (const m of froms) {
        assert.deepEqual(consistencyProofFromSubtrees(m, n, store.read), consistencyProof(m, n, getLeaf), `${m} -> ${n}`);
      }
    }
  });

  it('gives a verifying consistency proof for every pair of sizes up to 300', () => {
    for (let n = 1; n <= MAX; n++) {
      for (let m = 1; m <= n; m++) verifyConsistency(m, n, consistencyProofFromSubtrees(m, n, store.read), roots[m]!, roots[n]!);
    }
  });

  it('computes a sparse tree that agrees with the reference, so the large-tree tests below are sound', () => {
    const tree = new SparseTree(1000, [0, 5, 511, 999]);
    const explicit = Array.from({ length: 1000 }, (_, i) => tree.leaf(i));
    assert.deepEqual(rootFromSubtrees(1000, tree.read), rootHash(explicit));
    assert.deepEqual(inclusionProofFromSubtrees(511, 1000, tree.read), inclusionProof(511, 1000, (i) => explicit[i]!));
    assert.deepEqual(consistencyProofFromSubtrees(777, 1000, tree.read), consistencyProof(777, 1000, (i) => explicit[i]!));
  });

  for (const size of [2 ** 20 - 1, 2 ** 20 + 12_345, 2 ** 45 + 2 ** 33 + 7]) {
    it(`reads O(log n) stored nodes per root, proof and append at size ${size}`, () => {
      const log2n = Math.ceil(Math.log2(size));
      const special = [0, 2 ** 17 + 3, size - 2 ** 19 - 1, size - 2, size - 1];
      const tree = new SparseTree(size, special);
      const count = <T>(fn: () => T): { result: T; reads: number } => {
        const before = tree.reads;
        const result = fn();
        return { result, reads: tree.reads - before };
      };
      const root = count(() => rootFromSubtrees(size, tree.read));
      assert.ok(root.reads <= log2n + 1, `root read ${root.reads} nodes`);

      for (const i of special) {
        const proof = count(() => inclusionProofFromSubtrees(i, size, tree.read));
        assert.ok(proof.reads <= 2 * log2n, `inclusion proof of ${i} read ${proof.reads} nodes`);
        verifyInclusion(tree.leaf(i), i, size, proof.result, root.result);
        assert.throws(() => verifyInclusion(tree.leaf(i), i === 0 ? 1 : i - 1, size, proof.result, root.result), MerkleProofError);
      }

      for (const from of [1, 2 ** 17 + 3, 2 ** 19, size - 2 ** 19 - 1, size - 1]) {
        const fromRoot = rootFromSubtrees(from, tree.read);
        const proof = count(() => consistencyProofFromSubtrees(from, size, tree.read));
        assert.ok(proof.reads <= 2 * log2n, `consistency proof from ${from} read ${proof.reads} nodes`);
        verifyConsistency(from, size, proof.result, fromRoot, root.result);
      }

      // Appending more uniform leaves must complete nodes equal to the uniform hash of their level.
      const appended = count(() => appendLeaves(size, [tree.uniform[0]!, tree.uniform[0]!, tree.uniform[0]!], tree.read));
      assert.ok(appended.reads <= log2n + 1, `append read ${appended.reads} nodes`);
      const grown = new SparseTree(size + 3, special);
      for (const node of appended.result) assert.deepEqual(node.hash, grown.node(node.level, node.index), `node (${node.level}, ${node.index})`);
    });
  }
});

describe('shared/merkle: properties', () => {
  const MAX = 3000;
  const leaves = Array.from({ length: MAX }, (_, i) => leafOf(i));
  const store = new MemoryStore();
  const rootCache = new Map<number, Buffer>();
  // Roots come from the reference MTH, never from the storage code under test.
  const rootOf = (n: number): Buffer => {
    let root = rootCache.get(n);
    if (!root) {
      root = rootHash(leaves.slice(0, n));
      rootCache.set(n, root);
    }
    return root;
  };

  before(() => {
    store.append(leaves);
  });

  it('accepts every inclusion proof and rejects any bit flip, wrong index or wrong size', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: MAX }).chain((n) => fc.tuple(fc.constant(n), fc.nat(n - 1), fc.nat(255), fc.integer({ min: 1, max: MAX }), fc.nat(MAX))),
        ([n, i, bit, otherSize, otherIndex]) => {
          const proof = inclusionProofFromSubtrees(i, n, store.read);
          const root = rootOf(n);
          verifyInclusion(leaves[i]!, i, n, proof, root);
          assert.deepEqual(rootFromInclusionProof(leaves[i]!, i, n, proof), root);
          proof.forEach((element, k) => {
            assert.throws(() => verifyInclusion(leaves[i]!, i, n, replaceAt(proof, k, flipBit(element, bit)), root), MerkleProofError);
          });
          assert.throws(() => verifyInclusion(flipBit(leaves[i]!, bit), i, n, proof, root), RootMismatchError);
          assert.throws(() => verifyInclusion(leaves[i]!, i, n, proof, flipBit(root, bit)), RootMismatchError);
          assert.throws(() => verifyInclusion(leaves[i]!, i, n, [...proof, root], root), InvalidProofShapeError);
          if (proof.length > 0) assert.throws(() => verifyInclusion(leaves[i]!, i, n, proof.slice(1), root), InvalidProofShapeError);
          if (otherIndex !== i) assert.throws(() => verifyInclusion(leaves[i]!, otherIndex, n, proof, root), MerkleProofError);
          if (otherSize !== n) assert.throws(() => verifyInclusion(leaves[i]!, i, otherSize, proof, rootOf(otherSize)), MerkleProofError);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('accepts every consistency proof and rejects any bit flip, wrong size or swapped roots', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: MAX }).chain((n) => fc.tuple(fc.integer({ min: 1, max: n }), fc.constant(n), fc.nat(255), fc.integer({ min: 1, max: MAX }))),
        ([m, n, bit, other]) => {
          const proof = consistencyProofFromSubtrees(m, n, store.read);
          verifyConsistency(m, n, proof, rootOf(m), rootOf(n));
          proof.forEach((element, k) => {
            assert.throws(() => verifyConsistency(m, n, replaceAt(proof, k, flipBit(element, bit)), rootOf(m), rootOf(n)), MerkleProofError);
          });
          assert.throws(() => verifyConsistency(m, n, proof, flipBit(rootOf(m), bit), rootOf(n)), MerkleProofError);
          assert.throws(() => verifyConsistency(m, n, proof, rootOf(m), flipBit(rootOf(n), bit)), MerkleProofError);
          assert.throws(() => verifyConsistency(m, n, [...proof, rootOf(m)], rootOf(m), rootOf(n)), InvalidProofShapeError);
          if (m !== n) {
            assert.throws(() => verifyConsistency(m, n, proof, rootOf(n), rootOf(m)), MerkleProofError);
            assert.throws(() => verifyConsistency(m, n, proof.slice(0, -1), rootOf(m), rootOf(n)), MerkleProofError);
          }
          if (other !== m && other <= n) assert.throws(() => verifyConsistency(other, n, proof, rootOf(other), rootOf(n)), MerkleProofError);
          if (other !== n && other >= m) assert.throws(() => verifyConsistency(m, other, proof, rootOf(m), rootOf(other)), MerkleProofError);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('rejects every single-bit flip of every element of one inclusion and one consistency proof', () => {
    const n = 2999;
    const proof = inclusionProofFromSubtrees(1234, n, store.read);
    const cproof = consistencyProofFromSubtrees(1234, n, store.read);
    for (const [list, check] of [
      [proof, (p: Buffer[]) => verifyInclusion(leaves[1234]!, 1234, n, p, rootOf(n))],
      [cproof, (p: Buffer[]) => verifyConsistency(1234, n, p, rootOf(1234), rootOf(n))],
    ] as const) {
      check(list);
      list.forEach((element, k) => {
        for (let bit = 0; bit < 8 * HASH_SIZE; bit++) assert.throws(() => check(replaceAt(list, k, flipBit(element, bit))), MerkleProofError);
      });
    }
  });
});
