/** `db copy` on SQLite (store/copy.ts): a read-only snapshot to copy from, and a target to copy into. */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { COLLECTOR_AGENT_ID } from '../../../shared/record.ts';
import { columnList, COPY_TABLES, keyOrder, type CopyRow, type CopyTable, type CopyValue } from '../copy-tables.ts';
import { CopyTargetNotEmptyError, type CopySnapshot, type CopyTarget, type SnapshotLedger, type TableSink, type TargetState } from '../copy.ts';
import type { MigrationReport } from '../migrate.ts';
import { BUSY_TIMEOUT_MS, closeSnapshot, openSnapshot, translateError, type Db } from './connection.ts';
import { SQLITE_SCHEMA_VERSION } from './migration-list.ts';
import { openSqliteStore } from './sqlite-store.ts';

/** A value as SQLite stores it: booleans are 0/1. */
function toSqlite(value: CopyValue): unknown {
  return typeof value === 'boolean' ? (value ? 1 : 0) : value;
}

/** A raw SQLite row as the copy carries it: 0/1 become booleans where the column is one. */
function fromSqlite(table: CopyTable): (row: unknown[]) => CopyRow {
  const booleans = table.columns.flatMap((column, i) => (column.type === 'boolean' ? [i] : []));
  if (booleans.length === 0) return (row) => row as CopyValue[];
  return (row) => {
    const copy = [...row] as CopyValue[];
    for (const i of booleans) if (copy[i] !== null) copy[i] = copy[i] === 1;
    return copy;
  };
}

class SqliteCopySnapshot implements CopySnapshot {
  readonly where: string;
  readonly codeVersion = SQLITE_SCHEMA_VERSION;
  readonly #db: Db;

  constructor(db: Db, where: string) {
    this.#db = db;
    this.where = where;
  }

  #run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw translateError(err);
    }
  }

  async schemaVersion(): Promise<number> {
    return this.#run(() => this.#db.pragma('user_version', { simple: true }) as number);
  }

  async ledger(): Promise<SnapshotLedger> {
    return this.#run(() => {
      const size = this.#db.prepare(`SELECT coalesce(max(ledger_index) + 1, 0) FROM records`).pluck().get() as number;
      const checkpoint = this.#db.prepare(`SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1`).get() as SnapshotLedger['checkpoint'];
      const agents = this.#db.prepare(`SELECT count(*) FROM agents WHERE agent <> ?`).pluck().get(COLLECTOR_AGENT_ID) as number;
      return { size, checkpoint, agents };
    });
  }

  async count(table: CopyTable): Promise<number> {
    return this.#run(() => this.#db.prepare(`SELECT count(*) FROM ${table.name}`).pluck().get() as number);
  }

  async *rows(table: CopyTable): AsyncGenerator<CopyRow> {
    const map = fromSqlite(table);
    try {
      const statement = this.#db.prepare(`SELECT ${columnList(table)} FROM ${table.name} ORDER BY ${keyOrder(table)}`).raw(true);
      for (const row of statement.iterate() as IterableIterator<unknown[]>) yield map(row);
    } catch (err) {
      throw translateError(err);
    }
  }

  async close(): Promise<void> {
    closeSnapshot(this.#db);
  }
}

/** A read-only snapshot of the SQLite database at `path`: one read transaction, from the first read to close. */
export function openSqliteCopySnapshot(path: string): CopySnapshot {
  let db: Db;
  try {
    db = openSnapshot(path);
  } catch (err) {
    throw translateError(err);
  }
  try {
    db.prepare('SELECT count(*) FROM sqlite_master').get(); // the snapshot starts at the first read
  } catch (err) {
    closeSnapshot(db);
    throw translateError(err);
  }
  return new SqliteCopySnapshot(db, path);
}

/** The tables of the copy list that exist in `db` and hold rows. */
function tablesWithRows(db: Db): string[] {
  const present = new Set(db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[]);
  return COPY_TABLES.filter((table) => present.has(table.name) && db.prepare(`SELECT EXISTS (SELECT 1 FROM ${table.name})`).pluck().get() === 1).map(
    (table) => table.name,
  );
}

export class SqliteCopyTarget implements CopyTarget {
  readonly where: string;

  constructor(path: string) {
    this.where = path;
  }

  async inspect(): Promise<TargetState> {
    if (!existsSync(this.where)) return { version: 0, codeVersion: SQLITE_SCHEMA_VERSION, tablesWithRows: [] };
    try {
      const db = new Database(this.where, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
      try {
        return { version: db.pragma('user_version', { simple: true }) as number, codeVersion: SQLITE_SCHEMA_VERSION, tablesWithRows: tablesWithRows(db) };
      } finally {
        db.close();
      }
    } catch (err) {
      throw translateError(err);
    }
  }

  async migrate(): Promise<MigrationReport> {
    const store = openSqliteStore(this.where);
    try {
      return await store.migrate();
    } finally {
      await store.close();
    }
  }

  /** `BEGIN IMMEDIATE` (SQLite's write lock, which a collector on this file waits for) around the whole copy. */
  async fill(fill: (sink: TableSink) => Promise<void>): Promise<void> {
    let db: Db;
    try {
      db = new Database(this.where, { fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma('foreign_keys = ON');
    } catch (err) {
      throw translateError(err);
    }
    try {
      db.exec('BEGIN IMMEDIATE');
      const filled = tablesWithRows(db);
      if (filled.length > 0) throw new CopyTargetNotEmptyError(this.where, filled);
      const statements = new Map<string, Database.Statement>();
      await fill({
        insert: async (table, rows) => {
          let statement = statements.get(table.name);
          if (!statement) {
            statement = db.prepare(`INSERT INTO ${table.name} (${columnList(table)}) VALUES (${table.columns.map(() => '?').join(', ')})`);
            statements.set(table.name, statement);
          }
          for (const row of rows) statement.run(row.map(toSqlite));
        },
      });
      db.exec('COMMIT');
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw translateError(err);
    } finally {
      db.close();
    }
  }

  async close(): Promise<void> {}
}
