/**
 * Moving a collector's database to another database, whatever the two backends (`db copy`):
 * a read-only snapshot of the source streams every table of COPY_TABLES (copy-tables.ts), in
 * dependency order and key order, into a target that was empty, in batches, inside ONE write
 * transaction of the target that holds its writer lock.
 *
 * Why one transaction: the copy is all or nothing. A copy that fails half way (a lost
 * connection, a full disk, a refused row) leaves the target as empty as it was, never a
 * partial ledger that a collector could start on, and the operator simply runs it again.
 * PostgreSQL has no limit on a transaction's size (MVCC writes the new rows once; WAL grows
 * the same either way), and holding the writer lock keeps any collector started on the target
 * meanwhile from writing into it before the copy is complete. SQLite's write transaction
 * spills to its journal on disk.
 *
 * Memory stays flat: the source streams (better-sqlite3 `iterate`, PostgreSQL cursors) and at
 * most one batch is held (COPY_BATCH_ROWS rows or COPY_BATCH_BYTES of values).
 */
import type { MigrationReport } from './migrate.ts';
import { COPY_TABLES, type CopyRow, type CopyTable } from './copy-tables.ts';

export { COPY_TABLES, NOT_COPIED, copyTable, keyPositions, rowObject, type CopyColumn, type CopyColumnType, type CopyRow, type CopyTable, type CopyValue } from './copy-tables.ts';

/** Rows per insert statement, and the most bytes of values one batch holds. */
export const COPY_BATCH_ROWS = 1000;
export const COPY_BATCH_BYTES = 4 * 1024 * 1024;

/** What a snapshot says of its ledger: its size, the newest checkpoint, how many agents (the collector's own chain not counted). */
export interface SnapshotLedger {
  size: number;
  checkpoint: { size: number; root: Buffer; note: string } | undefined;
  agents: number;
}

/** One read-only, consistent snapshot of a whole database, read table by table. MUST be closed. */
export interface CopySnapshot {
  /** The database as messages name it (a path, or a URL without its password). */
  readonly where: string;
  /** The schema version this release of the collector knows for the backend. */
  readonly codeVersion: number;
  /** The schema version the snapshot sees (0: never migrated). */
  schemaVersion(): Promise<number>;
  ledger(): Promise<SnapshotLedger>;
  count(table: CopyTable): Promise<number>;
  /** The rows of `table` in key order, streamed. */
  rows(table: CopyTable): AsyncIterable<CopyRow>;
  close(): Promise<void>;
}

/** Where a copy writes, inside the target's write transaction. */
export interface TableSink {
  insert(table: CopyTable, rows: readonly CopyRow[]): Promise<void>;
}

/** What a target holds before the copy: its schema version and the tables of the copy list that have rows. */
export interface TargetState {
  version: number;
  /** The schema version this release of the collector knows for the backend. */
  codeVersion: number;
  tablesWithRows: string[];
}

/** The database a copy writes into. MUST be closed. */
export interface CopyTarget {
  readonly where: string;
  /** Looks without changing anything (a SQLite file that does not exist is not created). */
  inspect(): Promise<TargetState>;
  /** Applies the migrations (creating the database file of SQLite). */
  migrate(): Promise<MigrationReport>;
  /**
   * Runs `fill` in one write transaction holding the writer lock, after checking in it that
   * every table is still empty (else CopyTargetNotEmptyError), and commits if it resolves.
   */
  fill(fill: (sink: TableSink) => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

/** The target holds rows: a copy never merges into an existing ledger. */
export class CopyTargetNotEmptyError extends Error {
  override name = 'CopyTargetNotEmptyError';
  readonly tables: string[];
  constructor(where: string, tables: string[]) {
    super(
      `the target database ${where} is not empty (rows in ${tables.join(', ')}): db copy only fills an empty database and never merges into an existing ledger; ` +
        'give a new, empty database (or drop and recreate this one if it holds nothing you need)',
    );
    this.tables = tables;
  }
}

/** The source database does not exist. */
export class CopySourceMissingError extends Error {
  override name = 'CopySourceMissingError';
}

/** Progress of a copy: a table of `total` rows begins, then `done` of them are written. */
export interface CopyObserver {
  table(table: CopyTable, total: number): void;
  rows(done: number): void;
}

/** What a copy wrote: rows per table, and the bytes of their values. */
export interface CopiedTables {
  rows: { [table: string]: number };
  bytes: number;
}

/** Streams every table of COPY_TABLES from `snapshot` into `sink`, in batches. */
export async function copyTables(snapshot: CopySnapshot, sink: TableSink, observer: CopyObserver): Promise<CopiedTables> {
  const copied: CopiedTables = { rows: {}, bytes: 0 };
  for (const table of COPY_TABLES) {
    observer.table(table, await snapshot.count(table));
    let batch: CopyRow[] = [];
    let batchBytes = 0;
    let done = 0;
    const flush = async () => {
      await sink.insert(table, batch);
      done += batch.length;
      copied.bytes += batchBytes;
      observer.rows(done);
      batch = [];
      batchBytes = 0;
    };
    for await (const row of snapshot.rows(table)) {
      batch.push(row);
      batchBytes += rowBytes(row);
      if (batch.length >= COPY_BATCH_ROWS || batchBytes >= COPY_BATCH_BYTES) await flush();
    }
    if (batch.length > 0) await flush();
    copied.rows[table.name] = done;
  }
  return copied;
}

/** The bytes of a row's values (text as UTF-8), roughly what it weighs in a statement. */
export function rowBytes(row: CopyRow): number {
  let bytes = 0;
  for (const value of row) {
    if (typeof value === 'string') bytes += Buffer.byteLength(value);
    else if (Buffer.isBuffer(value)) bytes += value.length;
    else if (value !== null) bytes += 8;
  }
  return bytes;
}
