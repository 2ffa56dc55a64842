/**
 * The copy list (store/copy-tables.ts) is the schema: a table or a column that a migration adds
 * and the list forgets would be silently left behind by `db copy`, so these fail until it is
 * added. SQLite is read from a database migrated to the newest version; PostgreSQL (when a test
 * server is configured) likewise, for the column types the copy sends. Also: the order respects
 * every foreign key, `key` is each table's primary key, and the row merge of the proof.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { COPY_TABLES, NOT_COPIED, type CopyColumnType, type CopyRow } from '../../../collector/store/copy.ts';
import { SQLITE_MIGRATIONS } from '../../../collector/store/sqlite/sqlite-store.ts';
import { sqliteMigrationRunner } from '../../../collector/store/sqlite/migration-target.ts';
import { POSTGRES_SCHEMA_VERSION } from '../../../collector/store/postgres/postgres-store.ts';
import { compareTable, MAX_DIFFERENCES_PER_TABLE } from '../../../collector/services/database-copy/compare-tables.ts';
import { makeTempDir, runCollectorCli } from '../../helpers/collector-process.ts';
import { createTestDatabase, requirePostgres, sqlOn } from '../../helpers/postgres.ts';

/** The declared SQLite type each copy type is stored as. */
const SQLITE_TYPE: { [T in CopyColumnType]: string } = { text: 'TEXT', integer: 'INTEGER', bytes: 'BLOB', boolean: 'INTEGER' };
const POSTGRES_TYPE: { [T in CopyColumnType]: string } = { text: 'text', integer: 'bigint', bytes: 'bytea', boolean: 'boolean' };

async function migratedSqlite(): Promise<Database.Database> {
  const db = new Database(join(makeTempDir(), 'collector.db'));
  for (const migration of SQLITE_MIGRATIONS) await migration.up(sqliteMigrationRunner(db));
  return db;
}

describe('db copy: the copy list is the schema', () => {
  let db: Database.Database;
  before(async () => {
    db = await migratedSqlite();
  });
  after(() => db.close());

  it('names every table of the newest SQLite schema, and no other, unless it is listed as not copied with a reason', () => {
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all() as string[];
    assert.deepEqual([...COPY_TABLES.map((t) => t.name), ...Object.keys(NOT_COPIED)].sort(), tables);
    for (const name of Object.keys(NOT_COPIED)) assert.equal(COPY_TABLES.some((t) => t.name === name), false, name);
  });

  it('names every column of each table, in the schema order, with its type', () => {
    for (const table of COPY_TABLES) {
      const columns = db.prepare('SELECT name, type FROM pragma_table_info(?) ORDER BY cid').all(table.name) as { name: string; type: string }[];
      assert.deepEqual(
        table.columns.map((c) => [c.name, SQLITE_TYPE[c.type]]),
        columns.map((c) => [c.name, c.type]),
        `columns of ${table.name}`,
      );
    }
  });

  it('reads each table by its primary key', () => {
    for (const table of COPY_TABLES) {
      const pk = (db.prepare('SELECT name, pk FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk').all(table.name) as { name: string }[]).map((c) => c.name);
      assert.deepEqual(table.key, pk, `primary key of ${table.name}`);
    }
  });

  it('puts every table after the tables its foreign keys name', () => {
    const position = new Map(COPY_TABLES.map((t, i) => [t.name, i]));
    for (const table of COPY_TABLES) {
      for (const fk of db.prepare('SELECT "table" FROM pragma_foreign_key_list(?)').pluck().all(table.name) as string[]) {
        assert.ok(position.get(fk)! < position.get(table.name)!, `${table.name} references ${fk}, which must come first`);
      }
    }
  });

  it('has the PostgreSQL types the copy sends, column by column', async function () {
    const admin = requirePostgres(this);
    const database = await createTestDatabase(admin);
    try {
      const migrated = await runCollectorCli(['migrate', '--database', database.url], { SAKSHYA_COLLECTOR_DIR: makeTempDir(), SAKSHYA_LOG_LEVEL: 'warn' });
      assert.equal(migrated.code, 0, migrated.stderr);
      assert.match(migrated.stdout, new RegExp(`-> ${POSTGRES_SCHEMA_VERSION}`));
      const rows = await sqlOn<{ table_name: string; column_name: string; data_type: string; is_identity: string }>(
        database.url,
        `SELECT table_name, column_name, data_type, is_identity FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name <> 'schema_version' AND NOT (table_name = ANY($1)) ORDER BY table_name, ordinal_position`,
        [Object.keys(NOT_COPIED)],
      );
      assert.deepEqual([...new Set(rows.map((r) => r.table_name))], COPY_TABLES.map((t) => t.name).sort());
      for (const table of COPY_TABLES) {
        const columns = rows.filter((r) => r.table_name === table.name);
        assert.deepEqual(
          table.columns.map((c) => [c.name, POSTGRES_TYPE[c.type]]),
          columns.map((c) => [c.column_name, c.data_type]),
          `columns of ${table.name}`,
        );
        assert.deepEqual(
          columns.filter((c) => c.is_identity === 'YES').map((c) => c.column_name),
          table.identity === undefined ? [] : [table.identity],
          `identity of ${table.name}`,
        );
      }
    } finally {
      await database.drop();
    }
  });
});

describe('db copy: comparing a table row by row', () => {
  const table = { name: 't', columns: [{ name: 'k', type: 'text' as const }, { name: 'n', type: 'integer' as const }, { name: 'b', type: 'bytes' as const }], key: ['k'] };
  async function* rows(list: CopyRow[]): AsyncGenerator<CopyRow> {
    yield* list;
  }

  it('finds identical streams identical, Buffers compared by content', async () => {
    const list = (): CopyRow[] => [['a', 1, Buffer.from('x')], ['b', 2, null]];
    const result = await compareTable(table, rows(list()), rows(list()));
    assert.deepEqual(result, { table: 't', source: 2, target: 2, identical: true, differences: [], omitted: 0 });
  });

  it('names rows missing from the copy, added to it, and differing, by key, in the order both databases sort text (UTF-8 bytes)', async () => {
    // U+FF5E sorts before U+1F600 by UTF-8 bytes and by code point, after it by UTF-16 units.
    const source: CopyRow[] = [['a', 1, null], ['b', 2, null], ['\uff5e', 3, null], ['\u{1f600}', 4, Buffer.from('y')]];
    const target: CopyRow[] = [['a', 1, null], ['c', 2, null], ['\uff5e', 3, null], ['\u{1f600}', 5, Buffer.from('z')]];
    const result = await compareTable(table, rows(source), rows(target));
    assert.equal(result.identical, false);
    assert.deepEqual([result.source, result.target], [4, 4]);
    assert.deepEqual(result.differences, [
      { key: { k: 'b' }, problem: 'missing' },
      { key: { k: 'c' }, problem: 'unexpected' },
      { key: { k: '\u{1f600}' }, problem: 'different', columns: ['n', 'b'] },
    ]);
  });

  it('lists a bounded number of differences and counts the rest', async () => {
    const source: CopyRow[] = Array.from({ length: MAX_DIFFERENCES_PER_TABLE + 5 }, (_, i) => [`k${String(i).padStart(3, '0')}`, i, null]);
    const result = await compareTable(table, rows(source), rows([]));
    assert.equal(result.differences.length, MAX_DIFFERENCES_PER_TABLE);
    assert.equal(result.omitted, 5);
    assert.equal(result.target, 0);
  });
});
