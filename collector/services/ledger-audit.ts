/**
 * `sakshya-collector ledger verify`: an audit of the whole store that trusts nothing stored
 * except the records' canonical text, the enrolled public keys and the collector's own keys.
 * Every derived value (hashes, Merkle nodes, roots, chain heads) is recomputed and compared
 * with what is stored; every signature is checked.
 *
 * What it checks, table by table
 * - records, streamed in ledger order: ledger indices are 0…n−1 without a gap; the canonical
 *   text parses, matches recordSchema and re-canonicalises (RFC 8785) to the same bytes; the
 *   columns (id, agent, epoch, seq, kind, type, at) agree with it; `record_hash` and
 *   `leaf_hash` equal sha256(text) and sha256(0x00 || text); the signature verifies with the
 *   key valid for that (agent, epoch, seq) and `kid` names it; per (agent, epoch) the seqs run
 *   1, 2, 3 … and every `prev` is the hash of the record before.
 * - merkle_subtrees: while the leaves stream, the complete subtrees they form are computed
 *   incrementally (a compact range of at most log2(n) + 1 peaks) and merged against the stored
 *   nodes, streamed in the same order (by the leaf that completes them). A stored node that
 *   differs, is missing, or should not exist is named; as each is compared with the hash of
 *   its children, recomputed, every stored node equals the hash of its stored children.
 *   Each leaf has three witnesses: the record's text, its `leaf_hash` column and the stored
 *   level-0 node. The audit blames the one that disagrees: a text that no longer matches both
 *   stored hashes is a changed record; a stored leaf that its stored sibling and parent agree
 *   with, under a record that hashes otherwise, is a record moved or replaced; otherwise the
 *   node is wrong. The tree is then rebuilt over the corroborated leaf, so one bad row gives
 *   one finding, not one per ancestor. A small hole in the ledger indices (deleted records) is
 *   bridged with the stored leaf nodes, so the rows after it are still compared in place.
 * - checkpoints, merged by size: the note's signature with the log key, its origin, its size,
 *   and the root column equal to the signed root. The signed root MUST equal the root of the
 *   first `size` leaves recomputed from the records' text (never from the stored subtrees): a
 *   signed note cannot be forged without the log key, so when they differ the records are at
 *   fault, and the finding names the range between the last checkpoint they reproduce and this
 *   one. Consistency between consecutive checkpoints follows: both roots are MTHs of prefixes
 *   of one leaf sequence, so every RFC 9162 consistency proof between them exists and
 *   verifies. Every append is of one chain and ends in a checkpoint, so a boundary between two
 *   chains in the ledger, and the end of the ledger, MUST have one: a deleted checkpoint is
 *   named there, or by a receipt that names it.
 * - agent_epochs: `kid` is the thumbprint of `public_jwk`; the chain head (`highest_seq`,
 *   `highest_hash`) is the last record of the chain; every chain in the ledger has a row; a
 *   witness report names a stored checkpoint.
 * - receipts: the JWS verifies with the receipt key and covers exactly the stored text; the
 *   receipt names its row's batch and agent and this collector; its ledger range holds only
 *   its chain's entries and ends just before the checkpoint it names, which is stored with that
 *   root. Every agent entry is in exactly one receipt's range (the collector's own chain has no
 *   receipts), so a deleted receipt shows as entries no receipt covers. (A receipt for a batch
 *   of duplicates only names no entries: deleting one of those cannot be detected, and loses
 *   nothing — the agent holds the signed copy.)
 * - ledger_kind_counts: the per-kind counters equal the records counted per `kind` column.
 * - who may write (services/authority-replay.ts): the COLLECTOR chain's enrollment, revocation
 *   and token records, replayed, explain every row of agent_epochs, enrollment_tokens and
 *   api_tokens; no agent record entered the ledger after its epoch's revocation record.
 * - schema: the append-only triggers are present. Their absence is not tampering with data,
 *   but it is how an intruder would start, so it is reported (the triggers are a guard, not
 *   the proof: ADR 0005).
 *
 * Memory stays flat: rows are streamed from one read-only snapshot (LedgerAuditSource); what is
 * kept is O(log n) Merkle peaks, one small state per (agent, epoch), and at most MAX_FINDINGS
 * findings. Findings are counted past the limits (per check and in all), never dropped silently.
 *
 * Key rotation (ADR 0006): signatures are checked with `ChainKeys.keyAt(seq)`. Each epoch starts
 * with its enrolled key (agent_epochs.public_jwk), valid from seq 1; every valid `key.rotated`
 * record met in the stream (signed with the key valid at its seq s) adds its new key from s + 1,
 * so the key history is re-derived from the chain, never taken from storage. The stored history
 * (`agent_keys`) must equal the derived one: a row that differs, is missing or is extra is named.
 */
import type { KeyObject } from 'node:crypto';
import { canonicalJson } from '../../shared/canonical-json.ts';
import { CheckpointError, verifyCheckpoint, type Checkpoint } from '../../shared/checkpoint.ts';
import { jwkThumbprint, publicKeyFromJwk, toBase64Url, type Ed25519PublicJwk } from '../../shared/crypto.ts';
import { EMPTY_ROOT, nodeHash } from '../../shared/merkle.ts';
import { describeZodError, receiptSchema, recordSchema, type Receipt } from '../../shared/protocol.ts';
import { verifyReceipt } from '../../shared/receipt.ts';
import {
  COLLECTOR_AGENT_ID,
  GENESIS_PREV,
  leafHashOfCanonical,
  recordHashOfCanonical,
  verifyRecordSignature,
  type SignedRecord,
} from '../../shared/record.ts';
import { NoteError, type NoteVerifier } from '../../shared/signed-note.ts';
import { checkKeyRotation, isKeyRotationRecord } from '../../shared/key-rotation.ts';
import { AuthorityReplay } from './authority-replay.ts';
import type {
  AuditCheckpointRow,
  AuditRecordRow,
  AuditSubtreeRow,
  CollectorStore,
  LedgerAuditSource,
} from '../store/store.ts';

/** A hole in the ledger indices up to this long is bridged with the stored tree's nodes. */
export const MAX_GAP_FILL = 4096;
/** Stands in for a leaf whose record is missing: no record hashes to it. */
const ZERO_LEAF = Buffer.alloc(32);

/** Findings listed in full; more are counted in `omitted`. */
export const MAX_FINDINGS = 500;
/** Findings listed per (table, check): one broken thing can cause thousands of the same kind. */
export const MAX_FINDINGS_PER_CHECK = 25;

export type AuditTable =
  | 'records'
  | 'merkle_subtrees'
  | 'checkpoints'
  | 'agent_epochs'
  | 'agent_keys'
  | 'receipts'
  | 'ledger_kind_counts'
  | 'enrollment_tokens'
  | 'api_tokens'
  | 'schema';

/** The row a finding is about, by its column names. */
export interface AuditRow {
  ledger_index?: number;
  id?: string;
  agent?: string;
  epoch?: number;
  seq?: number;
  level?: number;
  idx?: number;
  size?: number;
  from_seq?: number;
  batch_id?: string;
  name?: string;
  kind?: string;
}

export interface AuditFinding {
  table: AuditTable;
  row: AuditRow;
  /** Stable name of the failed check, e.g. `record_hash`, `signature`, `chain_prev`. */
  check: string;
  message: string;
  expected?: string;
  found?: string;
}

export interface AuditReport {
  intact: boolean;
  origin: string;
  /** Rows read per table. */
  checked: { records: number; chains: number; subtrees: number; checkpoints: number; receipts: number };
  /** The ledger as recomputed from the records: size and base64url root. */
  ledger: { size: number; root: string };
  findings: AuditFinding[];
  /** Findings beyond the limits, counted but not listed. */
  omitted: number;
}

class Findings {
  readonly list: AuditFinding[] = [];
  omitted = 0;
  readonly #perCheck = new Map<string, number>();

  add(finding: AuditFinding): void {
    const key = `${finding.table}/${finding.check}`;
    const seen = this.#perCheck.get(key) ?? 0;
    this.#perCheck.set(key, seen + 1);
    if (seen >= MAX_FINDINGS_PER_CHECK || this.list.length >= MAX_FINDINGS) this.omitted++;
    else this.list.push(finding);
  }

  get total(): number {
    return this.list.length + this.omitted;
  }
}

/** One row at a time from an async iterator, with a look at the next one. */
class Peekable<T> {
  readonly #iterator: AsyncIterator<T>;
  #next: IteratorResult<T> | undefined;

  constructor(iterable: AsyncIterable<T>) {
    this.#iterator = iterable[Symbol.asyncIterator]();
  }

  async peek(): Promise<T | undefined> {
    this.#next ??= await this.#iterator.next();
    return this.#next.done ? undefined : this.#next.value;
  }

  async take(): Promise<T | undefined> {
    const value = await this.peek();
    this.#next = undefined;
    return value;
  }

  async close(): Promise<void> {
    await this.#iterator.return?.();
  }
}

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

/**
 * The signing keys of one (agent, epoch) over its seqs: the enrolled key from seq 1, then one
 * key per key.rotated record of the chain, valid from the seq after it (ADR 0006).
 */
class ChainKeys {
  readonly #keys: { fromSeq: number; kid: string; publicKey: KeyObject }[] = [];

  add(fromSeq: number, kid: string, publicKey: KeyObject): void {
    this.#keys.push({ fromSeq, kid, publicKey });
    this.#keys.sort((a, b) => a.fromSeq - b.fromSeq);
  }

  kids(): Set<string> {
    return new Set(this.#keys.map((key) => key.kid));
  }

  /** The history as (fromSeq, kid) pairs, by fromSeq. */
  list(): { fromSeq: number; kid: string }[] {
    return this.#keys.map(({ fromSeq, kid }) => ({ fromSeq, kid }));
  }

  keyAt(seq: number): { kid: string; publicKey: KeyObject } | undefined {
    let found: { kid: string; publicKey: KeyObject } | undefined;
    for (const key of this.#keys) if (key.fromSeq <= seq) found = key;
    return found;
  }
}

/** What the audit knows of one (agent, epoch): its stored row, and the chain as streamed so far. */
interface ChainState {
  agent: string;
  epoch: number;
  keys: ChainKeys;
  /** The stored key history (agent_keys), to compare with the one derived from the chain. */
  storedKeys: { fromSeq: number; kid: string }[];
  highestSeq: number;
  highestHash: string | null;
  witnessedSize: number | null;
  /** The last record of the chain seen in the stream. */
  seq: number;
  hash: string | null;
}

/** What the pass over the leaves found, for the checks after it. */
interface LedgerPass {
  size: number;
  root: Buffer;
  subtrees: number;
  checkpoints: number;
  /** Sizes of checkpoint rows with findings (or too many to remember). */
  brokenCheckpoints: Set<number> | 'too_many';
  /** Entries per `kind` column value, as streamed. */
  kinds: Map<string, number>;
}

/** Checkpoint sizes with findings remembered for the receipts' cross-check. */
const MAX_REMEMBERED_BROKEN = 10_000;

/** How far the records agree with the signed checkpoints. */
interface SignedPrefix {
  /** The largest checkpoint size so far whose signed root the records reproduce. */
  goodSize: number;
  /** True while checkpoints disagree (only the first of a run is reported). */
  broken: boolean;
}

function chainKey(agent: string, epoch: number): string {
  return `${agent}\u0000${epoch}`;
}

function hex(bytes: Buffer): string {
  return bytes.toString('hex');
}

export class LedgerAudit {
  readonly #store: CollectorStore;
  readonly #origin: string;
  readonly #logVerifier: NoteVerifier;
  readonly #receiptKey: KeyObject;

  constructor(options: { store: CollectorStore; origin: string; logVerifier: NoteVerifier; receiptKey: KeyObject }) {
    this.#store = options.store;
    this.#origin = options.origin;
    this.#logVerifier = options.logVerifier;
    this.#receiptKey = options.receiptKey;
  }

  /** Audits one snapshot of the whole store. Resolves with every finding (bounded); never throws for tampered data. */
  async run(): Promise<AuditReport> {
    const source = await this.#store.openAudit();
    const findings = new Findings();
    try {
      await this.#checkGuards(source, findings);
      const chains = await this.#loadChains(source, findings);
      const authority = new AuthorityReplay((finding) => findings.add(finding));
      const ledger = await this.#checkLedger(source, chains, authority, findings);
      await this.#checkKindCounts(source, ledger.kinds, findings);
      await this.#checkChainRows(source, chains, ledger.size, findings);
      await authority.checkTables(source);
      const receipts = await this.#checkReceipts(source, chains, ledger, findings);
      return {
        intact: findings.total === 0,
        origin: this.#origin,
        checked: { records: ledger.size, chains: chains.size, subtrees: ledger.subtrees, checkpoints: ledger.checkpoints, receipts },
        ledger: { size: ledger.size, root: toBase64Url(ledger.root) },
        findings: findings.list,
        omitted: findings.omitted,
      };
    } finally {
      await source.close();
    }
  }

  /** The per-kind counters `ledger stats` reads, against the records counted in the pass. */
  async #checkKindCounts(source: LedgerAuditSource, counted: Map<string, number>, findings: Findings): Promise<void> {
    const stored = new Map((await source.kindCounts()).map((row) => [row.kind, row.records]));
    for (const kind of [...new Set([...counted.keys(), ...stored.keys()])].sort()) {
      const expected = counted.get(kind) ?? 0;
      const found = stored.get(kind) ?? 0;
      if (expected !== found) {
        findings.add({
          table: 'ledger_kind_counts',
          row: { kind },
          check: 'count',
          message: `the count of ${kind} entries is not the number of ${kind} records in the ledger`,
          expected: String(expected),
          found: String(found),
        });
      }
    }
  }

  async #checkGuards(source: LedgerAuditSource, findings: Findings): Promise<void> {
    for (const name of await source.missingAppendOnlyGuards()) {
      findings.add({ table: 'schema', row: { name }, check: 'guard_missing', message: `the append-only guard ${name} is missing (dropped?)` });
    }
  }

  async #loadChains(source: LedgerAuditSource, findings: Findings): Promise<Map<string, ChainState>> {
    const chains = new Map<string, ChainState>();
    for await (const row of source.agentEpochs()) {
      const ref = { agent: row.agent, epoch: row.epoch };
      const keys = new ChainKeys();
      try {
        const jwk = JSON.parse(row.publicJwk) as Ed25519PublicJwk;
        const publicKey = publicKeyFromJwk(jwk);
        const thumbprint = jwkThumbprint(jwk);
        if (thumbprint !== row.kid) {
          findings.add({ table: 'agent_epochs', row: ref, check: 'kid', message: 'kid is not the RFC 7638 thumbprint of public_jwk', expected: thumbprint, found: row.kid });
        }
        keys.add(1, thumbprint, publicKey);
      } catch (err) {
        findings.add({ table: 'agent_epochs', row: ref, check: 'public_jwk', message: `public_jwk is not an Ed25519 public JWK: ${(err as Error).message}` });
      }
      chains.set(chainKey(row.agent, row.epoch), {
        agent: row.agent,
        epoch: row.epoch,
        keys,
        storedKeys: [],
        highestSeq: row.highestSeq,
        highestHash: row.highestHash,
        witnessedSize: row.witnessedSize,
        seq: 0,
        hash: null,
      });
    }
    for await (const row of source.agentKeys()) {
      // Keys of a chain without an agent_epochs row are not compared: that chain's records are
      // named as unverifiable (missing_row) instead.
      chains.get(chainKey(row.agent, row.epoch))?.storedKeys.push({ fromSeq: row.fromSeq, kid: row.kid });
    }
    return chains;
  }

  /** Records, Merkle subtrees and checkpoints, in one pass over the leaves. */
  async #checkLedger(
    source: LedgerAuditSource,
    chains: Map<string, ChainState>,
    authority: AuthorityReplay,
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
    /** Records of chains with no agent_epochs row: reported once per chain, at the end. */
    const orphans = new Map<string, { agent: string; epoch: number; count: number }>();
    let lastCheckpointSize = -1;
    let previousChain: string | undefined;
    let previousTainted = false;

    const checkpointsAt = async (size: number): Promise<void> => {
      for (let next = await checkpoints.peek(); next !== undefined && next.size <= size; next = await checkpoints.peek()) {
        await checkpoints.take();
        counts.checkpoints++;
        const before = findings.total;
        this.#checkCheckpoint(next, truth.root(), signed, findings);
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
        this.#extraSubtree(next, undefined, findings);
      }
    };

    /** Adds leaf `position` to both trees and checks every stored node it completes. */
    const appendLeaf = async (position: number, truthLeaf: Buffer, treeLeaf: Buffer, storedHash: Buffer | undefined): Promise<void> => {
      truth.append(truthLeaf);
      const [leafNode, ...parents] = tree.append(treeLeaf);
      counts.subtrees += 1 + parents.length;
      if (storedHash === undefined) this.#missingSubtree(leafNode!, findings);
      else if (!storedHash.equals(treeLeaf)) this.#differentSubtree(leafNode!, storedHash, findings);
      for (const node of parents) await this.#matchSubtree(stored, node, findings);
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
        const { leaf, chain, record } = this.#checkRecord(row, chains, orphans, findings);
        authority.observe(row.ledgerIndex, record);
        kinds.set(row.kind, (kinds.get(row.kind) ?? 0) + 1);

        // Three witnesses of leaf `at`: the text (leaf), the records column and the stored node.
        const storedHash = await storedLeaf(at);
        let treeLeaf = leaf;
        if (storedHash !== undefined && !storedHash.equals(leaf)) {
          if (Buffer.isBuffer(row.leafHash) && storedHash.equals(row.leafHash)) {
            treeLeaf = storedHash; // the text changed after it was hashed: the record's findings say so
          } else if ((await this.#treeHolds(source, at, storedHash, leaf)) === 'stored') {
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
        this.#extraSubtree(extra, tree.size, findings);
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

  /**
   * Which of two candidate leaves at `position` the stored tree was built over: the one whose
   * hash with the stored sibling gives the stored parent. 'unknown' without both of them.
   */
  async #treeHolds(source: LedgerAuditSource, position: number, storedLeaf: Buffer, recordLeaf: Buffer): Promise<'stored' | 'record' | 'unknown'> {
    const even = position % 2 === 0;
    const sibling = await source.subtree(0, even ? position + 1 : position - 1);
    const parent = await source.subtree(1, Math.floor(position / 2));
    if (!sibling || !parent) return 'unknown';
    const withSibling = (leaf: Buffer) => (even ? nodeHash(leaf, sibling) : nodeHash(sibling, leaf));
    if (withSibling(storedLeaf).equals(parent)) return 'stored';
    if (withSibling(recordLeaf).equals(parent)) return 'record';
    return 'unknown';
  }

  /** Checks one record row; returns its leaf hash (from its canonical text) and its chain's key. */
  #checkRecord(
    row: AuditRecordRow,
    chains: Map<string, ChainState>,
    orphans: Map<string, { agent: string; epoch: number; count: number }>,
    findings: Findings,
  ): { leaf: Buffer; chain: string; record: SignedRecord | undefined } {
    const ref = recordRow(row);
    const add = (check: string, message: string, expected?: string, found?: string) =>
      findings.add({ table: 'records', row: ref, check, message, ...(expected !== undefined ? { expected, found: found ?? '' } : {}) });

    const bytes = Buffer.from(row.canonical, 'utf8');
    const leaf = leafHashOfCanonical(bytes);
    const hash = recordHashOfCanonical(bytes);
    if (row.recordHash !== hash) add('record_hash', 'record_hash is not sha256 of the canonical text', hash, row.recordHash);
    if (!Buffer.isBuffer(row.leafHash) || !row.leafHash.equals(leaf)) {
      add('leaf_hash', 'leaf_hash is not sha256(0x00 || canonical text)', hex(leaf), Buffer.isBuffer(row.leafHash) ? hex(row.leafHash) : String(row.leafHash));
    }

    let record: SignedRecord | undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(row.canonical);
    } catch {
      add('canonical_json', 'the canonical text is not JSON');
    }
    if (parsed !== undefined) {
      const result = recordSchema.safeParse(parsed);
      if (result.success) record = result.data as SignedRecord;
      else add('record_schema', `the record does not match record v1: ${describeZodError(result.error, 3)}`);
      let again: string | undefined;
      try {
        again = canonicalJson(parsed);
      } catch {
        again = undefined;
      }
      if (again !== row.canonical) add('canonical_form', 'the stored text is not the RFC 8785 canonical form of the record it holds');
    }
    if (record) {
      const columns: [keyof AuditRecordRow & keyof SignedRecord, string | number][] = [
        ['id', record.id],
        ['agent', record.agent],
        ['epoch', record.epoch],
        ['seq', record.seq],
        ['kind', record.kind],
        ['type', record.type],
        ['at', record.at],
      ];
      for (const [column, value] of columns) {
        if (row[column] !== value) add(`column_${column}`, `column ${column} differs from the record's ${column}`, String(value), String(row[column]));
      }
    }

    const agent = record?.agent ?? row.agent;
    const epoch = record?.epoch ?? row.epoch;
    const seq = record?.seq ?? row.seq;
    const key = chainKey(agent, epoch);
    const chain = chains.get(key);
    if (!chain) {
      const orphan = orphans.get(key) ?? { agent, epoch, count: 0 };
      orphan.count++;
      orphans.set(key, orphan);
      return { leaf, chain: key, record };
    }
    if (record) {
      const signer = chain.keys.keyAt(seq);
      if (signer && record.kid !== signer.kid) add('kid', `kid does not name the key of ${agent} epoch ${epoch} valid at seq ${seq}`, signer.kid, record.kid);
      else if (signer && !verifyRecordSignature(record, signer.publicKey)) add('signature', `the signature does not verify with the key of ${agent} epoch ${epoch} valid at seq ${seq}`);
      else if (signer && isKeyRotationRecord(record) && seq === chain.seq + 1) {
        const checked = checkKeyRotation(record.body, chain.keys.kids());
        if (checked.ok) chain.keys.add(seq + 1, checked.rotation.newKid, publicKeyFromJwk(checked.rotation.newKey));
        else add('key_rotation', `a signed key.rotated record that rotates to no valid key: ${checked.reason}`);
      }
    }
    const expectedSeq = chain.seq + 1;
    if (seq !== expectedSeq) {
      add(
        'chain_seq',
        chain.seq === 0
          ? `the first entry of ${agent} epoch ${epoch} has seq ${seq}, not 1`
          : `seq ${seq} follows seq ${chain.seq} of ${agent} epoch ${epoch}${seq > expectedSeq ? `: seqs ${expectedSeq}…${seq - 1} are missing` : ''}`,
        String(expectedSeq),
        String(seq),
      );
    } else if (record) {
      const expectedPrev = chain.hash ?? GENESIS_PREV;
      if (record.prev !== expectedPrev) add('chain_prev', `prev is not the hash of ${agent} epoch ${epoch} seq ${chain.seq}`, expectedPrev, record.prev);
    }
    chain.seq = seq;
    // A changed text is reported above; link the next record to the hash stored when it came in.
    chain.hash = row.recordHash !== hash && /^[A-Za-z0-9_-]{43}$/.test(row.recordHash) ? row.recordHash : hash;
    return { leaf, chain: key, record };
  }

  async #matchSubtree(stored: Peekable<AuditSubtreeRow>, node: ComputedNode, findings: Findings): Promise<void> {
    for (;;) {
      const next = await stored.peek();
      const order = next === undefined ? 1 : completionOrder(next, node);
      if (order < 0) {
        await stored.take();
        this.#extraSubtree(next!, undefined, findings);
        continue;
      }
      if (order > 0) {
        this.#missingSubtree(node, findings);
        return;
      }
      await stored.take();
      if (!next!.hash.equals(node.hash)) this.#differentSubtree(node, next!.hash, findings);
      return;
    }
  }

  #missingSubtree(node: ComputedNode, findings: Findings): void {
    findings.add({
      table: 'merkle_subtrees',
      row: { level: node.level, idx: node.index },
      check: 'missing',
      message: `the complete subtree (level ${node.level}, index ${node.index}) is not stored`,
      expected: hex(node.hash),
    });
  }

  #differentSubtree(node: ComputedNode, found: Buffer, findings: Findings): void {
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

  #extraSubtree(row: AuditSubtreeRow, size: number | undefined, findings: Findings): void {
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
   * A checkpoint row. The signed note is the authority (nobody can forge it without the log
   * key): a root column that differs from it is the checkpoint row's fault; a signed root that
   * differs from the root recomputed from the records is the records' fault, reported once per
   * run of broken checkpoints with the range where the change must lie.
   */
  #checkCheckpoint(row: AuditCheckpointRow, truthRoot: Buffer, signed: SignedPrefix, findings: Findings): void {
    const ref = { size: row.size };
    const rootColumn = Buffer.isBuffer(row.root) ? row.root : Buffer.alloc(0);
    let note: Checkpoint | undefined;
    try {
      note = verifyCheckpoint(row.note, this.#logVerifier, this.#origin);
    } catch (err) {
      if (err instanceof NoteError) {
        findings.add({ table: 'checkpoints', row: ref, check: 'signature', message: `the note does not verify with the log key: ${err.message}` });
      } else if (err instanceof CheckpointError) {
        findings.add({ table: 'checkpoints', row: ref, check: 'note', message: `the signed note is not a valid checkpoint of this log: ${err.message}` });
      } else {
        throw err;
      }
    }
    if (note !== undefined && note.size !== row.size) {
      findings.add({ table: 'checkpoints', row: ref, check: 'note_size', message: 'the signed note is for another size', expected: String(row.size), found: String(note.size) });
      note = undefined;
    }
    if (note === undefined) {
      if (!rootColumn.equals(truthRoot)) {
        findings.add({ table: 'checkpoints', row: ref, check: 'root', message: `root is not the Merkle root of the first ${row.size} ledger entries`, expected: hex(truthRoot), found: hex(rootColumn) });
      }
      return;
    }
    if (!rootColumn.equals(note.rootHash)) {
      findings.add({ table: 'checkpoints', row: ref, check: 'root', message: 'root differs from the root in the signed note', expected: hex(note.rootHash), found: hex(rootColumn) });
    }
    if (note.rootHash.equals(truthRoot)) {
      signed.goodSize = row.size;
      signed.broken = false;
    } else if (!signed.broken) {
      signed.broken = true;
      findings.add({
        table: 'records',
        row: { ledger_index: signed.goodSize },
        check: 'signed_root',
        message:
          `the first ${row.size} ledger entries do not hash to the root signed in checkpoint ${row.size}: an entry in ` +
          `${signed.goodSize}…${row.size - 1} was changed, moved, inserted or deleted after it was signed`,
        expected: hex(note.rootHash),
        found: hex(truthRoot),
      });
    }
  }

  async #checkChainRows(source: LedgerAuditSource, chains: Map<string, ChainState>, size: number, findings: Findings): Promise<void> {
    for (const chain of chains.values()) {
      const ref = { agent: chain.agent, epoch: chain.epoch };
      if (chain.highestSeq !== chain.seq || chain.highestHash !== chain.hash) {
        findings.add({
          table: 'agent_epochs',
          row: ref,
          check: 'chain_head',
          message: `the chain head (highest_seq, highest_hash) is not the last ledger entry of ${chain.agent} epoch ${chain.epoch}`,
          expected: `seq ${chain.seq} hash ${chain.hash ?? 'null'}`,
          found: `seq ${chain.highestSeq} hash ${chain.highestHash ?? 'null'}`,
        });
      }
      const derived = chain.keys.list();
      const stored = chain.storedKeys;
      for (let i = 0; i < Math.max(derived.length, stored.length); i++) {
        const want = derived[i];
        const have = stored[i];
        if (want && have && want.fromSeq === have.fromSeq && want.kid === have.kid) continue;
        findings.add({
          table: 'agent_keys',
          row: { ...ref, from_seq: (have ?? want)!.fromSeq },
          check: 'key_history',
          message: `the stored key history of ${chain.agent} epoch ${chain.epoch} differs from the one its enrolled key and key.rotated records give`,
          expected: want ? `from seq ${want.fromSeq} kid ${want.kid}` : 'no key',
          found: have ? `from seq ${have.fromSeq} kid ${have.kid}` : 'no key',
        });
        break;
      }
      if (chain.witnessedSize !== null && (chain.witnessedSize > size || !(await source.checkpointOfSize(chain.witnessedSize)))) {
        findings.add({
          table: 'agent_epochs',
          row: ref,
          check: 'witnessed_size',
          message: `witnessed_size ${chain.witnessedSize} names no stored checkpoint within the ${size} entries`,
        });
      }
    }
  }

  /** Streams receipts (by the ledger range they name) and checks their coverage of agent entries. */
  async #checkReceipts(source: LedgerAuditSource, chains: Map<string, ChainState>, ledger: LedgerPass, findings: Findings): Promise<number> {
    const { size, brokenCheckpoints } = ledger;
    let count = 0;
    let coveredTo = -1;
    const uncovered = async (from: number, to: number): Promise<void> => {
      if (from > to) return;
      const stray = await source.countExceptAgent(from, to, COLLECTOR_AGENT_ID);
      if (stray.count > 0) {
        findings.add({
          table: 'receipts',
          row: { ledger_index: stray.first! },
          check: 'missing',
          message: `${stray.count} agent ledger ${stray.count === 1 ? 'entry' : 'entries'} in ${stray.first}…${stray.last} in no receipt's range (a receipt was deleted?)`,
        });
      }
    };
    for await (const row of source.receipts()) {
      count++;
      const ref = { batch_id: row.batchId, agent: row.agent };
      const add = (check: string, message: string, expected?: string, found?: string) =>
        findings.add({ table: 'receipts', row: ref, check, message, ...(expected !== undefined ? { expected, found: found ?? '' } : {}) });
      let parsed: unknown;
      try {
        parsed = JSON.parse(row.receiptJson);
      } catch {
        add('receipt_json', 'receipt_json is not JSON');
        continue;
      }
      const result = receiptSchema.safeParse(parsed);
      if (!result.success) {
        add('receipt_schema', `receipt_json is not a receipt: ${describeZodError(result.error, 3)}`);
        continue;
      }
      const receipt: Receipt = result.data;
      if (canonicalJson(receipt) !== row.receiptJson) add('canonical_form', 'receipt_json is not the RFC 8785 canonical form of the receipt');
      try {
        await verifyReceipt({ receipt, signature: row.signature }, this.#receiptKey);
      } catch (err) {
        add('signature', (err as Error).message);
      }
      if (receipt.batchId !== row.batchId) add('batch_id', 'the receipt is for another batch', row.batchId, receipt.batchId);
      if (receipt.agent !== row.agent) add('agent', 'the receipt is for another agent', row.agent, receipt.agent);
      if (receipt.collector !== this.#origin) add('collector', 'the receipt names another collector', this.#origin, receipt.collector);

      const named = receipt.checkpoint;
      const stored = await source.checkpointOfSize(named.size);
      if (!stored) {
        if (!(named.size === 0 && named.root === toBase64Url(EMPTY_ROOT))) {
          findings.add({ table: 'checkpoints', row: { size: named.size }, check: 'missing', message: `no checkpoint of size ${named.size}, which the receipt of batch ${row.batchId} names` });
        }
      } else if (brokenCheckpoints !== 'too_many' && !brokenCheckpoints.has(named.size) && (!Buffer.isBuffer(stored.root) || toBase64Url(stored.root) !== named.root)) {
        // (A checkpoint row already reported as wrong is no witness against the receipt.)
        add('checkpoint_root', `the receipt names checkpoint ${named.size} with another root than the stored one`, Buffer.isBuffer(stored.root) ? toBase64Url(stored.root) : '', named.root);
      }

      const chain = chains.get(chainKey(receipt.agent, receipt.epoch));
      if (chain && receipt.highestSeq > chain.seq) add('highest_seq', `highestSeq is beyond the last ledger entry of ${receipt.agent} epoch ${receipt.epoch}`, `≤ ${chain.seq}`, String(receipt.highestSeq));
      if (receipt.ledger === null) continue;
      const { first, last } = receipt.ledger;
      if (last < first || last >= size) {
        add('ledger_range', `the ledger range ${first}…${last} is not within the ${size} entries`);
        continue;
      }
      if (named.size !== last + 1) add('checkpoint_size', "the checkpoint is not the one the batch's append made (size = last ledger index + 1)", String(last + 1), String(named.size));
      if (first <= coveredTo) add('ledger_overlap', `the ledger range ${first}…${last} overlaps another receipt's range (up to ${coveredTo})`);
      await uncovered(coveredTo + 1, first - 1);
      const foreign = await source.countOutsideChain(first, last, receipt.agent, receipt.epoch);
      if (foreign.count > 0) {
        add('ledger_range', `${foreign.count} ${foreign.count === 1 ? 'entry' : 'entries'} in ${first}…${last} (first at ${foreign.first}) not of ${receipt.agent} epoch ${receipt.epoch}`);
      }
      coveredTo = Math.max(coveredTo, last);
    }
    await uncovered(coveredTo + 1, size - 1);
    return count;
  }
}

function recordRow(row: AuditRecordRow): AuditRow {
  return { ledger_index: row.ledgerIndex, id: row.id, agent: row.agent, epoch: row.epoch, seq: row.seq };
}

/** `table[col=value …]`: how a finding's row is named on one line. */
export function describeRow(finding: AuditFinding): string {
  const parts = Object.entries(finding.row).map(([column, value]) => `${column}=${value}`);
  return `${finding.table}[${parts.join(' ')}]`;
}

/** One line per finding: table and row, check, message, expected vs found. */
export function formatFinding(finding: AuditFinding): string {
  const values = finding.expected !== undefined ? `; expected ${finding.expected}, found ${finding.found ?? ''}` : '';
  return `${describeRow(finding)} ${finding.check}: ${finding.message}${values}`;
}
