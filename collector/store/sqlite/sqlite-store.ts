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
import { preparePrivateDatabase } from '../../../shared/private-files.ts';
import type { RecordKind } from '../../../shared/record.ts';
import { assertCurrent, assertNotNewer, runMigrations, type MigrationReport } from '../migrate.ts';
import { sqliteMigrationTarget } from './migration-target.ts';
import {
  MAX_LISTED_GAPS,
  StoreUnavailableError,
  type AgentEpoch,
  type AgentKey,
  type ApiToken,
  type AgentEpochSummary,
  type ClockSkewState,
  type CollectorStore,
  type FleetQuery,
  type LedgerCounts,
  type LedgerAuditSource,
  type LedgerRecord,
  type LedgerRow,
  type ReportJob,
  type ReportSource,
  type StoredCheckpoint,
  type StoredCollectorKey,
  type StoredReceipt,
  type SeqRange,
  type SubtreeRef,
  type WriteTransaction,
} from '../store.ts';

import { AsyncMutex, BUSY_TIMEOUT_MS, translateError, type Db } from './connection.ts';
import { SQLITE_SCHEMA_VERSION } from './migration-list.ts';
import { prepareStatements, type Statements } from './statements.ts';
import { sqliteWriteTransaction } from './write-transaction.ts';
import { SqliteAuditSource } from './audit-source.ts';
import { openSqliteReportSource } from './report-source.ts';
import { fleetStatement } from './fleet-query.ts';
import {
  toAgentEpoch,
  toAgentKey,
  toApiToken,
  toReportJob,
  toCheckpoint,
  toClockSkew,
  toReceipt,
  type AgentEpochRow,
  type EpochSummaryRow,
  type CheckpointRow,
  type ReceiptRow,
  type AgentKeyRow,
  type ApiTokenRow,
  type ReportJobRow,
  type ClockSkewRow,
  toCollectorKey,
  type CollectorKeyRow,
} from '../rows.ts';
import { SQLITE_MIGRATIONS } from './migration-list.ts';

export { APPEND_ONLY_TRIGGERS, BUSY_TIMEOUT_MS, DATABASE_FILE_NAME } from './connection.ts';
export { SQLITE_MIGRATIONS, SQLITE_SCHEMA_VERSION } from './migration-list.ts';
export { openSqliteReportSource } from './report-source.ts';

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
  /** listFleet's statements, prepared on the reader once per shape of query (sqlite/fleet-query.ts). */
  readonly #fleetStatements = new Map<string, Database.Statement>();
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
      const tx = sqliteWriteTransaction(sql, () => open, this.path);
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
        const rows = sql.listAgentEpochs.all() as EpochSummaryRow[];
        const skews = new Map(
          (sql.listClockSkew.all() as (ClockSkewRow & { agent: string; epoch: number })[]).map((row) => [`${row.agent}\u0000${row.epoch}`, toClockSkew(row)]),
        );
        return rows.map((row) => this.#summary(sql, row, skews.get(`${row.agent}\u0000${row.epoch}`) ?? null));
      }).deferred();
    } catch (err) {
      throw translateError(err);
    }
  }

  async listFleet(query: FleetQuery): Promise<AgentEpochSummary[]> {
    const { key, text, params } = fleetStatement(query);
    try {
      const sql = this.#sql;
      let statement = this.#fleetStatements.get(key);
      if (!statement) this.#fleetStatements.set(key, (statement = this.#reader!.prepare(text)));
      const page = statement;
      // One read transaction, as listAgentEpochs: the page describes one committed state.
      return this.#reader!.transaction(() =>
        (page.all(params) as EpochSummaryRow[]).map((row) => {
          const skew = sql.clockSkewCommitted.get(row.agent, row.epoch) as ClockSkewRow | undefined;
          return this.#summary(sql, row, skew ? toClockSkew(skew) : null);
        }),
      ).deferred();
    } catch (err) {
      throw translateError(err);
    }
  }

  #summary(sql: Statements, row: EpochSummaryRow, clockSkew: ClockSkewState | null): AgentEpochSummary {
    return {
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
      clockSkew,
      version: row.agent_version,
    };
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

  async collectorKeys(): Promise<StoredCollectorKey[]> {
    try {
      return (this.#sql.collectorKeys.r.all() as CollectorKeyRow[]).map(toCollectorKey);
    } catch (err) {
      throw translateError(err);
    }
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

/** Opens the store at `path`; see SqliteStore. */
export function openSqliteStore(path: string): SqliteStore {
  // Made 0600 before SQLite opens it, so that its -wal and -shm are 0600 too (shared/private-files.ts).
  preparePrivateDatabase(path, { create: true });
  return new SqliteStore({ path });
}

