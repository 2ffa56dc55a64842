/**
 * A report export's view of the store (services/report/export-report.ts). Part of the storage
 * contract (store.ts).
 */
import type { RecordKind } from '../../shared/record.ts';
import type { AgentEpoch, AgentKey, LedgerRow, StoredCheckpoint, SubtreeRef } from './store.ts';

/** A ledger entry as an export reads it. */
export type ReportRecordRow = Omit<LedgerRow, 'recordHash'>;

/** What an export asks of the ledger: the filter's fields (see shared/report/bundle-format.ts). */
export interface ReportRecordQuery {
  /** ISO instants: `at` in [from, to). */
  from: string;
  to: string;
  /** Only agent ids that start with this text (null: every agent). */
  agentPrefix: string | null;
  kind: RecordKind | null;
  type: string | null;
}

/** One seq of a chain as gap reasons need it. */
export interface ReportChainSeqRow {
  seq: number;
  kind: RecordKind;
  type: string;
  at: string;
}

/**
 * One committed, read-only snapshot of the store for one export, bound to the tree of
 * `checkpoint.size` leaves: every read sees only ledger entries with index < size, so the
 * result does not depend on what was appended after that checkpoint. Iterables yield rows
 * lazily (flat memory); point lookups may run while an iterable is open.
 */
export interface ReportSource {
  readonly checkpoint: StoredCheckpoint;
  /**
   * Entries with index < size, by ledger index, whose agent starts with `agentPrefix` and whose
   * kind/type equal the query's (where given) and whose `at` is in [from, to). A backend MAY
   * yield more (e.g. entries whose `at` lies within a minute outside the range, when it
   * compares text rather than instants): the caller applies the exact rule, agent glob
   * included (recordMatchesFilter), so no backend needs a pattern language.
   */
  records(query: ReportRecordQuery): AsyncIterable<ReportRecordRow>;
  /** The entries of (agent, epoch) with fromSeq ≤ seq ≤ toSeq and index < size, by seq. */
  chainSeqs(agent: string, epoch: number, fromSeq: number, toSeq: number): AsyncIterable<ReportChainSeqRow>;
  agentEpoch(agent: string, epoch: number): Promise<AgentEpoch | undefined>;
  /** The key history of (agent, epoch), by fromSeq. */
  agentKeys(agent: string, epoch: number): Promise<AgentKey[]>;
  /**
   * The COLLECTOR chain's `agent.revoked` records with index < size, by ledger index. Read from
   * the ledger, not from `agent_epochs`: a bundle states what the tamper-evident chain says.
   */
  revocationRecords(): Promise<{ ledgerIndex: number; canonical: string }[]>;
  /** Stored hashes of `nodes`, in the same order; undefined where a node is not stored. */
  readSubtrees(nodes: readonly SubtreeRef[]): Promise<(Buffer | undefined)[]>;
  close(): Promise<void>;
}
