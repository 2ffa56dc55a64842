/** The audit's read-only snapshot of the store (LedgerAuditSource), streamed through cursors (snapshot.ts). */
import type {
  AuditAgentEpochRow,
  AuditAgentKeyRow,
  AuditApiTokenRow,
  AuditCheckpointRow,
  AuditEnrollmentTokenRow,
  AuditReceiptRow,
  AuditRecordRow,
  AuditSubtreeRow,
  LedgerAuditSource,
  LedgerRangeCount,
} from '../store.ts';
import { LEDGER_ROW_COLUMNS, toEnrollmentToken, type AgentEpochRow, type AgentKeyRow, type ApiTokenRow, type ReceiptRow, type TokenRow } from '../rows.ts';
import { APPEND_ONLY_GUARDS, REFUSE_CHANGE_BODY, REFUSE_CHANGE_FUNCTION } from './connection.ts';
import type { Snapshot } from './snapshot.ts';

/** pg_trigger.tgtype bits (PostgreSQL's catalog): BEFORE, and one per event. */
const TRIGGER_BEFORE = 2;
const TRIGGER_EVENT = { DELETE: 8, UPDATE: 16, TRUNCATE: 32 } as const;

export class PostgresAuditSource implements LedgerAuditSource {
  readonly #snapshot: Snapshot;

  constructor(snapshot: Snapshot) {
    this.#snapshot = snapshot;
  }

  /**
   * A guard counts only if it is there as migration 0001 made it: a trigger of that name on its
   * table, enabled, BEFORE its event, calling the refusing function with its original body
   * (disabling a trigger or emptying the function is as good as dropping it).
   */
  async missingAppendOnlyGuards(): Promise<string[]> {
    const rows = await this.#snapshot.rows<{ name: string; table_name: string; tgtype: number; body_intact: boolean }>(
      `SELECT t.tgname AS name, c.relname AS table_name, t.tgtype::int AS tgtype, (p.proname = $1 AND p.prosrc = $2) AS body_intact
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid
       WHERE NOT t.tgisinternal AND t.tgenabled IN ('O', 'A') AND c.relnamespace = current_schema()::regnamespace`,
      [REFUSE_CHANGE_FUNCTION, REFUSE_CHANGE_BODY],
    );
    const present = new Set(
      rows
        .filter((row) => {
          const guard = APPEND_ONLY_GUARDS.find((g) => g.name === row.name);
          return guard !== undefined && guard.table === row.table_name && row.body_intact && (row.tgtype & TRIGGER_BEFORE) !== 0 && (row.tgtype & TRIGGER_EVENT[guard.event]) !== 0;
        })
        .map((row) => row.name),
    );
    return APPEND_ONLY_GUARDS.map((guard) => guard.name).filter((name) => !present.has(name));
  }

  agentEpochs(): AsyncIterable<AuditAgentEpochRow> {
    return this.#snapshot.stream(
      `SELECT agent, epoch, public_jwk, kid, highest_seq, highest_hash, witnessed_size, enrolled_at, revoked_at, revoked_index, superseded_by
       FROM agent_epochs ORDER BY agent, epoch`,
      [],
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
    return this.#snapshot.stream(`SELECT * FROM enrollment_tokens ORDER BY agent, created_at, token_hash`, [], (row: TokenRow): AuditEnrollmentTokenRow => {
      const token = toEnrollmentToken(row);
      return { tokenHash: token.tokenHash, agent: token.agent, expiresAt: token.expiresAt, usedAt: token.usedAt, forReplacement: token.forReplacement, voidedAt: token.voidedAt };
    });
  }

  apiTokens(): AsyncIterable<AuditApiTokenRow> {
    return this.#snapshot.stream(
      `SELECT id, name, role, expires_at, revoked_at FROM api_tokens ORDER BY created_at, id`,
      [],
      (row: ApiTokenRow): AuditApiTokenRow => ({ id: row.id, name: row.name, role: row.role, expiresAt: row.expires_at, revokedAt: row.revoked_at }),
    );
  }

  agentKeys(): AsyncIterable<AuditAgentKeyRow> {
    return this.#snapshot.stream(
      `SELECT agent, epoch, from_seq, kid, public_jwk, reason FROM agent_keys ORDER BY agent, epoch, from_seq`,
      [],
      (row: AgentKeyRow): AuditAgentKeyRow => ({ agent: row.agent, epoch: row.epoch, fromSeq: row.from_seq, kid: row.kid, publicJwk: row.public_jwk, reason: row.reason }),
    );
  }

  records(): AsyncIterable<AuditRecordRow> {
    return this.#snapshot.stream(`SELECT ${LEDGER_ROW_COLUMNS} FROM records ORDER BY ledger_index`, [], (row: AuditRecordRow) => row);
  }

  subtrees(): AsyncIterable<AuditSubtreeRow> {
    // The server sorts (spilling to disk past work_mem), not this process. NUMERIC: a tampered
    // level must not overflow the sort key and fail the audit instead of being named by it.
    return this.#snapshot.stream(
      `SELECT level, idx, hash FROM merkle_subtrees ORDER BY (idx + 1)::numeric * power(2::numeric, least(greatest(level, 0), 1000)) - 1, level`,
      [],
      (row: { level: number; idx: number; hash: Buffer }): AuditSubtreeRow => ({ level: row.level, index: row.idx, hash: row.hash }),
    );
  }

  checkpoints(): AsyncIterable<AuditCheckpointRow> {
    return this.#snapshot.stream(`SELECT size, root, note FROM checkpoints ORDER BY size`, [], (row: AuditCheckpointRow) => ({ size: row.size, root: row.root, note: row.note }));
  }

  receipts(): AsyncIterable<AuditReceiptRow> {
    return this.#snapshot.stream(
      `SELECT batch_id, agent, receipt_json, signature FROM receipts ORDER BY receipt_first_index(receipt_json) NULLS FIRST, batch_id`,
      [],
      (row: ReceiptRow): AuditReceiptRow => ({ batchId: row.batch_id, agent: row.agent, receiptJson: row.receipt_json, signature: row.signature }),
    );
  }

  async checkpointOfSize(size: number): Promise<AuditCheckpointRow | undefined> {
    return this.#snapshot.row<AuditCheckpointRow>(`SELECT size, root, note FROM checkpoints WHERE size = $1`, [size]);
  }

  async subtree(level: number, index: number): Promise<Buffer | undefined> {
    return (await this.#snapshot.row<{ hash: Buffer }>(`SELECT hash FROM merkle_subtrees WHERE level = $1 AND idx = $2`, [level, index]))?.hash;
  }

  async kindCounts(): Promise<{ kind: string; records: number }[]> {
    return this.#snapshot.rows<{ kind: string; records: number }>(`SELECT kind, records FROM ledger_kind_counts ORDER BY kind`);
  }

  async countOutsideChain(from: number, to: number, agent: string, epoch: number): Promise<LedgerRangeCount> {
    return (await this.#snapshot.row<LedgerRangeCount>(
      `SELECT count(*) AS count, min(ledger_index) AS first, max(ledger_index) AS last FROM records
       WHERE ledger_index BETWEEN $1 AND $2 AND NOT (agent = $3 AND epoch = $4)`,
      [from, to, agent, epoch],
    ))!;
  }

  async countExceptAgent(from: number, to: number, exceptAgent: string): Promise<LedgerRangeCount> {
    return (await this.#snapshot.row<LedgerRangeCount>(
      `SELECT count(*) AS count, min(ledger_index) AS first, max(ledger_index) AS last FROM records
       WHERE ledger_index BETWEEN $1 AND $2 AND agent <> $3`,
      [from, to, exceptAgent],
    ))!;
  }

  async close(): Promise<void> {
    await this.#snapshot.close();
  }
}
