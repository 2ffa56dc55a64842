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
 * Key rotation (ADR 0006): signatures are checked with the key `keyAt(history, seq)` gives
 * (shared/key-history.ts). Each epoch starts with its enrolled key (agent_epochs.public_jwk),
 * valid from seq 1; every valid `key.rotated` record met in the stream (signed with the key valid
 * at its seq s) adds its new key from s + 1 (`applyKeyRotation`), so the key history is
 * re-derived from the chain, never taken from storage. The stored history (`agent_keys`) must
 * equal the derived one: a row that differs, is missing or is extra is named.
 *
 * Layout (ledger-audit/): findings.ts (the report and its limits), ledger-pass.ts (the one pass
 * over the leaves), record-rows.ts (a record row, on the re-check every verifier shares:
 * shared/record-check.ts), stored-tree.ts (the stored Merkle nodes), checkpoint-rows.ts,
 * chains.ts (agent_epochs and agent_keys), receipt-rows.ts; who may write is
 * authority-replay.ts.
 */
import type { KeyObject } from 'node:crypto';
import { toBase64Url } from '../../shared/crypto.ts';
import type { NoteVerifier } from '../../shared/signed-note.ts';
import type { CollectorStore, LedgerAuditSource } from '../store/store.ts';
import { AuthorityReplay } from './authority-replay.ts';
import { checkChainRows, loadChains } from './ledger-audit/chains.ts';
import { Findings, type AuditReport } from './ledger-audit/findings.ts';
import { checkLedger } from './ledger-audit/ledger-pass.ts';
import { checkReceipts } from './ledger-audit/receipt-rows.ts';

export {
  describeRow,
  formatFinding,
  MAX_FINDINGS,
  MAX_FINDINGS_PER_CHECK,
  type AuditFinding,
  type AuditReport,
  type AuditRow,
  type AuditTable,
} from './ledger-audit/findings.ts';
export { MAX_GAP_FILL } from './ledger-audit/ledger-pass.ts';
export { CompactRange, completionOrder, type ComputedNode } from './ledger-audit/stored-tree.ts';

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
      await checkGuards(source, findings);
      const chains = await loadChains(source, findings);
      const authority = new AuthorityReplay((finding) => findings.add(finding));
      const ledger = await checkLedger(source, chains, authority, { origin: this.#origin, logVerifier: this.#logVerifier }, findings);
      await checkKindCounts(source, ledger.kinds, findings);
      await checkChainRows(source, chains, ledger.size, findings);
      await authority.checkTables(source);
      const receipts = await checkReceipts(source, chains, ledger, { origin: this.#origin, receiptKey: this.#receiptKey }, findings);
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
}

/** The append-only guards the store names as missing. */
async function checkGuards(source: LedgerAuditSource, findings: Findings): Promise<void> {
  for (const name of await source.missingAppendOnlyGuards()) {
    findings.add({ table: 'schema', row: { name }, check: 'guard_missing', message: `the append-only guard ${name} is missing (dropped?)` });
  }
}

/** The per-kind counters `ledger stats` reads, against the records counted in the pass. */
async function checkKindCounts(source: LedgerAuditSource, counted: Map<string, number>, findings: Findings): Promise<void> {
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
