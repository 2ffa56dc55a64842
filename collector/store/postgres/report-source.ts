/** A report export's read-only snapshot bound to one checkpoint size (ReportSource), on PostgreSQL. */
import { COLLECTOR_AGENT_ID } from '../../../shared/record.ts';
import type { AgentEpoch, AgentKey, ReportChainSeqRow, ReportRecordQuery, ReportRecordRow, ReportSource, StoredCheckpoint, SubtreeRef } from '../store.ts';
import { LEDGER_ROW_COLUMNS, toAgentEpoch, toAgentKey, toCheckpoint, type AgentEpochRow, type AgentKeyRow, type CheckpointRow } from '../rows.ts';
import { readSubtreesSql } from './statements.ts';
import { Snapshot } from './snapshot.ts';
import type { Pool } from './connection.ts';

/**
 * Minute prefix ("YYYY-MM-DDTHH:MM") of an ISO instant: stored `at` texts differ in precision,
 * but their first 16 characters are fixed-width digits, so comparing on them (in the "C"
 * collation of the column) never drops a record whose instant is in range (as on SQLite).
 */
function minutePrefix(iso: string): string {
  return iso.slice(0, 16);
}

export class PostgresReportSource implements ReportSource {
  readonly checkpoint: StoredCheckpoint;
  readonly #snapshot: Snapshot;
  readonly #size: number;
  readonly #onClose: () => Promise<void>;
  #closed = false;

  private constructor(snapshot: Snapshot, checkpoint: StoredCheckpoint, onClose: () => Promise<void>) {
    this.#snapshot = snapshot;
    this.checkpoint = checkpoint;
    this.#size = checkpoint.size;
    this.#onClose = onClose;
  }

  /** A snapshot on `pool` bound to the checkpoint of `size`, or undefined (nothing left open) if there is none. `onClose` runs after it closes. */
  static async open(pool: Pool, size: number, onClose: () => Promise<void> = async () => {}): Promise<PostgresReportSource | undefined> {
    const snapshot = await Snapshot.open(pool);
    try {
      const row = await snapshot.row<CheckpointRow>(`SELECT * FROM checkpoints WHERE size = $1`, [size]);
      if (row) return new PostgresReportSource(snapshot, toCheckpoint(row), onClose);
    } catch (err) {
      await snapshot.close();
      await onClose();
      throw err;
    }
    await snapshot.close();
    await onClose();
    return undefined;
  }

  records(query: ReportRecordQuery): AsyncIterable<ReportRecordRow> {
    return this.#snapshot.stream(
      `SELECT ${LEDGER_ROW_COLUMNS} FROM records
       WHERE ledger_index < $1 AND at >= $2 AND at < $3
         AND ($4::text IS NULL OR starts_with(agent, $4::text))
         AND ($5::text IS NULL OR kind = $5::text) AND ($6::text IS NULL OR type = $6::text)
       ORDER BY ledger_index`,
      [this.#size, minutePrefix(query.from), `${minutePrefix(query.to)}~`, query.agentPrefix, query.kind, query.type],
      (row: ReportRecordRow) => row,
    );
  }

  chainSeqs(agent: string, epoch: number, fromSeq: number, toSeq: number): AsyncIterable<ReportChainSeqRow> {
    return this.#snapshot.stream(
      `SELECT seq, kind, type, at FROM records WHERE agent = $1 AND epoch = $2 AND seq BETWEEN $3 AND $4 AND ledger_index < $5 ORDER BY seq`,
      [agent, epoch, fromSeq, toSeq, this.#size],
      (row: ReportChainSeqRow) => row,
    );
  }

  async agentEpoch(agent: string, epoch: number): Promise<AgentEpoch | undefined> {
    const row = await this.#snapshot.row<AgentEpochRow>(`SELECT * FROM agent_epochs WHERE agent = $1 AND epoch = $2`, [agent, epoch]);
    return row && toAgentEpoch(row);
  }

  async agentKeys(agent: string, epoch: number): Promise<AgentKey[]> {
    return (await this.#snapshot.rows<AgentKeyRow>(`SELECT * FROM agent_keys WHERE agent = $1 AND epoch = $2 ORDER BY from_seq`, [agent, epoch])).map(toAgentKey);
  }

  async revocationRecords(): Promise<{ ledgerIndex: number; canonical: string }[]> {
    return this.#snapshot.rows<{ ledgerIndex: number; canonical: string }>(
      `SELECT ledger_index AS "ledgerIndex", canonical FROM records
       WHERE agent = '${COLLECTOR_AGENT_ID}' AND type = 'agent.revoked' AND ledger_index < $1 ORDER BY ledger_index`,
      [this.#size],
    );
  }

  async readSubtrees(nodes: readonly SubtreeRef[]): Promise<(Buffer | undefined)[]> {
    const { sql, params } = readSubtreesSql(nodes);
    return (await this.#snapshot.rows<{ hash: Buffer | null }>(sql, params)).map((row) => row.hash ?? undefined);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#snapshot.close();
    } finally {
      await this.#onClose();
    }
  }
}
