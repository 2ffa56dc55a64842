/** The stored Merkle nodes an append to a tree reads from before it (WriteTransaction.subtreeReader). */
import type { SubtreeRef } from '../store.ts';

/**
 * The complete subtrees that tile [0, size), largest first: one per set bit of `size`. They are
 * the only nodes from before an append that `appendLeaves(size, …)` reads (left siblings of the
 * new nodes) and that `rootFromSubtrees(n ≥ size, …)` reads (every tile of n below `size` is
 * one of them); everything else those functions need is made by the append itself.
 */
export function rightEdge(size: number): SubtreeRef[] {
  const nodes: SubtreeRef[] = [];
  let begin = 0;
  for (let level = 53; level >= 0; level--) {
    const width = 2 ** level;
    if (size - begin >= width) {
      nodes.push({ level, index: begin / width });
      begin += width;
    }
  }
  return nodes;
}
