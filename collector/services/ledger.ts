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
 * - Checkpoints: one per append, so one per commit that grew the log (a batch, an enrollment).
 *   Commits are serialised by the store's write lock, so this is already coalesced: under load
 *   a checkpoint covers a whole batch, never one per record, and signing one (≈50 µs) is small
 *   next to the batch's signature checks. Every checkpoint is kept. A new log stores a signed
 *   checkpoint of size 0 (`ensureGenesis`), so there is always a latest checkpoint to serve.
 * - Proofs are served from committed state only (the store's read connection), for sizes up
 *   to the latest checkpoint, reading O(log n) stored subtrees: the proof functions run twice,
 *   once to learn which nodes they read (the nodes depend only on the sizes and index, never
 *   on hash values), then over exactly those nodes fetched in one store call.
 *
 * On-disk layout: see the store (`records`, `merkle_subtrees`, `checkpoints`).
 *
 * Crash behaviour: everything `append` writes is in the caller's transaction; a crash before
 * COMMIT leaves the ledger at its previous size with its previous checkpoint, a crash after it
 * leaves the new size and its checkpoint. There is no state in between.
 */
import { signCheckpoint } from '../../shared/checkpoint.ts';
import { toBase64Url } from '../../shared/crypto.ts';
import {
  appendLeaves,
  consistencyProofFromSubtrees,
  EMPTY_ROOT,
  HASH_SIZE,
  inclusionProofFromSubtrees,
  rootFromSubtrees,
  type SubtreeReader,
} from '../../shared/merkle.ts';
import { ProblemError } from '../../shared/problem.ts';
import type { Receipt } from '../../shared/protocol.ts';
import { COLLECTOR_AGENT_ID, GENESIS_PREV, type RecordKind, type SignedRecord } from '../../shared/record.ts';
import type { NoteSigner } from '../../shared/signed-note.ts';
import {
  StoreIntegrityError,
  type ChainHead,
  type CollectorStore,
  type LedgerAppend,
  type LedgerEntry,
  type StoredCheckpoint,
  type SubtreeRef,
  type WriteTransaction,
} from '../store/store.ts';

/** A checkpoint as receipts and stats name it: size and base64url root. */
export type CheckpointRef = Receipt['checkpoint'];

/** What the ledger stores of a record besides its canonical text (a whole record will do). */
export type LedgerRecordFields = Pick<SignedRecord, 'id' | 'agent' | 'epoch' | 'seq' | 'prev' | 'kind' | 'type' | 'at'>;

/** A record ready for the ledger: checked, with its canonical text and hashes. */
export interface PreparedRecord {
  record: LedgerRecordFields;
  /** The canonical text, or its UTF-8 bytes (as batch checks hand them over: packed-texts.ts). */
  canonical: string | Uint8Array;
  recordHash: string;
  leafHash: Buffer;
}

/** The canonical text of a prepared record as a string. */
export function canonicalTextOf(prepared: PreparedRecord): string {
  const { canonical } = prepared;
  return typeof canonical === 'string' ? canonical : Buffer.from(canonical.buffer, canonical.byteOffset, canonical.byteLength).toString('utf8');
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

/** RFC 9162 §2.1.4 consistency proof, as `GET /proofs/consistency` answers it. */
export interface ConsistencyProof {
  from: number;
  to: number;
  path: Buffer[];
}

/** RFC 9162 §2.1.3 inclusion proof, as `GET /proofs/inclusion` answers it. */
export interface InclusionProof {
  index: number;
  size: number;
  leafHash: Buffer;
  path: Buffer[];
}

/** Which leaf an inclusion proof is for: a record id, or a ledger index. */
export type LeafSelector = { id: string } | { index: number };

const PLANNING_HASH = Buffer.alloc(HASH_SIZE);

/**
 * Runs `compute` (a proof or root function of shared/merkle.ts) over stored subtrees in two
 * passes: the first, over placeholder hashes, records which nodes it reads (they depend on
 * sizes and indices only); the second gets exactly those nodes, read in one `fetch` call.
 * O(log n) nodes for any proof. Report exports use it too, with a caching `fetch`.
 */
export async function computeFromStoredSubtrees<T>(
  compute: (read: SubtreeReader) => T,
  fetch: (nodes: readonly SubtreeRef[]) => Promise<(Buffer | undefined)[]>,
): Promise<T> {
  const wanted: SubtreeRef[] = [];
  compute((level, index) => {
    wanted.push({ level, index });
    return PLANNING_HASH;
  });
  const hashes = await fetch(wanted);
  let next = 0;
  return compute((level, index) => {
    const ref = wanted[next];
    const hash = hashes[next++];
    if (!ref || ref.level !== level || ref.index !== index) throw new Error(`proof read node (${level}, ${index}) it did not plan`);
    if (!hash) throw new StoreIntegrityError(`Merkle subtree (level ${level}, index ${index}) is missing from the store`);
    return hash;
  });
}

export class LedgerService {
  readonly origin: string;
  readonly #signer: NoteSigner;
  readonly #store: CollectorStore;
  readonly #now: () => Date;

  constructor(options: { origin: string; signer: NoteSigner; store: CollectorStore; now?: () => Date }) {
    this.origin = options.origin;
    this.#signer = options.signer;
    this.#store = options.store;
    this.#now = options.now ?? (() => new Date());
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
    const { append, result } = await this.planAppend(tx, await tx.ledgerSize(), chain, records, receivedAt);
    await tx.appendLedger(append);
    return result;
  }

  /**
   * Plans appending `records` to the tree of `size` leaves, writing nothing: the ledger entries,
   * the new Merkle nodes, the signed checkpoint of the new size and the chain's new head, for
   * one `appendLedger` or `commitBatch` call. MUST be called inside the `store.write` that then
   * writes the plan, with `size` read in it.
   */
  async planAppend(
    tx: WriteTransaction,
    size: number,
    chain: { agent: string; epoch: number; head: ChainHead },
    records: readonly PreparedRecord[],
    receivedAt: string,
  ): Promise<{ append: LedgerAppend; result: AppendResult }> {
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

    const stored = await tx.subtreeReader(size);
    const subtrees = appendLeaves(size, entries.map((entry) => entry.leafHash), stored);
    // The new root reads nodes this append makes; they are not stored yet.
    const made = new Map<string, Buffer>();
    for (const node of subtrees) made.set(`${node.level}/${node.index}`, node.hash);
    const newSize = size + entries.length;
    const root = rootFromSubtrees(newSize, (level, index) => made.get(`${level}/${index}`) ?? stored(level, index));
    const note = signCheckpoint({ origin: this.origin, size: newSize, rootHash: root, extensions: [] }, this.#signer);

    const head: ChainHead = { highestSeq: seq, highestHash: prev };
    return {
      append: {
        entries,
        subtrees,
        checkpoint: { size: newSize, root, note, createdAt: receivedAt },
        chain: { agent: chain.agent, epoch: chain.epoch, from: chain.head, to: head },
      },
      result: { first: size, last: newSize - 1, head, checkpoint: { size: newSize, root: toBase64Url(root) } },
    };
  }

  /**
   * Stores the signed checkpoint of the empty log, if the log is empty and has no checkpoint:
   * from its first start on, the collector always has a latest checkpoint to serve. Safe to repeat.
   */
  async ensureGenesis(): Promise<void> {
    await this.#store.write(async (tx) => {
      if ((await tx.latestCheckpoint()) !== undefined || (await tx.ledgerSize()) !== 0) return;
      const note = signCheckpoint({ origin: this.origin, size: 0, rootHash: EMPTY_ROOT, extensions: [] }, this.#signer);
      await tx.putCheckpoint({ size: 0, root: Buffer.from(EMPTY_ROOT), note, createdAt: this.#now().toISOString() });
    });
  }

  /** The newest committed checkpoint (undefined only before the first start finished). */
  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    return this.#store.latestCheckpoint();
  }

  /** The committed checkpoint of exactly `size` leaves. */
  async checkpointOfSize(size: number): Promise<StoredCheckpoint | undefined> {
    return this.#store.checkpointOfSize(size);
  }

  /**
   * The consistency proof from the tree of `from` leaves to the tree of `to`. Follows the edge
   * policy of shared/merkle.ts: `from` MUST be ≥ 1 (nothing is proved from the empty tree) and
   * ≤ `to`; `from == to` gives an empty path. `to` MUST NOT exceed the latest checkpoint's size.
   * Rejects with ProblemError `request.invalid` otherwise.
   */
  async consistencyProof(from: number, to: number): Promise<ConsistencyProof> {
    if (from === 0) throw new ProblemError('request.invalid', 'from must be at least 1: a consistency proof from the empty tree proves nothing');
    if (from > to) throw new ProblemError('request.invalid', `from (${from}) must not be greater than to (${to})`);
    const size = await this.#committedSize();
    if (to > size) throw new ProblemError('request.invalid', `to (${to}) is beyond the latest checkpoint size ${size}`, { latestSize: size });
    const path = from === to ? [] : await this.#withSubtrees((read) => consistencyProofFromSubtrees(from, to, read));
    return { from, to, path };
  }

  /**
   * The inclusion proof of a leaf (by record id or ledger index) in the tree of `size` leaves,
   * `size` defaulting to the latest checkpoint's. Rejects with ProblemError `resource.not_found`
   * for an unknown record id and `request.invalid` when the leaf is not in that tree or `size`
   * is beyond the latest checkpoint.
   */
  async inclusionProof(leaf: LeafSelector, size?: number): Promise<InclusionProof> {
    // The record first, then the checkpoint: a committed record is always inside the latest
    // checkpoint read after it (both commit in one transaction).
    const record = 'id' in leaf ? await this.#store.findLedgerRecord(leaf.id) : undefined;
    if ('id' in leaf && !record) throw new ProblemError('resource.not_found', `there is no record ${leaf.id} in the ledger`);
    const latest = await this.#committedSize();
    const treeSize = size ?? latest;
    if (treeSize > latest) throw new ProblemError('request.invalid', `size (${treeSize}) is beyond the latest checkpoint size ${latest}`, { latestSize: latest });
    const index = record ? record.ledgerIndex : (leaf as { index: number }).index;
    if (index >= treeSize) {
      throw new ProblemError(
        'request.invalid',
        record
          ? `record ${record.id} is at ledger index ${index}, outside the tree of size ${treeSize}`
          : `index (${index}) must be less than size (${treeSize})`,
        { index },
      );
    }
    const knownLeafHash = record?.leafHash;
    const { leafHash, path } = await this.#withSubtrees((read) => ({
      leafHash: knownLeafHash ?? read(0, index),
      path: inclusionProofFromSubtrees(index, treeSize, read),
    }));
    return { index, size: treeSize, leafHash, path };
  }

  async #committedSize(): Promise<number> {
    return (await this.#store.latestCheckpoint())?.size ?? 0;
  }

  async #withSubtrees<T>(compute: (read: SubtreeReader) => T): Promise<T> {
    return computeFromStoredSubtrees(compute, (nodes) => this.#store.readSubtrees(nodes));
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
