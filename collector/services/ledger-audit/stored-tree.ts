/**
 * The stored Merkle tree (merkle_subtrees) against the one recomputed leaf by leaf: a compact
 * range (at most log2(n) + 1 peaks) yields each complete subtree as a leaf completes it, in the
 * order the store streams its nodes (`completionOrder`), so the two merge in one pass. A stored
 * node that differs, is missing or should not exist is named here.
 */
import { EMPTY_ROOT, nodeHash } from '../../../shared/merkle.ts';
import type { AuditSubtreeRow, LedgerAuditSource } from '../../store/store.ts';
import { hex, type Findings } from './findings.ts';
import type { Peekable } from './peekable.ts';

/** A complete subtree computed from the leaves. */
export interface ComputedNode {
  level: number;
  index: number;
  hash: Buffer;
}

/**
 * The right edge of a Merkle tree being built leaf by leaf: the peaks (complete subtrees of
 * decreasing height) that tile the leaves so far. O(log n) memory.
 */
export class CompactRange {
  size = 0;
  readonly #peaks: { level: number; hash: Buffer }[] = [];

  /** Adds a leaf; returns the nodes it completes, leaf first, in the order appendLeaves stores them. */
  append(leaf: Buffer): ComputedNode[] {
    const position = this.size;
    this.size++;
    const out: ComputedNode[] = [{ level: 0, index: position, hash: leaf }];
    let hash = leaf;
    let level = 0;
    while (this.#peaks.length > 0 && this.#peaks[this.#peaks.length - 1]!.level === level) {
      hash = nodeHash(this.#peaks.pop()!.hash, hash);
      level++;
      out.push({ level, index: this.size / 2 ** level - 1, hash });
    }
    this.#peaks.push({ level, hash });
    return out;
  }

  /** RFC 9162 MTH of the leaves so far: the peaks folded from the right. */
  root(): Buffer {
    if (this.#peaks.length === 0) return Buffer.from(EMPTY_ROOT);
    let hash = this.#peaks[this.#peaks.length - 1]!.hash;
    for (let i = this.#peaks.length - 2; i >= 0; i--) hash = nodeHash(this.#peaks[i]!.hash, hash);
    return hash;
  }
}

/** The leaf position at which a node becomes complete, then its level: the order nodes are stored in. */
export function completionOrder(a: { level: number; index: number }, b: { level: number; index: number }): number {
  const ca = (a.index + 1) * 2 ** a.level - 1;
  const cb = (b.index + 1) * 2 ** b.level - 1;
  return ca !== cb ? ca - cb : a.level - b.level;
}

/** Compares a computed node with the stored stream, naming stored nodes that sort before it as extra. */
export async function matchSubtree(stored: Peekable<AuditSubtreeRow>, node: ComputedNode, findings: Findings): Promise<void> {
  for (;;) {
    const next = await stored.peek();
    const order = next === undefined ? 1 : completionOrder(next, node);
    if (order < 0) {
      await stored.take();
      extraSubtree(next!, undefined, findings);
      continue;
    }
    if (order > 0) {
      missingSubtree(node, findings);
      return;
    }
    await stored.take();
    if (!next!.hash.equals(node.hash)) differentSubtree(node, next!.hash, findings);
    return;
  }
}

export function missingSubtree(node: ComputedNode, findings: Findings): void {
  findings.add({
    table: 'merkle_subtrees',
    row: { level: node.level, idx: node.index },
    check: 'missing',
    message: `the complete subtree (level ${node.level}, index ${node.index}) is not stored`,
    expected: hex(node.hash),
  });
}

export function differentSubtree(node: ComputedNode, found: Buffer, findings: Findings): void {
  findings.add({
    table: 'merkle_subtrees',
    row: { level: node.level, idx: node.index },
    check: 'hash',
    message:
      node.level === 0
        ? `the stored leaf node is not the leaf hash of ledger entry ${node.index}`
        : `the stored node is not the hash of its children (leaves ${node.index * 2 ** node.level}…${(node.index + 1) * 2 ** node.level - 1})`,
    expected: hex(node.hash),
    found: hex(found),
  });
}

/** A stored node that is no complete subtree of the entries (`size`: the entries end before it). */
export function extraSubtree(row: AuditSubtreeRow, size: number | undefined, findings: Findings): void {
  findings.add({
    table: 'merkle_subtrees',
    row: { level: row.level, idx: row.index },
    check: 'unexpected',
    message:
      size !== undefined
        ? `a stored node (level ${row.level}, index ${row.index}) lies beyond the ${size} stored entries`
        : `a stored node (level ${row.level}, index ${row.index}) is not a complete subtree of the stored entries`,
    found: hex(row.hash),
  });
}

/**
 * Which of two candidate leaves at `position` the stored tree was built over: the one whose
 * hash with the stored sibling gives the stored parent. 'unknown' without both of them.
 */
export async function treeHolds(source: LedgerAuditSource, position: number, storedLeaf: Buffer, recordLeaf: Buffer): Promise<'stored' | 'record' | 'unknown'> {
  const even = position % 2 === 0;
  const sibling = await source.subtree(0, even ? position + 1 : position - 1);
  const parent = await source.subtree(1, Math.floor(position / 2));
  if (!sibling || !parent) return 'unknown';
  const withSibling = (leaf: Buffer) => (even ? nodeHash(leaf, sibling) : nodeHash(sibling, leaf));
  if (withSibling(storedLeaf).equals(parent)) return 'stored';
  if (withSibling(recordLeaf).equals(parent)) return 'record';
  return 'unknown';
}
