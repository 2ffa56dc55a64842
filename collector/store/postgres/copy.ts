/** `db copy` on PostgreSQL (store/copy.ts): a read-only snapshot to copy from, and a target to copy into. */
import { COLLECTOR_AGENT_ID } from '../../../shared/record.ts';
import { columnList, COPY_TABLES, keyOrder, type CopyColumnType, type CopyRow, type CopyTable } from '../copy-tables.ts';
import { CopyTargetNotEmptyError, type CopySnapshot, type CopyTarget, type SnapshotLedger, type TableSink, type TargetState } from '../copy.ts';
import type { MigrationReport } from '../migrate.ts';
import { checkout, createPool, query, redactPostgresUrl, rollbackAndRelease, WRITER_LOCK_KEY, type Client, type Pool, type PostgresConnection } from './connection.ts';
import { readSchemaVersion, SCHEMA_VERSION_TABLE } from './migration-target.ts';
import { POSTGRES_SCHEMA_VERSION } from './migration-list.ts';
import { openPostgresStore } from './postgres-store.ts';
import { Snapshot } from './snapshot.ts';

/** The array type a column's values travel in (one parameter per column, rows through `unnest`). */
const ARRAY_TYPE: { [T in CopyColumnType]: string } = { text: 'text[]', integer: 'bigint[]', bytes: 'bytea[]', boolean: 'boolean[]' };

/** A row object of `table` as the copy carries it (BIGINT arrives as a number: connection.ts). */
function toCopyRow(table: CopyTable): (row: { [column: string]: unknown }) => CopyRow {
  return (row) => table.columns.map((column) => row[column.name] as CopyRow[number]);
}

class PostgresCopySnapshot implements CopySnapshot {
  readonly where: string;
  readonly codeVersion = POSTGRES_SCHEMA_VERSION;
  readonly #snapshot: Snapshot;
  readonly #pool: Pool;

  constructor(snapshot: Snapshot, pool: Pool, where: string) {
    this.#snapshot = snapshot;
    this.#pool = pool;
    this.where = where;
  }

  async schemaVersion(): Promise<number> {
    const table = await this.#snapshot.row<{ present: boolean }>(`SELECT to_regclass('${SCHEMA_VERSION_TABLE}') IS NOT NULL AS present`);
    if (!table?.present) return 0;
    return (await this.#snapshot.row<{ version: number }>(`SELECT version FROM ${SCHEMA_VERSION_TABLE}`))?.version ?? 0;
  }

  async ledger(): Promise<SnapshotLedger> {
    const row = (await this.#snapshot.row<{ size: number; agents: number; checkpoint_size: number | null; root: Buffer | null; note: string | null }>(
      `SELECT (SELECT coalesce(max(ledger_index) + 1, 0) FROM records) AS size,
              (SELECT count(*) FROM agents WHERE agent <> $1) AS agents,
              c.size AS checkpoint_size, c.root, c.note
       FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1) c ON true`,
      [COLLECTOR_AGENT_ID],
    ))!;
    const checkpoint = row.checkpoint_size === null ? undefined : { size: row.checkpoint_size, root: row.root!, note: row.note! };
    return { size: row.size, checkpoint, agents: row.agents };
  }

  async count(table: CopyTable): Promise<number> {
    return (await this.#snapshot.row<{ n: number }>(`SELECT count(*) AS n FROM ${table.name}`))!.n;
  }

  rows(table: CopyTable): AsyncIterable<CopyRow> {
    return this.#snapshot.stream(`SELECT ${columnList(table)} FROM ${table.name} ORDER BY ${keyOrder(table)}`, [], toCopyRow(table));
  }

  async close(): Promise<void> {
    try {
      await this.#snapshot.close();
    } finally {
      await this.#pool.end();
    }
  }
}

/** A read-only snapshot (REPEATABLE READ READ ONLY, snapshot.ts) of the database at `connection`, on a pool of its own. */
export async function openPostgresCopySnapshot(connection: PostgresConnection): Promise<CopySnapshot> {
  const pool = createPool(connection, { max: 1 });
  try {
    return new PostgresCopySnapshot(await Snapshot.open(pool), pool, redactPostgresUrl(connection.url));
  } catch (err) {
    await pool.end();
    throw err;
  }
}

/** The tables of the copy list that exist on `on` and hold rows. */
async function tablesWithRows(on: Pool | Client): Promise<string[]> {
  const existing = await query<{ name: string }>(on, `SELECT name FROM unnest($1::text[]) WITH ORDINALITY AS t(name, position) WHERE to_regclass(name) IS NOT NULL ORDER BY position`, [
    COPY_TABLES.map((table) => table.name),
  ]);
  const filled: string[] = [];
  for (const { name } of existing.rows) {
    if ((await query<{ filled: boolean }>(on, `SELECT EXISTS (SELECT 1 FROM ${name}) AS filled`)).rows[0]?.filled) filled.push(name);
  }
  return filled;
}

/** The statement that inserts rows of `table` given column by column. */
function insertStatement(table: CopyTable): string {
  const arrays = table.columns.map((column, i) => `$${i + 1}::${ARRAY_TYPE[column.type]}`).join(', ');
  return `INSERT INTO ${table.name} (${columnList(table)}) SELECT * FROM unnest(${arrays})`;
}

export class PostgresCopyTarget implements CopyTarget {
  readonly where: string;
  readonly #connection: PostgresConnection;
  readonly #pool: Pool;

  constructor(connection: PostgresConnection) {
    this.#connection = connection;
    this.where = redactPostgresUrl(connection.url);
    this.#pool = createPool(connection, { max: 1 });
  }

  async inspect(): Promise<TargetState> {
    try {
      return { version: await readSchemaVersion(this.#pool), codeVersion: POSTGRES_SCHEMA_VERSION, tablesWithRows: await tablesWithRows(this.#pool) };
    } catch (err) {
      if ((err as { code?: unknown }).code === '3D000') {
        throw new CopyTargetMissingError(`the target database ${this.where} does not exist; create it first (CREATE DATABASE … ENCODING 'UTF8': docs/operations-collector.md)`);
      }
      throw err;
    }
  }

  async migrate(): Promise<MigrationReport> {
    const store = openPostgresStore({ ...this.#connection, poolSize: 1 });
    try {
      return await store.migrate();
    } finally {
      await store.close();
    }
  }

  /**
   * One READ COMMITTED transaction that first takes the writer lock every collector's write
   * takes (connection.ts), without the store's statement timeout: a table of millions of rows
   * is many statements, and the whole copy commits once.
   */
  async fill(fill: (sink: TableSink) => Promise<void>): Promise<void> {
    const connection = await checkout(this.#pool);
    const { client } = connection;
    try {
      await query(client, `BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE; SET LOCAL statement_timeout = 0; SELECT pg_advisory_xact_lock(${WRITER_LOCK_KEY})`);
      const filled = await tablesWithRows(client);
      if (filled.length > 0) throw new CopyTargetNotEmptyError(this.where, filled);
      await fill({
        insert: async (table, rows) => {
          if (rows.length === 0) return;
          const columns = table.columns.map((_, i) => rows.map((row) => row[i]));
          await query(client, insertStatement(table), columns);
        },
      });
      // Identity columns number on from the largest copied value, not from 1.
      for (const table of COPY_TABLES) {
        if (table.identity !== undefined) {
          await query(client, `SELECT setval(pg_get_serial_sequence($1, $2), max(${table.identity})) FROM ${table.name}`, [table.name, table.identity]);
        }
      }
      await query(client, 'COMMIT');
      connection.release();
    } catch (err) {
      await rollbackAndRelease(connection);
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}

/** The target database does not exist on its server. */
export class CopyTargetMissingError extends Error {
  override name = 'CopyTargetMissingError';
}
