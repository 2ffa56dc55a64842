/**
 * The one pass of `ledger verify` over the leaves: records streamed in ledger order, merged with
 * the stored Merkle nodes (by the leaf that completes them) and the checkpoints (by size). Each
 * record is checked (record-rows.ts) and becomes a leaf of two recomputed trees: `truth`, from
 * the records' text, which signed checkpoints MUST match, and `tree`, over the leaves the stored
 * tree corroborates, which every stored node MUST match (stored-tree.ts). Holds O(log n) peaks.
 */
import type { LedgerAuditSource } from '../../store/store.ts';
import type { AuthorityReplay } from '../authority-replay.ts';
import type { ChainState } from './chains.ts';
import { checkCheckpointRow, type LogIdentity, type SignedPrefix } from './checkpoint-rows.ts';
import { hex, recordRow, type Findings } from './findings.ts';
import { Peekable } from './peekable.ts';
import { checkRecordRow, type Orphans } from './record-rows.ts';
import { CompactRange, completionOrder, differentSubtree, extraSubtree, matchSubtree, missingSubtree, treeHolds } from './stored-tree.ts';

/** A hole in the ledger indices up to this long is bridged with the stored tree's nodes. */
export const MAX_GAP_FILL = 4096;
/** Stands in for a leaf whose record is missing: no record hashes to it. */
const ZERO_LEAF = Buffer.alloc(32);
/** Checkpoint sizes with findings remembered for the receipts' cross-check. */
const MAX_REMEMBERED_BROKEN = 10_000;

/** What the pass over the leaves found, for the checks after it. */
export interface LedgerPass {
  size: number;
  root: Buffer;
  subtrees: number;
  checkpoints: number;
  /** Sizes of checkpoint rows with findings (or too many to remember). */
  brokenCheckpoints: Set<number> | 'too_many';
  /** Entries per `kind` column value, as streamed. */
  kinds: Map<string, number>;
}

/** Records, Merkle subtrees and checkpoints, in one pass over the leaves. */
export async function checkLedger(
  source: LedgerAuditSource,
  chains: Map<string, ChainState>,
  authority: AuthorityReplay,
  log: LogIdentity,
  findings: Findings,
): Promise<LedgerPass> {
  const stored = new Peekable(source.subtrees());
  const checkpoints = new Peekable(source.checkpoints());
  /** Leaves from the records' canonical text: the roots signed checkpoints must have. */
  const truth = new CompactRange();
  /** Leaves as the stored tree holds them: what every stored node must be built from. */
  const tree = new CompactRange();
  const counts = { subtrees: 0, checkpoints: 0 };
  const kinds = new Map<string, number>();
  const signed: SignedPrefix = { goodSize: 0, broken: false };
  const brokenCheckpoints = new Set<number>();
  const orphans: Orphans = new Map();
  let lastCheckpointSize = -1;
  let previousChain: string | undefined;
  let previousTainted = false;

  const checkpointsAt = async (size: number): Promise<void> => {
    for (let next = await checkpoints.peek(); next !== undefined && next.size <= size; next = await checkpoints.peek()) {
      await checkpoints.take();
      counts.checkpoints++;
      const before = findings.total;
      checkCheckpointRow(next, truth.root(), signed, log, findings);
      if (findings.total > before && brokenCheckpoints.size < MAX_REMEMBERED_BROKEN) brokenCheckpoints.add(next.size);
      lastCheckpointSize = next.size;
    }
  };

  /** The stored leaf node at `position`, after reporting stored nodes that sort before it. */
  const storedLeaf = async (position: number): Promise<Buffer | undefined> => {
    for (;;) {
      const next = await stored.peek();
      if (next === undefined) return undefined;
      const order = completionOrder(next, { level: 0, index: position });
      if (order > 0) return undefined;
      await stored.take();
      if (order === 0) return next.hash;
      extraSubtree(next, undefined, findings);
    }
  };

  /** Adds leaf `position` to both trees and checks every stored node it completes. */
  const appendLeaf = async (position: number, truthLeaf: Buffer, treeLeaf: Buffer, storedHash: Buffer | undefined): Promise<void> => {
    truth.append(truthLeaf);
    const [leafNode, ...parents] = tree.append(treeLeaf);
    counts.subtrees += 1 + parents.length;
    if (storedHash === undefined) missingSubtree(leafNode!, findings);
    else if (!storedHash.equals(treeLeaf)) differentSubtree(leafNode!, storedHash, findings);
    for (const node of parents) await matchSubtree(stored, node, findings);
    await checkpointsAt(truth.size);
  };

  try {
    await checkpointsAt(0);
    for await (const row of source.records()) {
      const position = tree.size;
      if (row.ledgerIndex !== position) {
        findings.add({
          table: 'records',
          row: recordRow(row),
          check: 'ledger_index',
          message:
            row.ledgerIndex > position
              ? `ledger ${row.ledgerIndex - position === 1 ? `index ${position} is` : `indices ${position}…${row.ledgerIndex - 1} are`} missing before it: entries run 0…n−1 without gaps`
              : `ledger index ${row.ledgerIndex} is out of order at position ${position}`,
          expected: String(position),
          found: String(row.ledgerIndex),
        });
        // Keep the stored tree aligned over a (small) hole: its nodes are still there.
        if (row.ledgerIndex > position && row.ledgerIndex - position <= MAX_GAP_FILL) {
          for (let missing = position; missing < row.ledgerIndex; missing++) {
            const hash = await storedLeaf(missing);
            await appendLeaf(missing, ZERO_LEAF, hash ?? ZERO_LEAF, hash);
          }
          previousChain = undefined;
        }
      }
      const at = tree.size;
      const before = findings.total;
      const { leaf, chain, record } = checkRecordRow(row, chains, orphans, findings);
      authority.observe(row.ledgerIndex, record);
      kinds.set(row.kind, (kinds.get(row.kind) ?? 0) + 1);

      // Three witnesses of leaf `at`: the text (leaf), the records column and the stored node.
      const storedHash = await storedLeaf(at);
      let treeLeaf = leaf;
      if (storedHash !== undefined && !storedHash.equals(leaf)) {
        if (Buffer.isBuffer(row.leafHash) && storedHash.equals(row.leafHash)) {
          treeLeaf = storedHash; // the text changed after it was hashed: the record's findings say so
        } else if ((await treeHolds(source, at, storedHash, leaf)) === 'stored') {
          treeLeaf = storedHash;
          findings.add({
            table: 'records',
            row: recordRow(row),
            check: 'merkle_leaf',
            message: `this is not the record the Merkle tree holds at ledger index ${at} (its stored neighbours agree with the stored leaf): moved or replaced`,
            expected: hex(storedHash),
            found: hex(leaf),
          });
        }
      }
      // A boundary between chains is where a checkpoint must be, unless a record around it is
      // itself out of place (then the boundary is not where an append ended).
      const tainted = findings.total > before;
      if (previousChain !== undefined && chain !== previousChain && !tainted && !previousTainted && lastCheckpointSize !== at) {
        findings.add({
          table: 'checkpoints',
          row: { size: at },
          check: 'missing',
          message: `no checkpoint of size ${at}, though ledger entries ${at - 1} and ${at} belong to different chains (every append is of one chain and ends in a checkpoint)`,
        });
      }
      previousChain = chain;
      previousTainted = tainted;
      await appendLeaf(at, leaf, treeLeaf, storedHash);
    }
    if (truth.size > 0 && lastCheckpointSize !== truth.size) {
      findings.add({
        table: 'checkpoints',
        row: { size: truth.size },
        check: 'missing',
        message: `no checkpoint of size ${truth.size}, the whole ledger (every append ends in a checkpoint)`,
      });
    }
    for (let extra = await stored.take(); extra !== undefined; extra = await stored.take()) {
      extraSubtree(extra, tree.size, findings);
    }
    for (let extra = await checkpoints.take(); extra !== undefined; extra = await checkpoints.take()) {
      counts.checkpoints++;
      findings.add({
        table: 'checkpoints',
        row: { size: extra.size },
        check: 'beyond_ledger',
        message: `checkpoint of size ${extra.size} commits to more entries than the ${truth.size} stored (entries deleted?)`,
      });
    }
  } finally {
    await stored.close();
    await checkpoints.close();
  }
  for (const orphan of orphans.values()) {
    findings.add({
      table: 'agent_epochs',
      row: { agent: orphan.agent, epoch: orphan.epoch },
      check: 'missing_row',
      message: `no row for ${orphan.agent} epoch ${orphan.epoch}, which has ${orphan.count} ledger entries: their signatures cannot be checked`,
    });
  }
  return {
    size: truth.size,
    root: truth.root(),
    ...counts,
    brokenCheckpoints: brokenCheckpoints.size < MAX_REMEMBERED_BROKEN ? brokenCheckpoints : 'too_many',
    kinds,
  };
}
