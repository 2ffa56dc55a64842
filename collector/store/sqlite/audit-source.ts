/** The audit's read-only snapshot of the store (LedgerAuditSource), on its own connection. */
import Database from 'better-sqlite3';
import {
  type AuditAgentKeyRow,
  type AuditApiTokenRow,
  type AuditEnrollmentTokenRow,
  type AuditAgentEpochRow,
  type AuditCheckpointRow,
  type AuditReceiptRow,
  type AuditRecordRow,
  type AuditSubtreeRow,
  type LedgerAuditSource,
  type LedgerRangeCount,
} from '../store.ts';
import { APPEND_ONLY_TRIGGERS, closeSnapshot, openSnapshot, translateError, type Db } from './connection.ts';
import {
  LEDGER_ROW_COLUMNS,
  type AgentEpochRow,
  type ReceiptRow,
  type TokenRow,
  type AgentKeyRow,
  type ApiTokenRow,
} from '../rows.ts';

/** Yields mapped rows of `statement` one at a time (better-sqlite3 `iterate`: flat memory). */
export async function* streamRows<R, T>(statement: Database.Statement, map: (row: R) => T): AsyncGenerator<T> {
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
export class SqliteAuditSource implements LedgerAuditSource {
  readonly #db: Db;
  readonly #lookups: ReturnType<typeof prepareAuditLookups>;
  #closed = false;

  constructor(path: string) {
    this.#db = openSnapshot(path);
    try {
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
    closeSnapshot(this.#db);
  }
}
