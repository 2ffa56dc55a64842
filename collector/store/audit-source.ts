/**
 * The audit's view of the store (`ledger verify`): raw rows, as stored, so that the audit can
 * name a corrupted value instead of failing to parse it. Part of the storage contract (store.ts).
 */
import type { LedgerRow } from './store.ts';

export interface AuditAgentEpochRow {
  agent: string;
  epoch: number;
  /** The public JWK text, as stored. */
  publicJwk: string;
  kid: string;
  highestSeq: number;
  highestHash: string | null;
  witnessedSize: number | null;
  enrolledAt: string;
  revokedAt: string | null;
  revokedIndex: number | null;
  supersededBy: number | null;
}

/** An enrollment token row, as stored (only its hash). */
export interface AuditEnrollmentTokenRow {
  tokenHash: string;
  agent: string;
  expiresAt: string;
  usedAt: string | null;
  forReplacement: boolean;
  voidedAt: string | null;
}

/** A human token row, as stored (only its hash). */
export interface AuditApiTokenRow {
  id: string;
  name: string;
  role: string;
  expiresAt: string | null;
  revokedAt: string | null;
}

export interface AuditAgentKeyRow {
  agent: string;
  epoch: number;
  fromSeq: number;
  kid: string;
  /** The public JWK text, as stored. */
  publicJwk: string;
  reason: string;
}

/** A ledger row as stored, `kind` unchecked (the audit names a bad value instead of trusting it). */
export type AuditRecordRow = Omit<LedgerRow, 'kind'> & { kind: string };

export interface AuditSubtreeRow {
  level: number;
  index: number;
  hash: Buffer;
}

export interface AuditCheckpointRow {
  size: number;
  root: Buffer;
  note: string;
}

export interface AuditReceiptRow {
  batchId: string;
  agent: string;
  receiptJson: string;
  signature: string;
}

/** Ledger entries in an index range: how many, and the first and last index among them. */
export interface LedgerRangeCount {
  count: number;
  first: number | null;
  last: number | null;
}

/**
 * One read-only snapshot, streamed. Every iterable yields rows lazily (memory stays flat
 * however large the table); several may be open at once.
 */
export interface LedgerAuditSource {
  /**
   * The names of the database guards (triggers, rules) that make the ledger tables append-only
   * and are missing now. Their absence is not tampering with data, but it is how an intruder
   * would start (ADR 0005).
   */
  missingAppendOnlyGuards(): Promise<string[]>;
  /** By agent, then epoch. */
  agentEpochs(): AsyncIterable<AuditAgentEpochRow>;
  /** The stored key histories, by agent, epoch and fromSeq. */
  agentKeys(): AsyncIterable<AuditAgentKeyRow>;
  /** Every enrollment token row, by agent then creation. */
  enrollmentTokens(): AsyncIterable<AuditEnrollmentTokenRow>;
  /** Every human token row, by creation. */
  apiTokens(): AsyncIterable<AuditApiTokenRow>;
  /** By ledger index. */
  records(): AsyncIterable<AuditRecordRow>;
  /**
   * By the leaf at which each node becomes complete, ((index + 1)·2^level − 1), then by level:
   * the order in which appending leaves one by one produces them.
   */
  subtrees(): AsyncIterable<AuditSubtreeRow>;
  /** By size. */
  checkpoints(): AsyncIterable<AuditCheckpointRow>;
  /**
   * Receipts without ledger entries first, then by the first ledger index they name (read from
   * the receipt text; a receipt whose text is not JSON counts as having none), then by batch id.
   */
  receipts(): AsyncIterable<AuditReceiptRow>;
  checkpointOfSize(size: number): Promise<AuditCheckpointRow | undefined>;
  /** One stored subtree hash, by its coordinates. */
  subtree(level: number, index: number): Promise<Buffer | undefined>;
  /** The stored per-kind entry counters (`ledger stats`). */
  kindCounts(): Promise<{ kind: string; records: number }[]>;
  /** Entries with from ≤ ledger_index ≤ to that are not of (agent, epoch). */
  countOutsideChain(from: number, to: number, agent: string, epoch: number): Promise<LedgerRangeCount>;
  /** Entries with from ≤ ledger_index ≤ to whose agent is not `exceptAgent`. */
  countExceptAgent(from: number, to: number, exceptAgent: string): Promise<LedgerRangeCount>;
  close(): Promise<void>;
}
