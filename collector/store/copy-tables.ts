/**
 * Every table of the collector's schema, as `db copy` moves it from one database to another:
 * the one list of what a copy holds. Both backends have the same tables and column names
 * (migrations NNNN of sqlite/ and postgres/); a migration that adds a table or a column MUST
 * add it here too, and test/unit/collector/copy-tables.test.ts fails until it does.
 *
 * Order: a table comes after the tables its foreign keys name, so the rows of each table can
 * be inserted in one pass. `key` is the primary key: rows are read in that order on both
 * backends (text columns compare by UTF-8 bytes on both: SQLite's BINARY, PostgreSQL's "C"),
 * so a source and a target can be compared row by row in one merge.
 */

/**
 * How a value is carried between backends. `boolean` is INTEGER 0/1 on SQLite and BOOLEAN on
 * PostgreSQL; `integer` is INTEGER / BIGINT (every stored number is far below 2^53); `bytes`
 * is BLOB / BYTEA.
 */
export type CopyColumnType = 'text' | 'integer' | 'bytes' | 'boolean';

export interface CopyColumn {
  name: string;
  type: CopyColumnType;
}

export interface CopyTable {
  name: string;
  /** Every column, in the schema's order. */
  columns: readonly CopyColumn[];
  /** The primary key's columns: the order rows are read and compared in. */
  key: readonly string[];
  /** A column that a backend numbers itself (PostgreSQL: an identity to move past the copied values). */
  identity?: string;
}

/** A row as `db copy` carries it: one value per column of its table, in the columns' order. */
export type CopyValue = string | number | boolean | Buffer | null;
export type CopyRow = readonly CopyValue[];

function table(name: string, key: readonly string[], columns: string, options: { identity?: string } = {}): CopyTable {
  const parsed = columns
    .trim()
    .split(/\s*,\s*/)
    .map((column) => {
      const [columnName, type = 'text'] = column.split(':') as [string, CopyColumnType?];
      return { name: columnName, type };
    });
  return { name, columns: parsed, key, ...options };
}

/** Columns are `name` (text) or `name:type`. */
export const COPY_TABLES: readonly CopyTable[] = [
  table('agents', ['agent'], 'agent, created_at'),
  table(
    'agent_epochs',
    ['agent', 'epoch'],
    `agent, epoch:integer, public_jwk, kid, enrolled_at, revoked_at, highest_seq:integer, highest_hash, last_seen_at,
     backlog_pending:integer, backlog_oldest_at, backlog_reported_at, witnessed_size:integer, witnessed_at,
     revoked_index:integer, superseded_by:integer, agent_version`,
  ),
  table('agent_keys', ['agent', 'epoch', 'from_seq'], 'agent, epoch:integer, from_seq:integer, kid, public_jwk, added_at, reason'),
  table(
    'clock_skew',
    ['agent', 'epoch'],
    `agent, epoch:integer, last_seq:integer, last_at, caught_up_seq:integer, caught_up_at, implausible:integer, ahead:integer,
     backwards:integer, behind:integer, max_ahead_ms:integer, max_backwards_ms:integer, max_behind_ms:integer, last_skew_json`,
  ),
  table(
    'records',
    ['ledger_index'],
    'ledger_index:integer, id, agent, epoch:integer, seq:integer, kind, type, at, received_at, canonical, record_hash, leaf_hash:bytes',
  ),
  table('merkle_subtrees', ['level', 'idx'], 'level:integer, idx:integer, hash:bytes'),
  table('checkpoints', ['size'], 'size:integer, root:bytes, note, created_at'),
  table('receipts', ['batch_id'], 'batch_id, agent, records_digest, receipt_json, signature, created_at'),
  table(
    'quarantine',
    ['id'],
    'id:integer, agent, epoch:integer, seq:integer, record_id, record_hash, stored_hash, canonical, batch_id, trace_id, received_at',
    { identity: 'id' },
  ),
  table('ledger_kind_counts', ['kind'], 'kind, records:integer'),
  table('enrollment_tokens', ['token_hash'], 'token_hash, agent, created_at, expires_at, used_at, for_replacement:boolean, voided_at'),
  table('api_tokens', ['id'], 'id, name, role, token_hash, created_at, expires_at, revoked_at, created_by'),
  table(
    'report_jobs',
    ['id'],
    `id, status, owner, actor, filter_json, checkpoint_size:integer, created_at, finished_at, counts_json, manifest_sha256,
     bundle_bytes:integer, problem_json, expired_at, replica`,
  ),
  table('jti_replay', ['jti'], 'jti, agent, expires_at:integer, request_key'),
  table('collector_keys', ['role'], 'role, kid, public_jwk, recorded_at'),
];

/**
 * Tables of the schema a copy leaves out, each with the reason. Everything else is copied: a
 * test fails for a table that is in neither list.
 */
export const NOT_COPIED: { readonly [table: string]: string } = {
  rate_buckets: 'rate-limit buckets (migration 0012) refill within seconds; the copy starts with none',
};

/** The table of `name` in the copy list. */
export function copyTable(name: string): CopyTable {
  const found = COPY_TABLES.find((t) => t.name === name);
  if (!found) throw new Error(`no table ${name} in the copy list`);
  return found;
}

/** A row of `table` as an object of its columns. */
export function rowObject(table: CopyTable, row: CopyRow): { [column: string]: CopyValue } {
  return Object.fromEntries(table.columns.map((column, i) => [column.name, row[i] ?? null]));
}

/** Positions of the key columns in a row of `table`. */
export function keyPositions(table: CopyTable): number[] {
  return table.key.map((name) => table.columns.findIndex((column) => column.name === name));
}

/** The column list of `table`, for SQL. */
export function columnList(table: CopyTable): string {
  return table.columns.map((column) => column.name).join(', ');
}

/** The ORDER BY of `table`'s key, for SQL. */
export function keyOrder(table: CopyTable): string {
  return table.key.join(', ');
}
