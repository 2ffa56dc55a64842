/**
 * The collector's storage interface. Services talk only to this; SQL lives behind it
 * (`sqlite/` and `postgres/`: ADRs 0002, 0013).
 *
 * Contract for every backend
 * - Every method returns a Promise. Reads outside a transaction MUST see only committed data.
 * - `write(fn)` runs `fn` in ONE serialisable write transaction: it MUST NOT run two at once
 *   (within the process or across processes sharing the database), MUST commit only if `fn`
 *   resolves and roll back if it rejects, and MUST NOT resolve before the commit is durable.
 * - A failure of the database itself (read-only, full, I/O error, lock timeout) MUST surface as
 *   `StoreUnavailableError`, so callers can answer "retry later" and acknowledge nothing.
 * - The ledger tables (`records`, Merkle subtrees, checkpoints) are append-only; UNIQUE(id),
 *   UNIQUE(agent, epoch, seq) and a unique ledger index MUST be enforced by the database too.
 * - Proof and checkpoint reads (`checkpointOfSize`, `readSubtrees`, `findLedgerRecord`) MUST
 *   read committed data only and cost O(1) rows each: proofs read O(log n) stored subtrees,
 *   never the records.
 * - `openAudit` MUST give one consistent, read-only snapshot for the whole audit, streamed: a
 *   backend MUST NOT load a table into memory to serve it.
 */
import type { Ed25519PublicJwk } from '../../shared/crypto.ts';
import type { SubtreeNode, SubtreeReader } from '../../shared/merkle.ts';
import type { RecordKind } from '../../shared/record.ts';
import type { MigrationReport } from './migrate.ts';
import type { LedgerAuditSource } from './audit-source.ts';
import type { ReportJob, ReportJobOutcome } from './report-jobs.ts';
import type { ReportSource } from './report-source.ts';
import type { FleetQuery } from './fleet-query.ts';

/** The database cannot take the request now (read-only, full, I/O error, busy). Retry later. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
  /** The backend's error code, e.g. SQLITE_FULL; safe to log, never shown to callers. */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** The stored state contradicts itself (a missing Merkle node, a moved chain head). Never retried. */
export class StoreIntegrityError extends Error {
  override name = 'StoreIntegrityError';
}

/**
 * `appendRecords` met a record id that is already stored (UNIQUE(id)). A backend MUST detect it
 * by the insert's own outcome (e.g. `ON CONFLICT (id) DO NOTHING` and no row inserted), never by
 * catching a constraint error: PostgreSQL aborts a transaction on one. The transaction is still
 * usable for reads (nothing of that row was written) until the caller's rejection rolls it back;
 * `findRecordsById` says which record holds the id.
 */
export class DuplicateRecordIdError extends Error {
  override name = 'DuplicateRecordIdError';
  /** The id of the entry that was not inserted. */
  readonly id: string;
  constructor(id: string) {
    super(`record id ${id} is already stored`);
    this.id = id;
  }
}

export interface AgentEpoch {
  agent: string;
  epoch: number;
  publicJwk: Ed25519PublicJwk;
  kid: string;
  enrolledAt: string;
  revokedAt: string | null;
  /** Ledger index of the COLLECTOR chain's `agent.revoked` record of this epoch (null: not revoked). */
  revokedIndex: number | null;
  /** The epoch that replaced this one through a `--replace` enrollment (null: none). */
  supersededBy: number | null;
}

/** How an epoch is revoked: when, by which ledger entry, and whether a replacement did it. */
export interface EpochRevocation {
  /** The `at` of the `agent.revoked` record. */
  revokedAt: string;
  revokedIndex: number;
  supersededBy: number | null;
}

/** Highest stored seq of an (agent, epoch) and that record's hash (null before seq 1). */
export interface ChainHead {
  highestSeq: number;
  highestHash: string | null;
}

/** Inclusive range of sequence numbers. */
export interface SeqRange {
  from: number;
  to: number;
}

/** At most this many gap ranges are listed per (agent, epoch). */
export const MAX_LISTED_GAPS = 100;

export interface AgentEpochSummary extends AgentEpoch, ChainHead {
  ledgerEntries: number;
  lastSeenAt: string | null;
  backlog: { pending: number | null; oldestAt: string | null; reportedAt: string | null };
  /**
   * Seq ranges in 1…highestSeq with no stored record (at most MAX_LISTED_GAPS). Always [] for
   * an intact chain; computed only when the entry count differs from highestSeq.
   */
  gaps: SeqRange[];
  /** Equivocating records of this (agent, epoch) held in quarantine. */
  quarantined: number;
  /** Size of the newest stored checkpoint this agent confirmed as a witness, and when. */
  witnessedSize: number | null;
  witnessedAt: string | null;
  /** Records with an implausible `at` (services/clock-skew.ts); null before the first judged batch. */
  clockSkew: ClockSkewState | null;
  /** The software version the agent last reported (AgentContact.version); null if never. */
  version: string | null;
}

/** The rule an implausible `at` broke (services/clock-skew.ts). */
export type SkewRule = 'ahead' | 'backwards' | 'behind';

/** Clock-skew counts of one (agent, epoch), and what the next batch is judged against. */
export interface ClockSkewState {
  /** Seq and `at` (as sent) of the newest judged record. */
  lastSeq: number;
  lastAt: string | null;
  /** Last seq and receive time of the newest batch that carried the agent's whole backlog. */
  caughtUpSeq: number | null;
  caughtUpAt: string | null;
  /** Records whose `at` is implausible, and how many broke each rule. */
  implausible: number;
  ahead: number;
  backwards: number;
  behind: number;
  maxAheadMs: number | null;
  maxBackwardsMs: number | null;
  maxBehindMs: number | null;
  /** The newest implausible record. */
  lastSkew: { seq: number; at: string; receivedAt: string; rule: SkewRule; offsetMs: number } | null;
}

/** What an agent reported as the newest checkpoint it verified. */
export interface WitnessReport {
  size: number;
  /** The collector's receive time of the batch that carried the report. */
  at: string;
}

/** One key of an (agent, epoch)'s history: it signs the records from `fromSeq` on (ADR 0006). */
export interface AgentKey {
  agent: string;
  epoch: number;
  fromSeq: number;
  kid: string;
  publicJwk: Ed25519PublicJwk;
  addedAt: string;
  /** 'enrolled' for the epoch's first key, 'rotated' for a key named by a key.rotated record. */
  reason: 'enrolled' | 'rotated';
}

export interface NewAgentEpoch {
  agent: string;
  epoch: number;
  publicJwk: Ed25519PublicJwk;
  kid: string;
  enrolledAt: string;
}

/**
 * One ledger entry, as the ledger stores it: the one row type every read and write of records
 * is cut from (a backend maps its column names to these once, e.g. with SQL aliases).
 */
export interface LedgerRow {
  ledgerIndex: number;
  id: string;
  agent: string;
  epoch: number;
  seq: number;
  kind: RecordKind;
  type: string;
  at: string;
  receivedAt: string;
  /** The record's RFC 8785 text, byte for byte as hashed. */
  canonical: string;
  /** base64url sha256 of `canonical`. */
  recordHash: string;
  /** RFC 9162 leaf hash of `canonical`. */
  leafHash: Buffer;
}

/** A ledger entry to append: its text may come as UTF-8 bytes, stored as TEXT. */
export type LedgerEntry = Omit<LedgerRow, 'canonical'> & { canonical: string | Uint8Array };

/** A ledger entry as the records and proofs APIs read it. */
export type LedgerRecord = Pick<LedgerRow, 'ledgerIndex' | 'id' | 'agent' | 'epoch' | 'seq' | 'receivedAt' | 'canonical' | 'leafHash'>;

/** A complete Merkle subtree's coordinates: leaves [index·2^level, (index+1)·2^level). */
export interface SubtreeRef {
  level: number;
  index: number;
}

export interface StoredRecordRef {
  id: string;
  agent: string;
  epoch: number;
  seq: number;
}

export interface StoredCheckpoint {
  size: number;
  root: Buffer;
  /** The C2SP signed note, as served. */
  note: string;
  createdAt: string;
}

export interface StoredReceipt {
  batchId: string;
  agent: string;
  recordsDigest: string;
  /** JCS of the receipt: the exact bytes the signature covers and the reply carries. */
  receiptJson: string;
  signature: string;
  createdAt: string;
}

export interface QuarantinedRecord {
  agent: string;
  epoch: number;
  seq: number;
  recordId: string;
  recordHash: string;
  storedHash: string;
  canonical: string;
  batchId: string;
  traceId: string;
  receivedAt: string;
}

export interface EnrollmentToken {
  tokenHash: string;
  agent: string;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  /** Issued with `--replace`: may enroll over an active epoch, which it then revokes. */
  forReplacement: boolean;
  /** Set when `agents revoke` voided it unused. */
  voidedAt: string | null;
}

/** A human bearer token (admin or auditor); only its sha256 is stored. */
export interface ApiToken {
  /** Public id, shown in lists and in COLLECTOR chain records. */
  id: string;
  name: string;
  role: 'admin' | 'auditor';
  /** hex sha256 of the token. */
  tokenHash: string;
  createdAt: string;
  /** null: no expiry. */
  expiresAt: string | null;
  revokedAt: string | null;
  /** Who issued it (an Actor). */
  createdBy: string;
}

/** What each batch tells about its agent, stored on its (agent, epoch) as the batch commits. */
export interface AgentContact {
  lastSeenAt: string;
  backlog: { pending: number; oldestAt: string | null };
  /**
   * The agent's software version (shared/agent-version.ts; at most 64 characters), or null when
   * the batch named none: stored as given, so a null replaces a version reported before.
   */
  version: string | null;
}

export interface LedgerCounts {
  size: number;
  byKind: { [K in RecordKind]: number };
  /** Enrolled agent ids, not counting the collector's own chain. */
  agents: number;
  quarantined: number;
  /** The newest checkpoint, from the same committed state as the counts. */
  checkpoint: StoredCheckpoint | undefined;
}

/** One of the collector's public keys as the database was initialised with it (migration 0011). */
export interface StoredCollectorKey {
  role: 'log' | 'receipt' | 'chain';
  /** RFC 7638 thumbprint (base64url SHA-256): the fingerprint a mismatch names. */
  kid: string;
  publicJwk: Ed25519PublicJwk;
  recordedAt: string;
}

/** What a batch's sequence checks read from the store: one call (one round trip on a server database). */
export interface BatchState {
  /** A receipt stored for this batch id already: the same batch committed while this one waited. */
  receipt: StoredReceipt | undefined;
  currentEpoch: AgentEpoch | undefined;
  /** The chain head of the batch's (agent, epoch); undefined if that epoch does not exist. */
  head: ChainHead | undefined;
  /** Keys in the epoch's key history (a rotation meanwhile changes it). */
  keyCount: number;
  clockSkew: ClockSkewState | undefined;
  ledgerSize: number;
  /** The stored checkpoint of the size the batch's witness report names (when one is named). */
  witnessCheckpoint: StoredCheckpoint | undefined;
}

/** Everything one append to the ledger writes: entries, Merkle nodes, the signed checkpoint, the chain head move. */
export interface LedgerAppend {
  entries: readonly LedgerEntry[];
  subtrees: readonly SubtreeNode[];
  checkpoint: StoredCheckpoint;
  chain: { agent: string; epoch: number; from: ChainHead; to: ChainHead };
}

/** Everything an accepted batch writes, in one call. */
export interface BatchCommit {
  agent: string;
  epoch: number;
  /** Undefined for a batch of duplicates only. */
  append: LedgerAppend | undefined;
  /** Keys that `key.rotated` records of the batch introduce. */
  rotatedKeys: readonly AgentKey[];
  contact: AgentContact;
  clockSkew: ClockSkewState | undefined;
  /** The witness report, if its checkpoint is stored (the caller checked). */
  witness: WitnessReport | undefined;
  receipt: StoredReceipt;
}

/** What `fn` sees inside `CollectorStore.write`. Reads see this transaction's own writes. */
export interface WriteTransaction {
  /**
   * Coarse operations, for the hot path: a batch is read with `batchState` and written with
   * `commitBatch`, an act of the COLLECTOR chain with `appendLedger` — each one call, so that a
   * batch costs a few round trips on a server database, not one per row kind. The fine-grained
   * methods below stay for the rarer paths (enrollment, tokens, quarantine).
   */
  batchState(agent: string, epoch: number, batchId: string, witnessSize?: number): Promise<BatchState>;
  /**
   * Writes `append` (entries first). Rejects with DuplicateRecordIdError (the transaction still
   * usable) if an entry's id is stored already, and with StoreIntegrityError if the chain head
   * is not `append.chain.from`.
   */
  appendLedger(append: LedgerAppend): Promise<void>;
  /** Writes an accepted batch; resolves whether the witness report moved forward. Rejects as appendLedger. */
  commitBatch(commit: BatchCommit): Promise<{ witnessRecorded: boolean }>;
  currentEpoch(agent: string): Promise<AgentEpoch | undefined>;
  chainHead(agent: string, epoch: number): Promise<ChainHead | undefined>;
  /** Stored record hashes of (agent, epoch) with fromSeq ≤ seq ≤ toSeq, by seq. */
  recordHashes(agent: string, epoch: number, fromSeq: number, toSeq: number): Promise<Map<number, string>>;
  findRecordsById(ids: readonly string[]): Promise<StoredRecordRef[]>;
  ledgerSize(): Promise<number>;
  /**
   * A synchronous reader of complete Merkle subtrees for appending to the tree of `size`. It
   * MUST serve every node stored before this call that `appendLeaves(size, …)` and
   * `rootFromSubtrees(≥ size, …)` read (the right-edge subtrees of `size`), and every node
   * written by `putSubtrees` in this transaction. (A backend without synchronous reads
   * prefetches those O(log n) nodes here.)
   */
  subtreeReader(size: number): Promise<SubtreeReader>;
  /** Rejects with DuplicateRecordIdError if an entry's id is stored already (the ids are not looked up first). */
  appendRecords(entries: readonly LedgerEntry[]): Promise<void>;
  putSubtrees(nodes: readonly SubtreeNode[]): Promise<void>;
  putCheckpoint(checkpoint: StoredCheckpoint): Promise<void>;
  latestCheckpoint(): Promise<StoredCheckpoint | undefined>;
  checkpointOfSize(size: number): Promise<StoredCheckpoint | undefined>;
  /**
   * Stores `report` as the newest checkpoint (agent, epoch) witnessed, unless a larger size is
   * stored already (a witness only moves forward). Resolves true if it was stored. The caller
   * MUST have checked that a checkpoint of that size is stored.
   */
  recordWitness(agent: string, epoch: number, report: WitnessReport): Promise<boolean>;
  /** Moves the chain head from `from` to `to`; MUST fail if the stored head is not `from`. */
  advanceChainHead(agent: string, epoch: number, from: ChainHead, to: ChainHead): Promise<void>;
  recordAgentContact(agent: string, epoch: number, contact: AgentContact): Promise<void>;
  /** The clock-skew state of (agent, epoch), undefined before its first judged batch. */
  clockSkew(agent: string, epoch: number): Promise<ClockSkewState | undefined>;
  putClockSkew(agent: string, epoch: number, state: ClockSkewState): Promise<void>;
  findReceipt(batchId: string): Promise<StoredReceipt | undefined>;
  putReceipt(receipt: StoredReceipt): Promise<void>;
  /** Keeps a conflicting record out of the ledger; the same conflict twice is stored once. */
  quarantine(record: QuarantinedRecord): Promise<void>;
  highestEpoch(agent: string): Promise<number>;
  /** Creates the agent (if new) and its epoch, with an empty chain and its enrolled key from seq 1. */
  createAgentEpoch(epoch: NewAgentEpoch): Promise<void>;
  /** The key history of (agent, epoch), by fromSeq. */
  agentKeys(agent: string, epoch: number): Promise<AgentKey[]>;
  /** Adds a rotated key; MUST fail if (agent, epoch) has a key from that seq or that kid already. */
  addAgentKey(key: AgentKey): Promise<void>;
  putEnrollmentToken(token: EnrollmentToken): Promise<void>;
  findEnrollmentToken(tokenHash: string): Promise<EnrollmentToken | undefined>;
  /** Marks an unused, unvoided token used; resolves false if it was already used or voided. */
  useEnrollmentToken(tokenHash: string, usedAt: string): Promise<boolean>;
  /** Voids every unused, unvoided token of `agent`; resolves with their hashes. */
  voidEnrollmentTokens(agent: string, voidedAt: string): Promise<string[]>;
  /** Revokes (agent, epoch) unless it is revoked; resolves false if it was already revoked. */
  revokeAgentEpoch(agent: string, epoch: number, revocation: EpochRevocation): Promise<boolean>;
  putApiToken(token: ApiToken): Promise<void>;
  /** The collector keys recorded so far, by role. */
  collectorKeys(): Promise<StoredCollectorKey[]>;
  /** Records keys whose role has none yet (a recorded role is left as it is: append-only). */
  putCollectorKeys(keys: readonly StoredCollectorKey[]): Promise<void>;
  /** Revokes the unrevoked tokens with this id or name; resolves with the tokens it revoked. */
  revokeApiTokens(match: { id: string } | { name: string }, revokedAt: string): Promise<ApiToken[]>;
  putReportJob(job: ReportJob): Promise<void>;
  /** Ends a running job; resolves false if it is not running (already ended). */
  finishReportJob(id: string, outcome: ReportJobOutcome): Promise<boolean>;
  /**
   * Marks every running job of `replica` (and every running job with no replica) failed with
   * `outcome` (at its start: a restart interrupted them); resolves with their ids. Jobs another
   * replica runs are left alone.
   */
  failRunningReportJobs(outcome: Extract<ReportJobOutcome, { status: 'failed' }>, replica: string): Promise<string[]>;
  /** Marks the done jobs that finished before `finishedBefore` expired at `expiredAt`; resolves with their ids. */
  expireReportJobs(finishedBefore: string, expiredAt: string): Promise<string[]>;
  /** Deletes the failed jobs that finished before `finishedBefore`; resolves with how many. */
  forgetFailedReportJobs(finishedBefore: string): Promise<number>;
}

export interface CollectorStore {
  /** Applies every pending migration; refuses a database newer than the code (SchemaVersionError). */
  migrate(): Promise<MigrationReport>;
  /** Throws SchemaVersionError unless the schema is exactly the one this code knows. */
  assertSchemaCurrent(): Promise<void>;
  /**
   * Resolves if the database answers a query — and, after a write failed with
   * StoreUnavailableError, only once a write succeeds again (the backend probes with a write
   * that changes nothing). `/readyz` relies on it.
   */
  ping(): Promise<void>;
  write<T>(fn: (tx: WriteTransaction) => Promise<T>): Promise<T>;

  currentEpoch(agent: string): Promise<AgentEpoch | undefined>;
  /** Every (agent, epoch), the COLLECTOR chain included, by agent then epoch, from one committed state. */
  listAgentEpochs(): Promise<AgentEpochSummary[]>;
  /**
   * The fleet view's page: exactly the rows `listAgentEpochs()` would give that match `query`
   * (fleet-query.ts), in the same (agent, epoch) order, starting after `query.after`, at most
   * `query.limit` of them, from one committed state. A backend MUST filter, order and limit in
   * the database (e.g. `WHERE … AND (agent, epoch) > ($after) ORDER BY agent, epoch LIMIT $n`
   * over the (agent, epoch) primary key), never by loading every epoch: a state has thousands
   * of offices and the API pages through them. Status: `active` = not revoked; `revoked` =
   * revoked and `supersededBy` null; `superseded` = revoked and `supersededBy` set.
   */
  listFleet(query: FleetQuery): Promise<AgentEpochSummary[]>;
  /** The key history of (agent, epoch), by fromSeq (committed data). */
  agentKeys(agent: string, epoch: number): Promise<AgentKey[]>;
  /** Every stored key, by agent, epoch and fromSeq. */
  listAgentKeys(): Promise<AgentKey[]>;
  findReceipt(batchId: string): Promise<StoredReceipt | undefined>;
  latestCheckpoint(): Promise<StoredCheckpoint | undefined>;
  /** The stored checkpoint of exactly `size` leaves. */
  checkpointOfSize(size: number): Promise<StoredCheckpoint | undefined>;
  /** Stored hashes of `nodes`, in the same order; undefined where a node is not stored. */
  readSubtrees(nodes: readonly SubtreeRef[]): Promise<(Buffer | undefined)[]>;
  /** The ledger entry of record `id`. */
  findLedgerRecord(id: string): Promise<LedgerRecord | undefined>;
  ledgerCounts(): Promise<LedgerCounts>;
  /**
   * Opens a read-only snapshot of the whole store for `ledger verify`. It sees one committed
   * state however long it runs (a running server may keep appending), and MUST be closed.
   */
  openAudit(): Promise<LedgerAuditSource>;
  /**
   * Remembers a token id until `expiresAtSeconds` (and forgets expired ones), with the
   * Idempotency-Key of the request that brought it (`requestKey`, if it had one). Resolves false
   * if the id is already remembered — the token was used before — unless it was remembered for
   * the same agent and the same `requestKey`: then this is that request sent again (a load
   * balancer retrying it on another replica), which an idempotent request may be.
   */
  rememberJti(jti: string, agent: string, expiresAtSeconds: number, nowSeconds: number, requestKey?: string): Promise<boolean>;
  /**
   * Takes one token from the shared bucket of `key` (a verified principal), or says how long to
   * wait for one: one atomic statement, outside the writer's lock. A backend that several
   * processes share (PostgreSQL) MUST implement it, so that a per-agent limit holds across
   * replicas; one that only one process uses (SQLite) leaves it out and the limit is kept in
   * memory (services/rate-limiter.ts).
   */
  /**
   * The connection pool's use, for metrics: connections open, idle, and requests waiting for
   * one. A backend without a pool (SQLite: one connection per role) leaves it out.
   */
  poolUse?(): { total: number; idle: number; waiting: number };
  takeRateToken?(key: string, limit: { ratePerSecond: number; burst: number }, nowMs: number): Promise<{ allowed: true } | { allowed: false; retryAfterSeconds: number }>;
  /** The human token with this sha256 (hex), revoked or expired ones included. */
  findApiToken(tokenHash: string): Promise<ApiToken | undefined>;
  /** Every human token, by creation time. */
  listApiTokens(): Promise<ApiToken[]>;
  /** The collector keys the database was initialised with (committed data; [] before the first start records them). */
  collectorKeys(): Promise<StoredCollectorKey[]>;
  findReportJob(id: string): Promise<ReportJob | undefined>;
  /**
   * Opens a read-only snapshot for one report export against the tree of `size` leaves (see
   * ReportSource). Resolves undefined if no checkpoint of exactly that size is stored. MUST be closed.
   */
  openReport(size: number): Promise<ReportSource | undefined>;

  close(): Promise<void>;
}

export type { AuditAgentEpochRow, AuditEnrollmentTokenRow, AuditApiTokenRow, AuditAgentKeyRow, AuditRecordRow, AuditSubtreeRow, AuditCheckpointRow, AuditReceiptRow, LedgerRangeCount, LedgerAuditSource } from './audit-source.ts';
export type { ReportRecordRow, ReportRecordQuery, ReportChainSeqRow, ReportSource } from './report-source.ts';
export type { EpochStatus, FleetQuery } from './fleet-query.ts';
export type { ReportJob, ReportJobOutcome } from './report-jobs.ts';
