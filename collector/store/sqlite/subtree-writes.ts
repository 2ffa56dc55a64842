/** Writing Merkle subtree nodes: one statement per run of consecutive nodes of a level. */
import Database from 'better-sqlite3';
import type { SubtreeNode } from '../../../shared/merkle.ts';

/**
 * A run of Merkle nodes of one level with consecutive indices (`@level`, `@first`, `@count`),
 * from their hashes concatenated (`@hashes`): one statement instead of one per node, because per
 * node the call cost more than the B-tree insert (docs/perf/).
 */
export const INSERT_SUBTREE_RUN = `INSERT INTO merkle_subtrees (level, idx, hash)
  WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < @count)
  SELECT @level, @first + i, substr(@hashes, 32 * i + 1, 32) FROM n`;

/** Writes Merkle nodes with `single` (INSERT … VALUES (level, idx, hash)) and `run` (INSERT_SUBTREE_RUN). */
export function writeSubtrees(nodes: readonly SubtreeNode[], single: Database.Statement, run: Database.Statement): void {
  for (const nodesOfRun of consecutiveRuns(nodes)) {
    const first = nodesOfRun[0]!;
    if (nodesOfRun.length === 1) single.run(first.level, first.index, first.hash);
    else run.run({ level: first.level, first: first.index, count: nodesOfRun.length, hashes: Buffer.concat(nodesOfRun.map((node) => node.hash)) });
  }
}

/**
 * Merkle nodes grouped into runs of one level with consecutive indices, each run in index
 * order. An append completes one such run per level (the nodes over its leaves), so a batch's
 * nodes become about log2(n) runs; nodes of 32-byte hashes only (the table's CHECK).
 */
export function consecutiveRuns(nodes: readonly SubtreeNode[]): SubtreeNode[][] {
  const byLevel = new Map<number, SubtreeNode[]>();
  for (const node of nodes) {
    const level = byLevel.get(node.level);
    if (level) level.push(node);
    else byLevel.set(node.level, [node]);
  }
  const runs: SubtreeNode[][] = [];
  for (const level of byLevel.values()) {
    level.sort((a, b) => a.index - b.index);
    let run: SubtreeNode[] = [];
    for (const node of level) {
      const last = run[run.length - 1];
      if (last && (node.index !== last.index + 1 || node.hash.length !== 32 || last.hash.length !== 32)) {
        runs.push(run);
        run = [];
      }
      run.push(node);
    }
    if (run.length > 0) runs.push(run);
  }
  return runs;
}
