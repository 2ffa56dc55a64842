/**
 * The ledger: one append-only RFC 9162 Merkle tree over every accepted record, of every agent
 * and of the collector's own chain, with a signed C2SP checkpoint after every append.
 *
 * Invariants
 * - Leaf i is the record at ledger index i; its leaf hash is sha256(0x00 || JCS(record)).
 * - Every complete subtree is stored exactly once, when it becomes complete; appending and
 *   computing a root read O(log n) stored nodes, never the records.
 * - Records enter the ledger only through `append`, inside the store's write transaction, in
 *   chain order: seq = head + 1 and prev = hash of the head, for every record. The same
 *   transaction moves the chain head, stores the Merkle nodes and the signed checkpoint of the
 *   new size: all of it commits, or none of it.
 *
 * On-disk layout: see the store (`records`, `merkle_subtrees`, `checkpoints`).
 *
 * Crash behaviour: everything `append` writes is in the caller's transaction; a crash before
 * COMMIT leaves the ledger at its previous size with its previous checkpoint, a crash after it
 * leaves the new size and its checkpoint. There is no state in between.
 */
import { signCheckpoint } from '../../shared/checkpoint.ts';
import { toBase64Url } from '../../shared/crypto.ts';
import { appendLeaves, EMPTY_ROOT, rootFromSubtrees } from '../../shared/merkle.ts';
import type { Receipt } from '../../shared/protocol.ts';
import { COLLECTOR_AGENT_ID, GENESIS_PREV, type RecordKind, type SignedRecord } from '../../shared/record.ts';
import type { NoteSigner } from '../../shared/signed-note.ts';
import type { ChainHead, CollectorStore, LedgerEntry, WriteTransaction } from '../store/store.ts';

/** A checkpoint as receipts and stats name it: size and base64url root. */
export type CheckpointRef = Receipt['checkpoint'];

/** A record ready for the ledger: checked, with its canonical text and hashes. */
export interface PreparedRecord {
  record: SignedRecord;
  canonical: string;
  recordHash: string;
  leafHash: Buffer;
}

export interface AppendResult {
  /** Ledger index of the first and last new entry. */
  first: number;
  last: number;
  head: ChainHead;
  checkpoint: CheckpointRef;
}

export interface LedgerStats {
  size: number;
  byKind: { [K in RecordKind]: number };
  checkpoint: CheckpointRef;
  /** Enrolled agents, not counting the collector's own chain. */
  agents: number;
  /** Records refused as equivocations and kept out of the ledger. */
  quarantined: number;
}

export class ChainContinuityError extends Error {
  override name = 'ChainContinuityError';
}

export class LedgerService {
  readonly origin: string;
  readonly #signer: NoteSigner;
  readonly #store: CollectorStore;

  constructor(options: { origin: string; signer: NoteSigner; store: CollectorStore }) {
    this.origin = options.origin;
    this.#signer = options.signer;
    this.#store = options.store;
  }

  /**
   * Appends `records` of one (agent, epoch) chain whose stored head is `head`. MUST be called
   * inside `store.write`. The records MUST continue the chain (checked again here: a caller's
   * mistake must not fork a chain in the ledger). Resolves after the writes are queued in the
   * transaction; they are durable only when it commits.
   */
  async append(
    tx: WriteTransaction,
    chain: { agent: string; epoch: number; head: ChainHead },
    records: readonly PreparedRecord[],
    receivedAt: string,
  ): Promise<AppendResult> {
    if (records.length === 0) throw new RangeError('nothing to append');
    let seq = chain.head.highestSeq;
    let prev = chain.head.highestHash ?? GENESIS_PREV;
    for (const { record, recordHash } of records) {
      if (record.agent !== chain.agent || record.epoch !== chain.epoch || record.seq !== seq + 1 || record.prev !== prev) {
        throw new ChainContinuityError(
          `record ${record.id} (${record.agent} epoch ${record.epoch} seq ${record.seq}) does not continue ${chain.agent} epoch ${chain.epoch} at seq ${seq}`,
        );
      }
      seq = record.seq;
      prev = recordHash;
    }

    const size = await tx.ledgerSize();
    const entries: LedgerEntry[] = records.map(({ record, canonical, recordHash, leafHash }, i) => ({
      ledgerIndex: size + i,
      id: record.id,
      agent: record.agent,
      epoch: record.epoch,
      seq: record.seq,
      kind: record.kind,
      type: record.type,
      at: record.at,
      receivedAt,
      canonical,
      recordHash,
      leafHash,
    }));
    await tx.appendRecords(entries);

    const read = await tx.subtreeReader(size);
    await tx.putSubtrees(appendLeaves(size, entries.map((entry) => entry.leafHash), read));
    const newSize = size + entries.length;
    const root = rootFromSubtrees(newSize, read);
    const note = signCheckpoint({ origin: this.origin, size: newSize, rootHash: root, extensions: [] }, this.#signer);
    await tx.putCheckpoint({ size: newSize, root, note, createdAt: receivedAt });

    const head: ChainHead = { highestSeq: seq, highestHash: prev };
    await tx.advanceChainHead(chain.agent, chain.epoch, chain.head, head);
    return { first: size, last: newSize - 1, head, checkpoint: { size: newSize, root: toBase64Url(root) } };
  }

  /** The latest checkpoint as a receipt names it, read inside `tx`. */
  async checkpointRef(tx: WriteTransaction): Promise<CheckpointRef> {
    const latest = await tx.latestCheckpoint();
    return latest ? { size: latest.size, root: toBase64Url(latest.root) } : { size: 0, root: toBase64Url(EMPTY_ROOT) };
  }

  async stats(): Promise<LedgerStats> {
    const [counts, collector] = await Promise.all([this.#store.ledgerCounts(), this.#store.currentEpoch(COLLECTOR_AGENT_ID)]);
    const latest = counts.checkpoint;
    return {
      size: counts.size,
      byKind: counts.byKind,
      checkpoint: latest ? { size: latest.size, root: toBase64Url(latest.root) } : { size: 0, root: toBase64Url(EMPTY_ROOT) },
      agents: counts.agents - (collector ? 1 : 0),
      quarantined: counts.quarantined,
    };
  }
}
