/** A report export's read-only snapshot bound to one checkpoint size (ReportSource). */
import { COLLECTOR_AGENT_ID } from '../../../shared/record.ts';
import {
  type AgentEpoch,
  type AgentKey,
  type ReportChainSeqRow,
  type ReportRecordQuery,
  type ReportRecordRow,
  type ReportSource,
  type StoredCheckpoint,
  type SubtreeRef,
} from '../store.ts';
import { closeSnapshot, openSnapshot, translateError, type Db } from './connection.ts';
import {
  LEDGER_ROW_COLUMNS,
  toAgentEpoch,
  toAgentKey,
  toCheckpoint,
  type AgentEpochRow,
  type CheckpointRow,
  type AgentKeyRow,
} from '../rows.ts';
import { streamRows } from './audit-source.ts';

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
export class SqliteReportSource implements ReportSource {
  readonly checkpoint!: StoredCheckpoint;
  readonly #db: Db;
  readonly #size: number;
  readonly #lookups: ReturnType<typeof prepareReportLookups>;
  #closed = false;

  constructor(path: string, size: number) {
    this.#size = size;
    this.#db = openSnapshot(path);
    try {
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
    closeSnapshot(this.#db);
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
