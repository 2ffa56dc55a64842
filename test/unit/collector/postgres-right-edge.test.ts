/**
 * The PostgreSQL store prefetches, for a subtree reader of a tree of `size` leaves, only the
 * right edge of that tree (store/postgres/right-edge.ts). This holds it to what the Merkle code
 * reads: appending any number of leaves, and the root of any larger tree, read nothing else.
 */
import assert from 'node:assert/strict';
import { appendLeaves, leafHash, rootFromSubtrees, rootHash, type SubtreeNode } from '../../../shared/merkle.ts';
import { rightEdge } from '../../../collector/store/postgres/right-edge.ts';

describe('PostgreSQL store: the right edge a subtree reader prefetches', () => {
  it('is every node an append and a later root read from before the append, for every size up to 300', () => {
    const leaves = Array.from({ length: 340 }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));
    const stored = new Map<string, Buffer>();
    const keep = (nodes: SubtreeNode[]) => nodes.forEach((node) => stored.set(`${node.level}/${node.index}`, node.hash));
    for (let size = 0; size <= 300; size++) {
      const edge = new Set(rightEdge(size).map((node) => `${node.level}/${node.index}`));
      const read = (level: number, index: number) => {
        const key = `${level}/${index}`;
        assert.ok(edge.has(key), `size ${size}: read (${key}) outside the right edge`);
        return stored.get(key)!;
      };
      for (const added of [1, 2, 7, 40]) {
        const made = appendLeaves(size, leaves.slice(size, size + added), read);
        const madeByKey = new Map(made.map((node) => [`${node.level}/${node.index}`, node.hash]));
        const root = rootFromSubtrees(size + added, (level, index) => madeByKey.get(`${level}/${index}`) ?? read(level, index));
        assert.deepEqual(root, rootHash(leaves.slice(0, size + added)));
      }
      keep(appendLeaves(size, [leaves[size]!], read));
    }
  });
});
