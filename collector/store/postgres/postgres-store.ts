/**
 * The collector store on PostgreSQL (node-postgres), for several collector replicas sharing one
 * database (ADR 0013).
 *
 * Invariants
 * - One writer: every write transaction first takes a transaction-scoped advisory lock
 *   (`pg_advisory_xact_lock(WRITER_LOCK_KEY)`), held until COMMIT or ROLLBACK, so writes are
 *   serialised across every process on the database; an in-process mutex orders this process's
 *   transactions first, so waiting writers do not each hold a pooled connection. Under the lock
 *   the ledger size, chain heads and the right edge of the tree cannot change: ledger indexes
 *   are max + 1, never a sequence (a sequence leaves gaps on rollback).
 * - Durability: COMMIT returns once the commit is flushed (PostgreSQL's default
 *   `synchronous_commit = on`; the operator MUST NOT turn it off: docs/operations-collector.md).
 * - Reads that need only committed data are single statements on the pool (one statement, one
 *   snapshot); those that need several statements use a REPEATABLE READ READ ONLY transaction.
 * - `openAudit`/`openReport` hold one REPEATABLE READ READ ONLY transaction on their own pooled
 *   connection, streamed through SQL cursors (snapshot.ts).
 * - Exactly once: UNIQUE(id), UNIQUE(agent, epoch, seq) and `ledger_index` as the primary key;
 *   a stored id is found by `ON CONFLICT (id) DO NOTHING` and the rows the insert returned, never
 *   by a constraint error (which would abort the transaction). Statement triggers refuse UPDATE,
 *   DELETE and TRUNCATE on `records`, `merkle_subtrees` and `checkpoints`.
 * - Failures of the database (connection refused or lost, too many connections, disk full,
 *   shutdown, lock timeout, read-only) surface as StoreUnavailableError (connection.ts).
 *
 * Crash behaviour: as SQLite's (sqlite-store.ts): a batch is stored with its receipt in one
 * transaction or not at all; a migration and its version bump commit together. A connection
 * lost during COMMIT leaves the outcome unknown to this process: the caller gets
 * StoreUnavailableError, and the agent's retry finds either the stored receipt or nothing.
 */
import { RECORD_KINDS, type RecordKind } from '../../../shared/record.ts';
import { assertCurrent, runMigrations, type MigrationReport } from '../migrate.ts';
import {
  MAX_LISTED_GAPS,
  StoreUnavailableError,
  type AgentEpoch,
  type AgentEpochSummary,
  type AgentKey,
  type ApiToken,
  type CollectorStore,
  type FleetQuery,
  type LedgerAuditSource,
  type LedgerCounts,
  type LedgerRecord,
  type ReportJob,
  type ReportSource,
  type SeqRange,
  type StoredCheckpoint,
  type StoredCollectorKey,
  type StoredReceipt,
  type SubtreeRef,
  type WriteTransaction,
} from '../store.ts';
import {
  LEDGER_ROW_COLUMNS,
  toAgentEpoch,
  toAgentKey,
  toApiToken,
  toCheckpoint,
  toClockSkew,
  toCollectorKey,
  toReceipt,
  toReportJob,
  type AgentEpochRow,
  type AgentKeyRow,
  type ApiTokenRow,
  type CheckpointRow,
  type ClockSkewRow,
  type CollectorKeyRow,
  type EpochSummaryRow,
  type ReceiptRow,
  type ReportJobRow,
} from '../rows.ts';
import {
  AsyncMutex,
  checkout,
  createPool,
  query,
  redactPostgresUrl,
  rollbackAndRelease,
  translateError,
  WRITER_LOCK_KEY,
  type Client,
  type Pool,
  type PostgresConnection,
} from './connection.ts';
import { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION } from './migration-list.ts';
import { postgresMigrationTarget, readSchemaVersion, SCHEMA_VERSION_TABLE } from './migration-target.ts';
import { postgresWriteTransaction } from './write-transaction.ts';
import { PostgresAuditSource } from './audit-source.ts';
import { PostgresReportSource } from './report-source.ts';
import { Snapshot } from './snapshot.ts';
import { HIGHEST_STORED_SEQ, INNER_GAPS, LEDGER_COUNTS, readSubtreesSql, REMEMBER_JTI } from './statements.ts';
import { EPOCH_SUMMARY_COLUMNS, fleetStatement } from './fleet-query.ts';

export { APPEND_ONLY_GUARDS, redactPostgresUrl, type PostgresConnection } from './connection.ts';
export { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION } from './migration-list.ts';

/** The database is not one the store can keep canonical text in byte for byte. */
/**
 * A token bucket in one statement: refill by the time since the last take (never backwards, if
 * replicas' clocks differ a little), then take a token if there is one. `allowed` says which.
 */
const TAKE_RATE_TOKEN = `
  INSERT INTO rate_buckets AS b (key, tokens, at_ms, allowed) VALUES ($1, $2::float8 - 1, $4::bigint, true)
  ON CONFLICT (key) DO UPDATE SET
    tokens = CASE WHEN LEAST($2::float8, b.tokens + GREATEST(0, $4::bigint - b.at_ms) * $3::float8 / 1000.0) >= 1 THEN LEAST($2::float8, b.tokens + GREATEST(0, $4::bigint - b.at_ms) * $3::float8 / 1000.0) - 1 ELSE LEAST($2::float8, b.tokens + GREATEST(0, $4::bigint - b.at_ms) * $3::float8 / 1000.0) END,
    allowed = LEAST($2::float8, b.tokens + GREATEST(0, $4::bigint - b.at_ms) * $3::float8 / 1000.0) >= 1,
    at_ms = GREATEST(b.at_ms, $4::bigint)
  RETURNING tokens, allowed`;

export class DatabaseEncodingError extends Error {
  override name = 'DatabaseEncodingError';
}

export class PostgresStore implements CollectorStore {
  /** The database as messages name it (no password). */
  readonly where: string;
  readonly #pool: Pool;
  readonly #mutex = new AsyncMutex();
  /** Settles once the schema was found current (or migrated to it). */
  #current: Promise<void> | undefined;
  #closed = false;
  /** The last write failed because the database could not take it; cleared by the next commit. */
  #writeFailure: StoreUnavailableError | undefined;

  /** Connects lazily: nothing is asked of the database before `migrate()` or `assertSchemaCurrent()`. */
  constructor(connection: PostgresConnection) {
    this.where = redactPostgresUrl(connection.url);
    this.#pool = createPool(connection);
  }

  /** Canonical JSON is stored as TEXT byte for byte: only a UTF-8 database keeps every record's bytes. */
  async #assertUtf8(): Promise<void> {
    const encoding = (await query<{ server_encoding: string }>(this.#pool, 'SHOW server_encoding')).rows[0]?.server_encoding;
    if (encoding !== 'UTF8') {
      throw new DatabaseEncodingError(`database ${this.where} has encoding ${encoding}; the collector needs a UTF8 database (CREATE DATABASE … ENCODING 'UTF8')`);
    }
  }

  async #ready(): Promise<void> {
    if (this.#closed) throw new Error('the store is closed');
    this.#current ??= (async () => {
      assertCurrent(await readSchemaVersion(this.#pool), POSTGRES_SCHEMA_VERSION, this.where);
      await this.#assertUtf8();
    })();
    try {
      await this.#current;
    } catch (err) {
      this.#current = undefined;
      throw err;
    }
  }

  async migrate(): Promise<MigrationReport> {
    return this.#mutex.run(async () => {
      await this.#assertUtf8();
      const report = await runMigrations(postgresMigrationTarget(this.#pool, this.where), POSTGRES_MIGRATIONS);
      this.#current = Promise.resolve();
      return report;
    });
  }

  async assertSchemaCurrent(): Promise<void> {
    await this.#ready();
  }

  /**
   * Reads; and while the last write failed for want of the database, also writes: a transaction
   * under the writer lock that sets the schema version to itself, a real write that changes
   * nothing. Readiness thus comes back on its own once the database takes writes again.
   */
  async ping(): Promise<void> {
    await query(this.#pool, 'SELECT 1');
    if (this.#writeFailure === undefined) return;
    await this.#mutex.run(async () => {
      if (this.#writeFailure === undefined) return;
      await this.#transaction(async (client) => {
        await query(client, `UPDATE ${SCHEMA_VERSION_TABLE} SET version = version`);
      });
    });
  }

  /** One write transaction under the writer lock on one pooled connection: commits if `fn` resolves. */
  async #transaction<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    let connection: Awaited<ReturnType<typeof checkout>> | undefined;
    try {
      connection = await checkout(this.#pool);
      // READ COMMITTED, whatever the server's default: each statement after the lock sees what
      // the previous holder committed (a REPEATABLE READ snapshot would be taken before the wait).
      await query(connection.client, `BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE; SELECT pg_advisory_xact_lock(${WRITER_LOCK_KEY})`);
      const result = await fn(connection.client);
      await query(connection.client, 'COMMIT');
      connection.release();
      this.#writeFailure = undefined;
      return result;
    } catch (err) {
      if (connection) await rollbackAndRelease(connection);
      const translated = translateError(err);
      if (translated instanceof StoreUnavailableError) this.#writeFailure = translated;
      throw translated;
    }
  }

  write<T>(fn: (tx: WriteTransaction) => Promise<T>): Promise<T> {
    return this.#mutex.run(async () => {
      await this.#ready();
      let open = true;
      try {
        return await this.#transaction((client) => fn(postgresWriteTransaction(client, () => open, this.where)));
      } finally {
        open = false;
      }
    });
  }

  async #rows<R extends object>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    await this.#ready();
    return (await query<R & object>(this.#pool, sql, params)).rows;
  }

  async #row<R extends object>(sql: string, params: readonly unknown[] = []): Promise<R | undefined> {
    return (await this.#rows<R>(sql, params))[0];
  }

  async currentEpoch(agent: string): Promise<AgentEpoch | undefined> {
    const row = await this.#row<AgentEpochRow>(`SELECT * FROM agent_epochs WHERE agent = $1 ORDER BY epoch DESC LIMIT 1`, [agent]);
    return row && toAgentEpoch(row);
  }

  async agentKeys(agent: string, epoch: number): Promise<AgentKey[]> {
    return (await this.#rows<AgentKeyRow>(`SELECT * FROM agent_keys WHERE agent = $1 AND epoch = $2 ORDER BY from_seq`, [agent, epoch])).map(toAgentKey);
  }

  async listAgentKeys(): Promise<AgentKey[]> {
    return (await this.#rows<AgentKeyRow>(`SELECT * FROM agent_keys ORDER BY agent, epoch, from_seq`)).map(toAgentKey);
  }

  async listAgentEpochs(): Promise<AgentEpochSummary[]> {
    return this.#summaries(`SELECT ${EPOCH_SUMMARY_COLUMNS} FROM agent_epochs e ORDER BY e.agent, e.epoch`, []);
  }

  async listFleet(query: FleetQuery): Promise<AgentEpochSummary[]> {
    const { sql, params } = fleetStatement(query);
    return this.#summaries(sql, params);
  }

  /** The summaries of the epochs `sql` selects (EPOCH_SUMMARY_COLUMNS), and their gaps, from one snapshot. */
  async #summaries(sql: string, params: readonly unknown[]): Promise<AgentEpochSummary[]> {
    await this.#ready();
    const snapshot = await Snapshot.open(this.#pool);
    try {
      const rows = await snapshot.rows<EpochSummaryRow & { clock_skew: ClockSkewRow | null }>(sql, params);
      const summaries: AgentEpochSummary[] = [];
      for (const row of rows) {
        summaries.push({
          ...toAgentEpoch(row),
          highestSeq: row.highest_seq,
          highestHash: row.highest_hash,
          ledgerEntries: row.ledger_entries,
          lastSeenAt: row.last_seen_at,
          backlog: { pending: row.backlog_pending, oldestAt: row.backlog_oldest_at, reportedAt: row.backlog_reported_at },
          gaps: row.ledger_entries === row.highest_seq ? [] : await gaps(snapshot, row.agent, row.epoch, row.highest_seq),
          quarantined: row.quarantined,
          witnessedSize: row.witnessed_size,
          witnessedAt: row.witnessed_at,
          clockSkew: row.clock_skew ? toClockSkew(row.clock_skew) : null,
          version: row.agent_version,
        });
      }
      return summaries;
    } finally {
      await snapshot.close();
    }
  }

  async findReceipt(batchId: string): Promise<StoredReceipt | undefined> {
    const row = await this.#row<ReceiptRow>(`SELECT * FROM receipts WHERE batch_id = $1`, [batchId]);
    return row && toReceipt(row);
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    const row = await this.#row<CheckpointRow>(`SELECT * FROM checkpoints ORDER BY size DESC LIMIT 1`);
    return row && toCheckpoint(row);
  }

  async checkpointOfSize(size: number): Promise<StoredCheckpoint | undefined> {
    const row = await this.#row<CheckpointRow>(`SELECT * FROM checkpoints WHERE size = $1`, [size]);
    return row && toCheckpoint(row);
  }

  async readSubtrees(nodes: readonly SubtreeRef[]): Promise<(Buffer | undefined)[]> {
    if (nodes.length === 0) return [];
    const { sql, params } = readSubtreesSql(nodes);
    return (await this.#rows<{ hash: Buffer | null }>(sql, params)).map((row) => row.hash ?? undefined);
  }

  async findLedgerRecord(id: string): Promise<LedgerRecord | undefined> {
    return this.#row<LedgerRecord>(`SELECT ${LEDGER_ROW_COLUMNS} FROM records WHERE id = $1`, [id]);
  }

  async ledgerCounts(): Promise<LedgerCounts> {
    const row = (await this.#row<{ ledger_size: number; by_kind: { [kind: string]: number }; agents: number; quarantined: number; size: number | null } & Omit<CheckpointRow, 'size'>>(
      LEDGER_COUNTS,
    ))!;
    const byKind: { [K in RecordKind]: number } = { audit: 0, telemetry: 0, agent: 0 };
    for (const kind of RECORD_KINDS) byKind[kind] = row.by_kind[kind] ?? 0;
    return {
      size: row.ledger_size,
      byKind,
      agents: row.agents,
      quarantined: row.quarantined,
      checkpoint: row.size === null ? undefined : toCheckpoint({ ...row, size: row.size }),
    };
  }

  async openAudit(): Promise<LedgerAuditSource> {
    await this.#ready();
    return new PostgresAuditSource(await Snapshot.open(this.#pool));
  }

  /** Not under the writer lock: one statement whose unique key decides, so replicas share it without waiting for each other. */
  async rememberJti(jti: string, agent: string, expiresAtSeconds: number, nowSeconds: number, requestKey?: string): Promise<boolean> {
    try {
      const rows = await this.#rows(REMEMBER_JTI, [jti, agent, expiresAtSeconds, nowSeconds, requestKey ?? null]);
      return rows.length === 1;
    } catch (err) {
      if (err instanceof StoreUnavailableError) this.#writeFailure = err;
      throw err;
    }
  }

  poolUse(): { total: number; idle: number; waiting: number } {
    return { total: this.#pool.totalCount, idle: this.#pool.idleCount, waiting: this.#pool.waitingCount };
  }

  async takeRateToken(key: string, limit: { ratePerSecond: number; burst: number }, nowMs: number): Promise<{ allowed: true } | { allowed: false; retryAfterSeconds: number }> {
    const [row] = await this.#rows<{ tokens: number; allowed: boolean }>(TAKE_RATE_TOKEN, [key, limit.burst, limit.ratePerSecond, nowMs]);
    if (row!.allowed) return { allowed: true };
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - row!.tokens) / limit.ratePerSecond)) };
  }

  async findApiToken(tokenHash: string): Promise<ApiToken | undefined> {
    const row = await this.#row<ApiTokenRow>(`SELECT * FROM api_tokens WHERE token_hash = $1`, [tokenHash]);
    return row && toApiToken(row);
  }

  async listApiTokens(): Promise<ApiToken[]> {
    return (await this.#rows<ApiTokenRow>(`SELECT * FROM api_tokens ORDER BY created_at, id`)).map(toApiToken);
  }

  async collectorKeys(): Promise<StoredCollectorKey[]> {
    return (await this.#rows<CollectorKeyRow>(`SELECT role, kid, public_jwk, recorded_at FROM collector_keys ORDER BY role`)).map(toCollectorKey);
  }

  async findReportJob(id: string): Promise<ReportJob | undefined> {
    const row = await this.#row<ReportJobRow>(`SELECT * FROM report_jobs WHERE id = $1`, [id]);
    return row && toReportJob(row);
  }

  async openReport(size: number): Promise<ReportSource | undefined> {
    await this.#ready();
    return PostgresReportSource.open(this.#pool, size);
  }

  async close(): Promise<void> {
    await this.#mutex.run(async () => {
      if (this.#closed) return;
      this.#closed = true;
      await this.#pool.end();
    });
  }
}

/** Seq ranges in 1…highestSeq with no record: between stored seqs, and above the highest stored one. */
async function gaps(snapshot: Snapshot, agent: string, epoch: number, highestSeq: number): Promise<SeqRange[]> {
  const found = await snapshot.rows<SeqRange>(INNER_GAPS, [agent, epoch, highestSeq, MAX_LISTED_GAPS]);
  const top = (await snapshot.row<{ seq: number }>(HIGHEST_STORED_SEQ, [agent, epoch, highestSeq]))!.seq;
  if (top < highestSeq && found.length < MAX_LISTED_GAPS) found.push({ from: top + 1, to: highestSeq });
  return found;
}

/**
 * A report snapshot (CollectorStore.openReport) of the database at `connection` without a store
 * around it, on its own one-connection pool: what an export in a worker thread opens. The
 * caller MUST have checked the schema version (the store it got the connection from did).
 */
export async function openPostgresReportSource(connection: PostgresConnection, size: number): Promise<ReportSource | undefined> {
  const pool = createPool(connection, { max: 1 });
  let ended: Promise<void> | undefined;
  const end = () => (ended ??= pool.end());
  try {
    return await PostgresReportSource.open(pool, size, end);
  } catch (err) {
    await end();
    throw translateError(err);
  }
}

/** True if the database answers and holds the schema-version table; false if it or the table does not exist. */
export async function postgresDatabaseExists(connection: PostgresConnection): Promise<boolean> {
  const pool = createPool(connection, { max: 1 });
  try {
    return (await query<{ present: boolean }>(pool, `SELECT to_regclass('${SCHEMA_VERSION_TABLE}') IS NOT NULL AS present`)).rows[0]?.present === true;
  } catch (err) {
    // 3D000: the database named in the URL does not exist.
    if ((err as { code?: unknown }).code === '3D000') return false;
    throw err;
  } finally {
    await pool.end();
  }
}

/** Opens the store at `connection`; see PostgresStore. */
export function openPostgresStore(connection: PostgresConnection): PostgresStore {
  return new PostgresStore(connection);
}
