/**
 * The collector store on embedded SQLite (better-sqlite3).
 *
 * Invariants
 * - Durability: WAL with `synchronous=FULL`, so a COMMIT has reached the disk before `write`
 *   resolves, and a receipt (sent only after that) is a promise kept across power loss.
 * - One writer: an in-process async mutex plus `BEGIN IMMEDIATE` on the writer connection. The
 *   mutex orders this process's transactions (a transaction may await, e.g. to sign a
 *   receipt); `BEGIN IMMEDIATE` takes SQLite's write lock up front, so another process (the
 *   CLI next to a running server) waits up to `busy_timeout` instead of interleaving. Whatever
 *   a transaction reads (the chain head, the ledger size) therefore cannot change under it.
 * - Reads that need only committed data use a second, read-only connection; they never see a
 *   transaction in progress. Checkpoints, proofs and records are served from it.
 * - `openAudit` opens a third, read-only connection and holds one read transaction on it for
 *   the whole audit: WAL keeps that snapshot stable while the server goes on appending.
 * - Exactly once: UNIQUE(id), UNIQUE(agent, epoch, seq) and `ledger_index` as INTEGER PRIMARY
 *   KEY; triggers refuse UPDATE and DELETE on `records`, `merkle_subtrees` and `checkpoints`.
 *
 * On-disk layout
 *   <dir>/collector.db (+ -wal, -shm while open); schema version in `PRAGMA user_version`;
 *   tables are described in migrations/0001-initial.ts and the migrations after it.
 *
 * Crash behaviour
 * - Before COMMIT: the WAL holds no commit frame for the transaction; on reopen SQLite ignores
 *   it. No record, Merkle node, checkpoint or receipt of that batch exists; the agent got no
 *   receipt and resends.
 * - After COMMIT, before the HTTP reply: everything of the batch, receipt included, is stored;
 *   a retry with the same Idempotency-Key gets the same receipt, a new batch sees duplicates.
 * - A batch holding a `key.rotated` record writes the new key's `agent_keys` row in the same
 *   transaction (ADR 0006): a crash leaves the rotation record and its key, or neither. An agent
 *   whose receipt was lost then authenticates with the new key (it retries with it after a 401).
 * - During a migration: each migration and its `user_version` bump commit together, so a crash
 *   leaves the database at the previous version, and the next start applies it again.
 */
import Database from 'better-sqlite3';
import type { Ed25519PublicJwk } from '../../../shared/crypto.ts';
import type { SubtreeNode, SubtreeReader } from '../../../shared/merkle.ts';
import { preparePrivateDatabase } from '../../../shared/private-files.ts';
import { COLLECTOR_AGENT_ID, RECORD_KINDS, type RecordKind } from '../../../shared/record.ts';
import { assertCurrent, assertNotNewer, latestVersion, runMigrations, type Migration, type MigrationReport } from '../migrate.ts';
import { sqliteMigrationTarget } from './migration-target.ts';
import {
  DuplicateRecordIdError,
  MAX_LISTED_GAPS,
  StoreIntegrityError,
  StoreUnavailableError,
  type AgentContact,
  type ClockSkewState,
  type AgentEpoch,
  type AgentKey,
  type ApiToken,
  type AuditAgentKeyRow,
  type AuditApiTokenRow,
  type AuditEnrollmentTokenRow,
  type AgentEpochSummary,
  type AuditAgentEpochRow,
  type AuditCheckpointRow,
  type AuditReceiptRow,
  type AuditRecordRow,
  type AuditSubtreeRow,
  type ChainHead,
  type CollectorStore,
  type EnrollmentToken,
  type LedgerCounts,
  type LedgerAuditSource,
  type LedgerEntry,
  type LedgerRangeCount,
  type LedgerRecord,
  type LedgerRow,
  type NewAgentEpoch,
  type QuarantinedRecord,
  type ReportChainSeqRow,
  type ReportJob,
  type ReportJobOutcome,
  type ReportRecordQuery,
  type ReportRecordRow,
  type ReportSource,
  type StoredCheckpoint,
  type StoredReceipt,
  type StoredRecordRef,
  type SeqRange,
  type SubtreeRef,
  type WitnessReport,
  type WriteTransaction,
} from '../store.ts';
import { migration as m0001 } from './migrations/0001-initial.ts';
import { migration as m0002 } from './migrations/0002-witness-reports.ts';
import { migration as m0003 } from './migrations/0003-agent-keys.ts';
import { migration as m0004 } from './migrations/0004-api-tokens.ts';
import { migration as m0005 } from './migrations/0005-report-jobs.ts';
import { migration as m0006 } from './migrations/0006-clock-skew.ts';
import { migration as m0007 } from './migrations/0007-ledger-kind-counts.ts';
import { migration as m0008 } from './migrations/0008-enrollment-authority.ts';
import { migration as m0009 } from './migrations/0009-report-retention.ts';

type Db = Database.Database;

/** The triggers that make the ledger tables append-only (migration 0001). */
export const APPEND_ONLY_TRIGGERS = [
  'checkpoints_no_delete',
  'checkpoints_no_update',
  'merkle_subtrees_no_delete',
  'merkle_subtrees_no_update',
  'records_no_delete',
  'records_no_update',
] as const;

export const DATABASE_FILE_NAME = 'collector.db';
export const BUSY_TIMEOUT_MS = 5000;
export const SQLITE_MIGRATIONS: readonly Migration[] = [m0001, m0002, m0003, m0004, m0005, m0006, m0007, m0008, m0009];
export const SQLITE_SCHEMA_VERSION = latestVersion(SQLITE_MIGRATIONS);

/** SQLite result codes that mean "the database cannot take this now", not "the request is bad". */
const UNAVAILABLE_CODES = /^SQLITE_(READONLY|FULL|IOERR|BUSY|LOCKED|CANTOPEN|NOMEM|PROTOCOL)/;

function translateError(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && UNAVAILABLE_CODES.test(code)) {
    return new StoreUnavailableError(code, `database unavailable: ${code}: ${(err as Error).message}`);
  }
  return err;
}

/** Serialises async critical sections in this process. */
class AsyncMutex {
  #tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

interface AgentEpochRow {
  agent: string;
  epoch: number;
  public_jwk: string;
  kid: string;
  enrolled_at: string;
  revoked_at: string | null;
  highest_seq: number;
  highest_hash: string | null;
  last_seen_at: string | null;
  backlog_pending: number | null;
  backlog_oldest_at: string | null;
  backlog_reported_at: string | null;
  witnessed_size: number | null;
  witnessed_at: string | null;
  revoked_index: number | null;
  superseded_by: number | null;
}

/** The records columns under the contract's names (LedgerRow): the one snake_case → camelCase mapping. */
const LEDGER_ROW_COLUMNS =
  'ledger_index AS ledgerIndex, id, agent, epoch, seq, kind, type, at, received_at AS receivedAt, canonical, record_hash AS recordHash, leaf_hash AS leafHash';

interface CheckpointRow {
  size: number;
  root: Buffer;
  note: string;
  created_at: string;
}

interface ReceiptRow {
  batch_id: string;
  agent: string;
  records_digest: string;
  receipt_json: string;
  signature: string;
  created_at: string;
}

interface TokenRow {
  token_hash: string;
  agent: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  for_replacement: number;
  voided_at: string | null;
}

function toAgentEpoch(row: AgentEpochRow): AgentEpoch {
  return {
    agent: row.agent,
    epoch: row.epoch,
    publicJwk: JSON.parse(row.public_jwk) as Ed25519PublicJwk,
    kid: row.kid,
    enrolledAt: row.enrolled_at,
    revokedAt: row.revoked_at,
    revokedIndex: row.revoked_index,
    supersededBy: row.superseded_by,
  };
}

interface AgentKeyRow {
  agent: string;
  epoch: number;
  from_seq: number;
  kid: string;
  public_jwk: string;
  added_at: string;
  reason: 'enrolled' | 'rotated';
}

/**
 * A run of Merkle nodes of one level with consecutive indices (`@level`, `@first`, `@count`),
 * from their hashes concatenated (`@hashes`): one statement instead of one per node. Per node,
 * the call cost more than the B-tree insert (2.7 µs less per ledger entry: docs/benchmarks.md).
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

function toAgentKey(row: AgentKeyRow): AgentKey {
  return {
    agent: row.agent,
    epoch: row.epoch,
    fromSeq: row.from_seq,
    kid: row.kid,
    publicJwk: JSON.parse(row.public_jwk) as Ed25519PublicJwk,
    addedAt: row.added_at,
    reason: row.reason,
  };
}

interface ApiTokenRow {
  id: string;
  name: string;
  role: 'admin' | 'auditor';
  token_hash: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  created_by: string;
}

function toApiToken(row: ApiTokenRow): ApiToken {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    tokenHash: row.token_hash,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    createdBy: row.created_by,
  };
}

interface ReportJobRow {
  id: string;
  status: ReportJob['status'];
  owner: string;
  actor: string;
  filter_json: string;
  checkpoint_size: number;
  created_at: string;
  finished_at: string | null;
  counts_json: string | null;
  manifest_sha256: string | null;
  bundle_bytes: number | null;
  problem_json: string | null;
  expired_at: string | null;
}

function toReportJob(row: ReportJobRow): ReportJob {
  return {
    id: row.id,
    status: row.status,
    owner: row.owner,
    actor: row.actor,
    filterJson: row.filter_json,
    checkpointSize: row.checkpoint_size,
    createdAt: row.created_at,
    finishedAt: row.finished_at,
    countsJson: row.counts_json,
    manifestSha256: row.manifest_sha256,
    bundleBytes: row.bundle_bytes,
    problemJson: row.problem_json,
    expiredAt: row.expired_at,
  };
}

function toCheckpoint(row: CheckpointRow): StoredCheckpoint {
  return { size: row.size, root: row.root, note: row.note, createdAt: row.created_at };
}

interface ClockSkewRow {
  last_seq: number;
  last_at: string | null;
  caught_up_seq: number | null;
  caught_up_at: string | null;
  implausible: number;
  ahead: number;
  backwards: number;
  behind: number;
  max_ahead_ms: number | null;
  max_backwards_ms: number | null;
  max_behind_ms: number | null;
  last_skew_json: string | null;
}

function toClockSkew(row: ClockSkewRow): ClockSkewState {
  return {
    lastSeq: row.last_seq,
    lastAt: row.last_at,
    caughtUpSeq: row.caught_up_seq,
    caughtUpAt: row.caught_up_at,
    implausible: row.implausible,
    ahead: row.ahead,
    backwards: row.backwards,
    behind: row.behind,
    maxAheadMs: row.max_ahead_ms,
    maxBackwardsMs: row.max_backwards_ms,
    maxBehindMs: row.max_behind_ms,
    lastSkew: row.last_skew_json === null ? null : (JSON.parse(row.last_skew_json) as ClockSkewState['lastSkew']),
  };
}

function toReceipt(row: ReceiptRow): StoredReceipt {
  return {
    batchId: row.batch_id,
    agent: row.agent,
    recordsDigest: row.records_digest,
    receiptJson: row.receipt_json,
    signature: row.signature,
    createdAt: row.created_at,
  };
}

/** Every statement, prepared once the schema is current. */
function prepareStatements(writer: Db, reader: Db) {
  const both = (sql: string) => ({ w: writer.prepare(sql), r: reader.prepare(sql) });
  return {
    currentEpoch: both(`SELECT * FROM agent_epochs WHERE agent = ? ORDER BY epoch DESC LIMIT 1`),
    latestCheckpoint: both(`SELECT * FROM checkpoints ORDER BY size DESC LIMIT 1`),
    checkpointOfSize: both(`SELECT * FROM checkpoints WHERE size = ?`),
    findReceipt: both(`SELECT * FROM receipts WHERE batch_id = ?`),
    chainHead: writer.prepare(`SELECT highest_seq, highest_hash FROM agent_epochs WHERE agent = ? AND epoch = ?`),
    clockSkew: writer.prepare(`SELECT * FROM clock_skew WHERE agent = ? AND epoch = ?`),
    putClockSkew: writer.prepare(
      `INSERT INTO clock_skew (agent, epoch, last_seq, last_at, caught_up_seq, caught_up_at, implausible, ahead, backwards, behind,
         max_ahead_ms, max_backwards_ms, max_behind_ms, last_skew_json)
       VALUES (@agent, @epoch, @lastSeq, @lastAt, @caughtUpSeq, @caughtUpAt, @implausible, @ahead, @backwards, @behind,
         @maxAheadMs, @maxBackwardsMs, @maxBehindMs, @lastSkewJson)
       ON CONFLICT (agent, epoch) DO UPDATE SET last_seq = excluded.last_seq, last_at = excluded.last_at,
         caught_up_seq = excluded.caught_up_seq, caught_up_at = excluded.caught_up_at, implausible = excluded.implausible,
         ahead = excluded.ahead, backwards = excluded.backwards, behind = excluded.behind, max_ahead_ms = excluded.max_ahead_ms,
         max_backwards_ms = excluded.max_backwards_ms, max_behind_ms = excluded.max_behind_ms, last_skew_json = excluded.last_skew_json`,
    ),
    listClockSkew: reader.prepare(`SELECT * FROM clock_skew`),
    recordHashes: writer.prepare(
      `SELECT seq, record_hash FROM records WHERE agent = ? AND epoch = ? AND seq BETWEEN ? AND ?`,
    ),
    findRecordsById: writer.prepare(
      `SELECT id, agent, epoch, seq FROM records WHERE id IN (SELECT value FROM json_each(?))`,
    ),
    ledgerSize: writer.prepare(`SELECT coalesce(max(ledger_index) + 1, 0) AS size FROM records`),
    readSubtree: writer.prepare(`SELECT hash FROM merkle_subtrees WHERE level = ? AND idx = ?`).pluck(),
    insertRecord: writer.prepare(
      // CAST: canonical may come as UTF-8 bytes (a BLOB to SQLite), and the column is TEXT.
      `INSERT INTO records (ledger_index, id, agent, epoch, seq, kind, type, at, received_at, canonical, record_hash, leaf_hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS TEXT), ?, ?) ON CONFLICT (id) DO NOTHING`,
    ),
    addKindCount: writer.prepare(
      `INSERT INTO ledger_kind_counts (kind, records) VALUES (?, ?) ON CONFLICT (kind) DO UPDATE SET records = records + excluded.records`,
    ),
    insertSubtree: writer.prepare(`INSERT INTO merkle_subtrees (level, idx, hash) VALUES (?, ?, ?)`),
    insertSubtreeRun: writer.prepare(INSERT_SUBTREE_RUN),
    insertCheckpoint: writer.prepare(`INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)`),
    advanceChainHead: writer.prepare(
      `UPDATE agent_epochs SET highest_seq = ?, highest_hash = ?
       WHERE agent = ? AND epoch = ? AND highest_seq = ? AND highest_hash IS ?`,
    ),
    recordWitness: writer.prepare(
      `UPDATE agent_epochs SET witnessed_size = ?, witnessed_at = ?
       WHERE agent = ? AND epoch = ? AND (witnessed_size IS NULL OR witnessed_size <= ?)`,
    ),
    recordAgentContact: writer.prepare(
      `UPDATE agent_epochs SET last_seen_at = ?, backlog_pending = ?, backlog_oldest_at = ?, backlog_reported_at = ?
       WHERE agent = ? AND epoch = ?`,
    ),
    insertReceipt: writer.prepare(
      `INSERT INTO receipts (batch_id, agent, records_digest, receipt_json, signature, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    insertQuarantine: writer.prepare(
      `INSERT INTO quarantine (agent, epoch, seq, record_id, record_hash, stored_hash, canonical, batch_id, trace_id, received_at)
       VALUES (@agent, @epoch, @seq, @recordId, @recordHash, @storedHash, @canonical, @batchId, @traceId, @receivedAt)
       ON CONFLICT (agent, epoch, seq, record_hash) DO NOTHING`,
    ),
    highestEpoch: writer.prepare(`SELECT coalesce(max(epoch), 0) FROM agent_epochs WHERE agent = ?`).pluck(),
    insertAgent: writer.prepare(`INSERT INTO agents (agent, created_at) VALUES (?, ?) ON CONFLICT (agent) DO NOTHING`),
    insertAgentEpoch: writer.prepare(
      `INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at) VALUES (?, ?, ?, ?, ?)`,
    ),
    insertAgentKey: writer.prepare(
      `INSERT INTO agent_keys (agent, epoch, from_seq, kid, public_jwk, added_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    agentKeys: both(`SELECT * FROM agent_keys WHERE agent = ? AND epoch = ? ORDER BY from_seq`),
    agentKeyCount: writer.prepare(`SELECT count(*) FROM agent_keys WHERE agent = ? AND epoch = ?`).pluck(),
    listAgentKeys: reader.prepare(`SELECT * FROM agent_keys ORDER BY agent, epoch, from_seq`),
    insertToken: writer.prepare(
      `INSERT INTO enrollment_tokens (token_hash, agent, created_at, expires_at, used_at, for_replacement) VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    findToken: writer.prepare(`SELECT * FROM enrollment_tokens WHERE token_hash = ?`),
    useToken: writer.prepare(`UPDATE enrollment_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND voided_at IS NULL`),
    voidTokens: writer
      .prepare(`UPDATE enrollment_tokens SET voided_at = ? WHERE agent = ? AND used_at IS NULL AND voided_at IS NULL RETURNING token_hash`)
      .pluck(),
    revokeAgentEpoch: writer.prepare(
      `UPDATE agent_epochs SET revoked_at = ?, revoked_index = ?, superseded_by = ? WHERE agent = ? AND epoch = ? AND revoked_at IS NULL`,
    ),
    insertApiToken: writer.prepare(
      `INSERT INTO api_tokens (id, name, role, token_hash, created_at, expires_at, revoked_at, created_by)
       VALUES (@id, @name, @role, @tokenHash, @createdAt, @expiresAt, @revokedAt, @createdBy)`,
    ),
    revokeApiTokensById: writer.prepare(`UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING *`),
    revokeApiTokensByName: writer.prepare(`UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL RETURNING *`),
    findApiToken: reader.prepare(`SELECT * FROM api_tokens WHERE token_hash = ?`),
    listApiTokens: reader.prepare(`SELECT * FROM api_tokens ORDER BY created_at, id`),
    insertReportJob: writer.prepare(
      `INSERT INTO report_jobs (id, status, owner, actor, filter_json, checkpoint_size, created_at, finished_at, counts_json, manifest_sha256, bundle_bytes, problem_json, expired_at)
       VALUES (@id, @status, @owner, @actor, @filterJson, @checkpointSize, @createdAt, @finishedAt, @countsJson, @manifestSha256, @bundleBytes, @problemJson, @expiredAt)`,
    ),
    finishReportJob: writer.prepare(
      `UPDATE report_jobs SET status = @status, finished_at = @finishedAt, counts_json = @countsJson, manifest_sha256 = @manifestSha256,
         bundle_bytes = @bundleBytes, problem_json = @problemJson
       WHERE id = @id AND status = 'running'`,
    ),
    failRunningReportJobs: writer.prepare(
      `UPDATE report_jobs SET status = 'failed', finished_at = ?, problem_json = ? WHERE status = 'running' RETURNING id`,
    ).pluck(),
    expireReportJobs: writer.prepare(
      `UPDATE report_jobs SET status = 'expired', expired_at = ? WHERE status = 'done' AND finished_at < ? RETURNING id`,
    ).pluck(),
    forgetFailedReportJobs: writer.prepare(`DELETE FROM report_jobs WHERE status = 'failed' AND finished_at < ?`),
    findReportJob: reader.prepare(`SELECT * FROM report_jobs WHERE id = ?`),
    forgetExpiredJtis: writer.prepare(`DELETE FROM jti_replay WHERE expires_at < ?`),
    rememberJti: writer.prepare(
      `INSERT INTO jti_replay (jti, agent, expires_at) VALUES (?, ?, ?) ON CONFLICT (jti) DO NOTHING`,
    ),
    listAgentEpochs: reader.prepare(
      `SELECT e.*,
         (SELECT count(*) FROM records r WHERE r.agent = e.agent AND r.epoch = e.epoch) AS ledger_entries,
         (SELECT count(*) FROM quarantine q WHERE q.agent = e.agent AND q.epoch = e.epoch) AS quarantined
       FROM agent_epochs e ORDER BY e.agent, e.epoch`,
    ),
    // Only run for a chain whose entry count differs from its head seq (normally never).
    innerGaps: reader.prepare(
      `SELECT prev + 1 AS "from", seq - 1 AS "to"
       FROM (SELECT seq, lag(seq, 1, 0) OVER (ORDER BY seq) AS prev FROM records WHERE agent = ? AND epoch = ? AND seq <= ?)
       WHERE seq > prev + 1 ORDER BY seq LIMIT ?`,
    ),
    highestStoredSeq: reader.prepare(`SELECT coalesce(max(seq), 0) FROM records WHERE agent = ? AND epoch = ? AND seq <= ?`).pluck(),
    readSubtreeCommitted: reader.prepare(`SELECT hash FROM merkle_subtrees WHERE level = ? AND idx = ?`).pluck(),
    findLedgerRecord: reader.prepare(
      `SELECT ${LEDGER_ROW_COLUMNS} FROM records WHERE id = ?`,
    ),
    ledgerSizeCommitted: reader.prepare(`SELECT coalesce(max(ledger_index) + 1, 0) FROM records`).pluck(),
    countByKind: reader.prepare(`SELECT kind, records AS n FROM ledger_kind_counts`),
    countAgents: reader.prepare(`SELECT count(*) FROM agents`).pluck(),
    countQuarantined: reader.prepare(`SELECT count(*) FROM quarantine`).pluck(),
    ping: reader.prepare(`SELECT count(*) FROM sqlite_master`).pluck(),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

export interface SqliteStoreOptions {
  /** Path of the database file; created if absent. */
  path: string;
}

export class SqliteStore implements CollectorStore {
  readonly path: string;
  readonly #writer: Db;
  #reader: Db | undefined;
  #statements: Statements | undefined;
  readonly #mutex = new AsyncMutex();
  #closed = false;
  /** The last write failed because the database could not take it; cleared by the next commit. */
  #writeFailure: StoreUnavailableError | undefined;

  /**
   * Opens (creating if absent) the database and refuses one newer than this code
   * (SchemaVersionError). Call `migrate()` or `assertSchemaCurrent()` before anything else.
   */
  constructor(options: SqliteStoreOptions) {
    this.path = options.path;
    try {
      this.#writer = new Database(options.path, { timeout: BUSY_TIMEOUT_MS });
      this.#writer.pragma('journal_mode = WAL');
      this.#writer.pragma('synchronous = FULL');
      this.#writer.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      this.#writer.pragma('foreign_keys = ON');
    } catch (err) {
      throw translateError(err);
    }
    try {
      assertNotNewer(this.#schemaVersion(), SQLITE_SCHEMA_VERSION, this.path);
    } catch (err) {
      this.#writer.close();
      throw err;
    }
  }

  #schemaVersion(): number {
    return this.#writer.pragma('user_version', { simple: true }) as number;
  }

  get #sql(): Statements {
    if (this.#closed) throw new Error('the store is closed');
    if (!this.#statements) {
      assertCurrent(this.#schemaVersion(), SQLITE_SCHEMA_VERSION, this.path);
      this.#reader = new Database(this.path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
      this.#reader.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      this.#statements = prepareStatements(this.#writer, this.#reader);
    }
    return this.#statements;
  }

  async migrate(): Promise<MigrationReport> {
    return this.#mutex.run(() => runMigrations(sqliteMigrationTarget(this.#writer, this.path, translateError), SQLITE_MIGRATIONS));
  }

  async assertSchemaCurrent(): Promise<void> {
    this.#sql; // prepares the statements, which first checks the version
  }

  /**
   * Reads; and while the last write failed for want of the database (read-only, full, I/O
   * error), also writes: an IMMEDIATE transaction that rewrites the header's user_version with
   * its own value, a real page write through the WAL that changes nothing. A disk that can be
   * read but not written is therefore not ready, and readiness comes back on its own once a
   * write succeeds again — without waiting for an agent's batch, which a load balancer that
   * trusts /readyz would not send.
   */
  async ping(): Promise<void> {
    try {
      this.#sql.ping.get();
    } catch (err) {
      throw translateError(err);
    }
    if (this.#writeFailure === undefined) return;
    await this.#mutex.run(async () => {
      if (this.#writeFailure === undefined) return;
      const db = this.#writer;
      try {
        db.exec('BEGIN IMMEDIATE');
        db.pragma(`user_version = ${this.#schemaVersion()}`);
        db.exec('COMMIT');
        this.#writeFailure = undefined;
      } catch (err) {
        if (db.inTransaction) {
          try {
            db.exec('ROLLBACK');
          } catch {
            // already rolled back by SQLite
          }
        }
        throw translateError(err);
      }
    });
  }

  write<T>(fn: (tx: WriteTransaction) => Promise<T>): Promise<T> {
    return this.#mutex.run(async () => {
      const sql = this.#sql;
      const db = this.#writer;
      try {
        db.exec('BEGIN IMMEDIATE');
      } catch (err) {
        throw translateError(err);
      }
      let open = true;
      const tx = this.#transaction(sql, () => open);
      try {
        const result = await fn(tx);
        db.exec('COMMIT');
        this.#writeFailure = undefined;
        return result;
      } catch (err) {
        if (db.inTransaction) {
          try {
            db.exec('ROLLBACK');
          } catch {
            // The connection rolled back on its own (e.g. after SQLITE_FULL); nothing to undo.
          }
        }
        const translated = translateError(err);
        if (translated instanceof StoreUnavailableError) this.#writeFailure = translated;
        throw translated;
      } finally {
        open = false;
      }
    });
  }

  #transaction(sql: Statements, isOpen: () => boolean): WriteTransaction {
    const guard = () => {
      if (!isOpen()) throw new Error('write transaction used after it ended');
    };
    // SQLite answers in-process, so the coarse operations are the fine ones in sequence.
    const tx: WriteTransaction = {
      batchState: async (agent, epoch, batchId, witnessSize) => ({
        receipt: await tx.findReceipt(batchId),
        currentEpoch: await tx.currentEpoch(agent),
        head: await tx.chainHead(agent, epoch),
        keyCount: (sql.agentKeyCount.get(agent, epoch) as number | undefined) ?? 0,
        clockSkew: await tx.clockSkew(agent, epoch),
        ledgerSize: await tx.ledgerSize(),
        witnessCheckpoint: witnessSize === undefined ? undefined : await tx.checkpointOfSize(witnessSize),
      }),
      appendLedger: async (append) => {
        await tx.appendRecords(append.entries);
        await tx.putSubtrees(append.subtrees);
        await tx.putCheckpoint(append.checkpoint);
        await tx.advanceChainHead(append.chain.agent, append.chain.epoch, append.chain.from, append.chain.to);
      },
      commitBatch: async (commit) => {
        if (commit.append) await tx.appendLedger(commit.append);
        for (const key of commit.rotatedKeys) await tx.addAgentKey(key);
        await tx.recordAgentContact(commit.agent, commit.epoch, commit.contact);
        if (commit.clockSkew) await tx.putClockSkew(commit.agent, commit.epoch, commit.clockSkew);
        const witnessRecorded = commit.witness ? await tx.recordWitness(commit.agent, commit.epoch, commit.witness) : false;
        await tx.putReceipt(commit.receipt);
        return { witnessRecorded };
      },
      currentEpoch: async (agent) => {
        guard();
        const row = sql.currentEpoch.w.get(agent) as AgentEpochRow | undefined;
        return row && toAgentEpoch(row);
      },
      chainHead: async (agent, epoch) => {
        guard();
        const row = sql.chainHead.get(agent, epoch) as { highest_seq: number; highest_hash: string | null } | undefined;
        return row && { highestSeq: row.highest_seq, highestHash: row.highest_hash };
      },
      clockSkew: async (agent, epoch) => {
        guard();
        const row = sql.clockSkew.get(agent, epoch) as ClockSkewRow | undefined;
        return row && toClockSkew(row);
      },
      putClockSkew: async (agent, epoch, state: ClockSkewState) => {
        guard();
        const { lastSkew, ...counts } = state;
        sql.putClockSkew.run({ agent, epoch, ...counts, lastSkewJson: lastSkew === null ? null : JSON.stringify(lastSkew) });
      },
      recordHashes: async (agent, epoch, fromSeq, toSeq) => {
        guard();
        const rows = sql.recordHashes.all(agent, epoch, fromSeq, toSeq) as { seq: number; record_hash: string }[];
        return new Map(rows.map((row) => [row.seq, row.record_hash]));
      },
      findRecordsById: async (ids) => {
        guard();
        if (ids.length === 0) return [];
        return sql.findRecordsById.all(JSON.stringify(ids)) as StoredRecordRef[];
      },
      ledgerSize: async () => {
        guard();
        return (sql.ledgerSize.get() as { size: number }).size;
      },
      subtreeReader: async (): Promise<SubtreeReader> => {
        guard();
        return (level, index) => {
          guard();
          const hash = sql.readSubtree.get(level, index) as Buffer | undefined;
          if (!hash) throw new StoreIntegrityError(`Merkle subtree (level ${level}, index ${index}) is missing from ${this.path}`);
          return hash;
        };
      },
      appendRecords: async (entries: readonly LedgerEntry[]) => {
        guard();
        // Positional parameters: binding by name costs a property lookup per column per row.
        const perKind: { [K in RecordKind]: number } = { audit: 0, telemetry: 0, agent: 0 };
        // UNIQUE(id) answers "is this id new?" for every row it inserts anyway (asking first cost a
        // lookup per record); the answer is the statement's outcome, so the transaction stays usable.
        for (const e of entries) {
          const inserted = sql.insertRecord.run(e.ledgerIndex, e.id, e.agent, e.epoch, e.seq, e.kind, e.type, e.at, e.receivedAt, e.canonical, e.recordHash, e.leafHash);
          if (inserted.changes !== 1) throw new DuplicateRecordIdError(e.id);
          perKind[e.kind]++;
        }
        for (const kind of RECORD_KINDS) if (perKind[kind] > 0) sql.addKindCount.run(kind, perKind[kind]);
      },
      putSubtrees: async (nodes: readonly SubtreeNode[]) => {
        guard();
        writeSubtrees(nodes, sql.insertSubtree, sql.insertSubtreeRun);
      },
      putCheckpoint: async (checkpoint: StoredCheckpoint) => {
        guard();
        sql.insertCheckpoint.run(checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.createdAt);
      },
      latestCheckpoint: async () => {
        guard();
        const row = sql.latestCheckpoint.w.get() as CheckpointRow | undefined;
        return row && toCheckpoint(row);
      },
      checkpointOfSize: async (size) => {
        guard();
        const row = sql.checkpointOfSize.w.get(size) as CheckpointRow | undefined;
        return row && toCheckpoint(row);
      },
      recordWitness: async (agent, epoch, report: WitnessReport) => {
        guard();
        return sql.recordWitness.run(report.size, report.at, agent, epoch, report.size).changes === 1;
      },
      advanceChainHead: async (agent, epoch, from: ChainHead, to: ChainHead) => {
        guard();
        const result = sql.advanceChainHead.run(to.highestSeq, to.highestHash, agent, epoch, from.highestSeq, from.highestHash);
        if (result.changes !== 1) {
          throw new StoreIntegrityError(`chain head of ${agent} epoch ${epoch} is not at seq ${from.highestSeq} as expected`);
        }
      },
      recordAgentContact: async (agent, epoch, contact: AgentContact) => {
        guard();
        sql.recordAgentContact.run(
          contact.lastSeenAt,
          contact.backlog.pending,
          contact.backlog.oldestAt,
          contact.lastSeenAt,
          agent,
          epoch,
        );
      },
      findReceipt: async (batchId) => {
        guard();
        const row = sql.findReceipt.w.get(batchId) as ReceiptRow | undefined;
        return row && toReceipt(row);
      },
      putReceipt: async (receipt: StoredReceipt) => {
        guard();
        sql.insertReceipt.run(
          receipt.batchId,
          receipt.agent,
          receipt.recordsDigest,
          receipt.receiptJson,
          receipt.signature,
          receipt.createdAt,
        );
      },
      quarantine: async (record: QuarantinedRecord) => {
        guard();
        sql.insertQuarantine.run(record);
      },
      highestEpoch: async (agent) => {
        guard();
        return sql.highestEpoch.get(agent) as number;
      },
      createAgentEpoch: async (epoch: NewAgentEpoch) => {
        guard();
        sql.insertAgent.run(epoch.agent, epoch.enrolledAt);
        sql.insertAgentEpoch.run(epoch.agent, epoch.epoch, JSON.stringify(epoch.publicJwk), epoch.kid, epoch.enrolledAt);
        sql.insertAgentKey.run(epoch.agent, epoch.epoch, 1, epoch.kid, JSON.stringify(epoch.publicJwk), epoch.enrolledAt, 'enrolled');
      },
      agentKeys: async (agent, epoch) => {
        guard();
        return (sql.agentKeys.w.all(agent, epoch) as AgentKeyRow[]).map(toAgentKey);
      },
      addAgentKey: async (key: AgentKey) => {
        guard();
        sql.insertAgentKey.run(key.agent, key.epoch, key.fromSeq, key.kid, JSON.stringify(key.publicJwk), key.addedAt, key.reason);
      },
      putEnrollmentToken: async (token: EnrollmentToken) => {
        guard();
        sql.insertToken.run(token.tokenHash, token.agent, token.createdAt, token.expiresAt, token.usedAt, token.forReplacement ? 1 : 0);
      },
      findEnrollmentToken: async (tokenHash) => {
        guard();
        const row = sql.findToken.get(tokenHash) as TokenRow | undefined;
        return (
          row && {
            tokenHash: row.token_hash,
            agent: row.agent,
            createdAt: row.created_at,
            expiresAt: row.expires_at,
            usedAt: row.used_at,
            forReplacement: row.for_replacement === 1,
            voidedAt: row.voided_at,
          }
        );
      },
      useEnrollmentToken: async (tokenHash, usedAt) => {
        guard();
        return sql.useToken.run(usedAt, tokenHash).changes === 1;
      },
      voidEnrollmentTokens: async (agent, voidedAt) => {
        guard();
        return sql.voidTokens.all(voidedAt, agent) as string[];
      },
      revokeAgentEpoch: async (agent, epoch, revocation) => {
        guard();
        return sql.revokeAgentEpoch.run(revocation.revokedAt, revocation.revokedIndex, revocation.supersededBy, agent, epoch).changes === 1;
      },
      putApiToken: async (token: ApiToken) => {
        guard();
        sql.insertApiToken.run(token);
      },
      revokeApiTokens: async (match, revokedAt) => {
        guard();
        const rows = ('id' in match ? sql.revokeApiTokensById.all(revokedAt, match.id) : sql.revokeApiTokensByName.all(revokedAt, match.name)) as ApiTokenRow[];
        return rows.map(toApiToken);
      },
      putReportJob: async (job: ReportJob) => {
        guard();
        sql.insertReportJob.run(job);
      },
      finishReportJob: async (id, outcome: ReportJobOutcome) => {
        guard();
        const done = outcome.status === 'done' ? outcome : undefined;
        return (
          sql.finishReportJob.run({
            id,
            status: outcome.status,
            finishedAt: outcome.finishedAt,
            countsJson: done?.countsJson ?? null,
            manifestSha256: done?.manifestSha256 ?? null,
            bundleBytes: done?.bundleBytes ?? null,
            problemJson: outcome.status === 'failed' ? outcome.problemJson : null,
          }).changes === 1
        );
      },
      failRunningReportJobs: async (outcome) => {
        guard();
        return sql.failRunningReportJobs.all(outcome.finishedAt, outcome.problemJson) as string[];
      },
      expireReportJobs: async (finishedBefore, expiredAt) => {
        guard();
        return sql.expireReportJobs.all(expiredAt, finishedBefore) as string[];
      },
      forgetFailedReportJobs: async (finishedBefore) => {
        guard();
        return sql.forgetFailedReportJobs.run(finishedBefore).changes;
      },
    };
    return tx;
  }

  async currentEpoch(agent: string): Promise<AgentEpoch | undefined> {
    try {
      const row = this.#sql.currentEpoch.r.get(agent) as AgentEpochRow | undefined;
      return row && toAgentEpoch(row);
    } catch (err) {
      throw translateError(err);
    }
  }

  async agentKeys(agent: string, epoch: number): Promise<AgentKey[]> {
    try {
      return (this.#sql.agentKeys.r.all(agent, epoch) as AgentKeyRow[]).map(toAgentKey);
    } catch (err) {
      throw translateError(err);
    }
  }

  async listAgentKeys(): Promise<AgentKey[]> {
    try {
      return (this.#sql.listAgentKeys.all() as AgentKeyRow[]).map(toAgentKey);
    } catch (err) {
      throw translateError(err);
    }
  }

  async listAgentEpochs(): Promise<AgentEpochSummary[]> {
    try {
      const sql = this.#sql;
      // One read transaction: the counts and the gaps describe the same committed state.
      return this.#reader!.transaction(() => {
        const rows = sql.listAgentEpochs.all() as (AgentEpochRow & { ledger_entries: number; quarantined: number })[];
        const skews = new Map(
          (sql.listClockSkew.all() as (ClockSkewRow & { agent: string; epoch: number })[]).map((row) => [`${row.agent}\u0000${row.epoch}`, toClockSkew(row)]),
        );
        return rows.map((row) => ({
          ...toAgentEpoch(row),
          highestSeq: row.highest_seq,
          highestHash: row.highest_hash,
          ledgerEntries: row.ledger_entries,
          lastSeenAt: row.last_seen_at,
          backlog: { pending: row.backlog_pending, oldestAt: row.backlog_oldest_at, reportedAt: row.backlog_reported_at },
          gaps: row.ledger_entries === row.highest_seq ? [] : this.#gaps(sql, row.agent, row.epoch, row.highest_seq),
          quarantined: row.quarantined,
          witnessedSize: row.witnessed_size,
          witnessedAt: row.witnessed_at,
          clockSkew: skews.get(`${row.agent}\u0000${row.epoch}`) ?? null,
        }));
      }).deferred();
    } catch (err) {
      throw translateError(err);
    }
  }

  /** Seq ranges in 1…highestSeq with no record: between stored seqs, and above the highest stored one. */
  #gaps(sql: Statements, agent: string, epoch: number, highestSeq: number): SeqRange[] {
    const gaps = sql.innerGaps.all(agent, epoch, highestSeq, MAX_LISTED_GAPS) as SeqRange[];
    const top = sql.highestStoredSeq.get(agent, epoch, highestSeq) as number;
    if (top < highestSeq && gaps.length < MAX_LISTED_GAPS) gaps.push({ from: top + 1, to: highestSeq });
    return gaps;
  }

  async findReceipt(batchId: string): Promise<StoredReceipt | undefined> {
    try {
      const row = this.#sql.findReceipt.r.get(batchId) as ReceiptRow | undefined;
      return row && toReceipt(row);
    } catch (err) {
      throw translateError(err);
    }
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    try {
      const row = this.#sql.latestCheckpoint.r.get() as CheckpointRow | undefined;
      return row && toCheckpoint(row);
    } catch (err) {
      throw translateError(err);
    }
  }

  async checkpointOfSize(size: number): Promise<StoredCheckpoint | undefined> {
    try {
      const row = this.#sql.checkpointOfSize.r.get(size) as CheckpointRow | undefined;
      return row && toCheckpoint(row);
    } catch (err) {
      throw translateError(err);
    }
  }

  async readSubtrees(nodes: readonly SubtreeRef[]): Promise<(Buffer | undefined)[]> {
    try {
      const sql = this.#sql;
      return this.#reader!.transaction(() => nodes.map((node) => sql.readSubtreeCommitted.get(node.level, node.index) as Buffer | undefined)).deferred();
    } catch (err) {
      throw translateError(err);
    }
  }

  async findLedgerRecord(id: string): Promise<LedgerRecord | undefined> {
    try {
      return this.#sql.findLedgerRecord.get(id) as LedgerRow | undefined;
    } catch (err) {
      throw translateError(err);
    }
  }

  async openAudit(): Promise<LedgerAuditSource> {
    this.#sql; // the schema must be current
    try {
      return new SqliteAuditSource(this.path);
    } catch (err) {
      throw translateError(err);
    }
  }

  async ledgerCounts(): Promise<LedgerCounts> {
    try {
      const sql = this.#sql;
      // One read transaction, so the counts describe a single committed state.
      return this.#reader!.transaction(() => {
        const byKind: { [K in RecordKind]: number } = { audit: 0, telemetry: 0, agent: 0 };
        for (const row of sql.countByKind.all() as { kind: RecordKind; n: number }[]) byKind[row.kind] = row.n;
        return {
          size: sql.ledgerSizeCommitted.get() as number,
          byKind,
          agents: sql.countAgents.get() as number,
          quarantined: sql.countQuarantined.get() as number,
          checkpoint: ((row) => row && toCheckpoint(row))(sql.latestCheckpoint.r.get() as CheckpointRow | undefined),
        };
      }).deferred();
    } catch (err) {
      throw translateError(err);
    }
  }

  async rememberJti(jti: string, agent: string, expiresAtSeconds: number, nowSeconds: number): Promise<boolean> {
    return this.write(async () => {
      const sql = this.#sql;
      sql.forgetExpiredJtis.run(nowSeconds);
      return sql.rememberJti.run(jti, agent, expiresAtSeconds).changes === 1;
    });
  }

  async findApiToken(tokenHash: string): Promise<ApiToken | undefined> {
    try {
      const row = this.#sql.findApiToken.get(tokenHash) as ApiTokenRow | undefined;
      return row && toApiToken(row);
    } catch (err) {
      throw translateError(err);
    }
  }

  async listApiTokens(): Promise<ApiToken[]> {
    try {
      return (this.#sql.listApiTokens.all() as ApiTokenRow[]).map(toApiToken);
    } catch (err) {
      throw translateError(err);
    }
  }

  async findReportJob(id: string): Promise<ReportJob | undefined> {
    try {
      const row = this.#sql.findReportJob.get(id) as ReportJobRow | undefined;
      return row && toReportJob(row);
    } catch (err) {
      throw translateError(err);
    }
  }

  async openReport(size: number): Promise<ReportSource | undefined> {
    this.#sql; // the schema must be current
    return openSqliteReportSource(this.path, size);
  }

  async close(): Promise<void> {
    await this.#mutex.run(async () => {
      if (this.#closed) return;
      this.#closed = true;
      this.#reader?.close();
      this.#writer.close();
    });
  }
}

/** Yields mapped rows of `statement` one at a time (better-sqlite3 `iterate`: flat memory). */
async function* streamRows<R, T>(statement: Database.Statement, map: (row: R) => T): AsyncGenerator<T> {
  try {
    for (const row of statement.iterate() as IterableIterator<R>) yield map(row);
  } catch (err) {
    throw translateError(err);
  }
}

/** Point lookups of the audit, on its own connection. */
function prepareAuditLookups(db: Db) {
  return {
    checkpointOfSize: db.prepare(`SELECT size, root, note FROM checkpoints WHERE size = ?`),
    subtree: db.prepare(`SELECT hash FROM merkle_subtrees WHERE level = ? AND idx = ?`).pluck(),
    countOutsideChain: db.prepare(
      `SELECT count(*) AS count, min(ledger_index) AS first, max(ledger_index) AS last FROM records
       WHERE ledger_index BETWEEN ? AND ? AND NOT (agent = ? AND epoch = ?)`,
    ),
    countExceptAgent: db.prepare(
      `SELECT count(*) AS count, min(ledger_index) AS first, max(ledger_index) AS last FROM records
       WHERE ledger_index BETWEEN ? AND ? AND agent != ?`,
    ),
  };
}

/**
 * The audit's snapshot: its own read-only connection and one read transaction, begun at open
 * and ended at close. Statements are prepared per stream, so streams can be open together.
 */
class SqliteAuditSource implements LedgerAuditSource {
  readonly #db: Db;
  readonly #lookups: ReturnType<typeof prepareAuditLookups>;
  #closed = false;

  constructor(path: string) {
    this.#db = new Database(path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    try {
      this.#db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      this.#db.exec('BEGIN');
      this.#db.prepare('SELECT count(*) FROM sqlite_master').get(); // the snapshot starts at the first read
      this.#lookups = prepareAuditLookups(this.#db);
    } catch (err) {
      this.#db.close();
      throw err;
    }
  }

  async missingAppendOnlyGuards(): Promise<string[]> {
    const present = new Set(this.#db.prepare(`SELECT name FROM sqlite_master WHERE type = 'trigger'`).pluck().all() as string[]);
    return APPEND_ONLY_TRIGGERS.filter((name) => !present.has(name));
  }

  agentEpochs(): AsyncIterable<AuditAgentEpochRow> {
    return streamRows(
      this.#db.prepare(
        `SELECT agent, epoch, public_jwk, kid, highest_seq, highest_hash, witnessed_size, enrolled_at, revoked_at, revoked_index, superseded_by
         FROM agent_epochs ORDER BY agent, epoch`,
      ),
      (row: AgentEpochRow): AuditAgentEpochRow => ({
        agent: row.agent,
        epoch: row.epoch,
        publicJwk: row.public_jwk,
        kid: row.kid,
        highestSeq: row.highest_seq,
        highestHash: row.highest_hash,
        witnessedSize: row.witnessed_size,
        enrolledAt: row.enrolled_at,
        revokedAt: row.revoked_at,
        revokedIndex: row.revoked_index,
        supersededBy: row.superseded_by,
      }),
    );
  }

  enrollmentTokens(): AsyncIterable<AuditEnrollmentTokenRow> {
    return streamRows(
      this.#db.prepare(`SELECT * FROM enrollment_tokens ORDER BY agent, created_at, token_hash`),
      (row: TokenRow): AuditEnrollmentTokenRow => ({
        tokenHash: row.token_hash,
        agent: row.agent,
        expiresAt: row.expires_at,
        usedAt: row.used_at,
        forReplacement: row.for_replacement === 1,
        voidedAt: row.voided_at,
      }),
    );
  }

  apiTokens(): AsyncIterable<AuditApiTokenRow> {
    return streamRows(
      this.#db.prepare(`SELECT id, name, role, expires_at, revoked_at FROM api_tokens ORDER BY created_at, id`),
      (row: ApiTokenRow): AuditApiTokenRow => ({ id: row.id, name: row.name, role: row.role, expiresAt: row.expires_at, revokedAt: row.revoked_at }),
    );
  }

  agentKeys(): AsyncIterable<AuditAgentKeyRow> {
    return streamRows(
      this.#db.prepare(`SELECT agent, epoch, from_seq, kid, public_jwk, reason FROM agent_keys ORDER BY agent, epoch, from_seq`),
      (row: AgentKeyRow): AuditAgentKeyRow => ({
        agent: row.agent,
        epoch: row.epoch,
        fromSeq: row.from_seq,
        kid: row.kid,
        publicJwk: row.public_jwk,
        reason: row.reason,
      }),
    );
  }

  records(): AsyncIterable<AuditRecordRow> {
    return streamRows(
      this.#db.prepare(`SELECT ${LEDGER_ROW_COLUMNS} FROM records ORDER BY ledger_index`),
      (row: AuditRecordRow): AuditRecordRow => row,
    );
  }

  subtrees(): AsyncIterable<AuditSubtreeRow> {
    // SQLite sorts with its own bounded memory (spilling to temporary files), not ours.
    return streamRows(
      this.#db.prepare(`SELECT level, idx, hash FROM merkle_subtrees ORDER BY (idx + 1) * (1 << level) - 1, level`),
      (row: { level: number; idx: number; hash: Buffer }): AuditSubtreeRow => ({ level: row.level, index: row.idx, hash: row.hash }),
    );
  }

  checkpoints(): AsyncIterable<AuditCheckpointRow> {
    return streamRows(this.#db.prepare(`SELECT size, root, note FROM checkpoints ORDER BY size`), (row: AuditCheckpointRow) => ({
      size: row.size,
      root: row.root,
      note: row.note,
    }));
  }

  receipts(): AsyncIterable<AuditReceiptRow> {
    return streamRows(
      this.#db.prepare(
        `SELECT batch_id, agent, receipt_json, signature FROM receipts
         ORDER BY CASE WHEN json_valid(receipt_json) THEN json_extract(receipt_json, '$.ledger.first') END NULLS FIRST, batch_id`,
      ),
      (row: ReceiptRow): AuditReceiptRow => ({ batchId: row.batch_id, agent: row.agent, receiptJson: row.receipt_json, signature: row.signature }),
    );
  }

  async checkpointOfSize(size: number): Promise<AuditCheckpointRow | undefined> {
    return this.#lookups.checkpointOfSize.get(size) as AuditCheckpointRow | undefined;
  }

  async subtree(level: number, index: number): Promise<Buffer | undefined> {
    return this.#lookups.subtree.get(level, index) as Buffer | undefined;
  }

  async kindCounts(): Promise<{ kind: string; records: number }[]> {
    return this.#db.prepare(`SELECT kind, records FROM ledger_kind_counts ORDER BY kind`).all() as { kind: string; records: number }[];
  }

  async countOutsideChain(from: number, to: number, agent: string, epoch: number): Promise<LedgerRangeCount> {
    return this.#lookups.countOutsideChain.get(from, to, agent, epoch) as LedgerRangeCount;
  }

  async countExceptAgent(from: number, to: number, exceptAgent: string): Promise<LedgerRangeCount> {
    return this.#lookups.countExceptAgent.get(from, to, exceptAgent) as LedgerRangeCount;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (this.#db.inTransaction) this.#db.exec('COMMIT');
    } finally {
      this.#db.close();
    }
  }
}

/**
 * Minute prefix ("YYYY-MM-DDTHH:MM") of an ISO instant. Stored `at` texts differ in precision
 * ("…:05Z", "…:05.123Z"), so text order is not instant order; but their first 16 characters are
 * fixed-width digits, so comparing on them never drops a record whose instant is in range.
 */
function minutePrefix(iso: string): string {
  return iso.slice(0, 16);
}

/**
 * One export's snapshot: its own read-only connection and one read transaction, begun at open
 * and ended at close, like the audit's. Every read is bounded by `ledger_index < size`.
 */
class SqliteReportSource implements ReportSource {
  readonly checkpoint!: StoredCheckpoint;
  readonly #db: Db;
  readonly #size: number;
  readonly #lookups: ReturnType<typeof prepareReportLookups>;
  #closed = false;

  constructor(path: string, size: number) {
    this.#size = size;
    this.#db = new Database(path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    try {
      this.#db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      this.#db.exec('BEGIN');
      this.#lookups = prepareReportLookups(this.#db);
      const row = this.#lookups.checkpointOfSize.get(size) as CheckpointRow | undefined;
      if (row) this.checkpoint = toCheckpoint(row);
    } catch (err) {
      this.#db.close();
      throw err;
    }
  }

  records(query: ReportRecordQuery): AsyncIterable<ReportRecordRow> {
    const statement = this.#db.prepare(
      `SELECT ${LEDGER_ROW_COLUMNS} FROM records
       WHERE ledger_index < @size AND at >= @atLow AND at < @atHigh
         AND (@agentPrefix IS NULL OR substr(agent, 1, length(@agentPrefix)) = @agentPrefix)
         AND (@kind IS NULL OR kind = @kind) AND (@type IS NULL OR type = @type)
       ORDER BY ledger_index`,
    );
    const params = {
      size: this.#size,
      atLow: minutePrefix(query.from),
      atHigh: `${minutePrefix(query.to)}~`,
      agentPrefix: query.agentPrefix,
      kind: query.kind,
      type: query.type,
    };
    return streamRows(
      statement.bind(params),
      (row: ReportRecordRow): ReportRecordRow => row,
    );
  }

  async *chainSeqs(agent: string, epoch: number, fromSeq: number, toSeq: number): AsyncIterable<ReportChainSeqRow> {
    // One prepared statement for every gap (an export may ask for many); gaps are read one at a time.
    try {
      yield* this.#lookups.chainSeqs.iterate(agent, epoch, fromSeq, toSeq, this.#size) as IterableIterator<ReportChainSeqRow>;
    } catch (err) {
      throw translateError(err);
    }
  }

  async agentEpoch(agent: string, epoch: number): Promise<AgentEpoch | undefined> {
    const row = this.#lookups.agentEpoch.get(agent, epoch) as AgentEpochRow | undefined;
    return row && toAgentEpoch(row);
  }

  async agentKeys(agent: string, epoch: number): Promise<AgentKey[]> {
    return (this.#lookups.agentKeys.all(agent, epoch) as AgentKeyRow[]).map(toAgentKey);
  }

  async revocationRecords(): Promise<{ ledgerIndex: number; canonical: string }[]> {
    return this.#lookups.revocationRecords.all(this.#size) as { ledgerIndex: number; canonical: string }[];
  }

  async readSubtrees(nodes: readonly SubtreeRef[]): Promise<(Buffer | undefined)[]> {
    return nodes.map((node) => this.#lookups.subtree.get(node.level, node.index) as Buffer | undefined);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (this.#db.inTransaction) this.#db.exec('COMMIT');
    } finally {
      this.#db.close();
    }
  }
}

function prepareReportLookups(db: Db) {
  return {
    checkpointOfSize: db.prepare(`SELECT * FROM checkpoints WHERE size = ?`),
    agentEpoch: db.prepare(`SELECT * FROM agent_epochs WHERE agent = ? AND epoch = ?`),
    agentKeys: db.prepare(`SELECT * FROM agent_keys WHERE agent = ? AND epoch = ? ORDER BY from_seq`),
    revocationRecords: db.prepare(
      `SELECT ledger_index AS ledgerIndex, canonical FROM records
       WHERE agent = '${COLLECTOR_AGENT_ID}' AND type = 'agent.revoked' AND ledger_index < ? ORDER BY ledger_index`,
    ),
    subtree: db.prepare(`SELECT hash FROM merkle_subtrees WHERE level = ? AND idx = ?`).pluck(),
    chainSeqs: db.prepare(`SELECT seq, kind, type, at FROM records WHERE agent = ? AND epoch = ? AND seq BETWEEN ? AND ? AND ledger_index < ? ORDER BY seq`),
  };
}

/**
 * A report snapshot (see CollectorStore.openReport) of the database at `path`, without a store
 * around it: what an export in a worker thread opens (it needs no writer). The caller MUST have
 * checked the schema version (the store it got `path` from did).
 */
export async function openSqliteReportSource(path: string, size: number): Promise<ReportSource | undefined> {
  let source: SqliteReportSource | undefined;
  try {
    source = new SqliteReportSource(path, size);
    if (source.checkpoint) return source;
    await source.close();
    return undefined;
  } catch (err) {
    await source?.close();
    throw translateError(err);
  }
}

/** Opens the store at `path`; see SqliteStore. */
export function openSqliteStore(path: string): SqliteStore {
  // Made 0600 before SQLite opens it, so that its -wal and -shm are 0600 too (shared/private-files.ts).
  preparePrivateDatabase(path, { create: true });
  return new SqliteStore({ path });
}
