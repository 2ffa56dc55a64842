/**
 * The PostgreSQL migrations: numbered as SQLite's, each version the same tables and columns as
 * SQLite's of that number; the schema-version gate; the append-only guards; migrators that
 * start together. Needs SAKSHYA_TEST_POSTGRES_URL (test/helpers/postgres.ts).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SchemaVersionError, runMigrations } from '../../../collector/store/migrate.ts';
import { SQLITE_MIGRATIONS } from '../../../collector/store/sqlite/sqlite-store.ts';
import { sqliteMigrationRunner } from '../../../collector/store/sqlite/migration-target.ts';
import { APPEND_ONLY_GUARDS, DatabaseEncodingError, POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION, PostgresStore } from '../../../collector/store/postgres/postgres-store.ts';
import { createPool } from '../../../collector/store/postgres/connection.ts';
import { postgresMigrationTarget } from '../../../collector/store/postgres/migration-target.ts';
import { makeTempDir, runCollectorCli } from '../../helpers/collector-process.ts';
import { createTestDatabase, requirePostgres, sqlOn, type TestDatabase } from '../../helpers/postgres.ts';

interface Schema {
  /** Table → its columns in order. */
  tables: { [table: string]: string[] };
  /** Indexes created by name (not those behind a PRIMARY KEY or UNIQUE constraint). */
  indexes: string[];
}

async function postgresSchema(url: string): Promise<Schema> {
  const columns = await sqlOn<{ table_name: string; column_name: string }>(
    url,
    `SELECT table_name, column_name FROM information_schema.columns
     WHERE table_schema = current_schema() AND table_name <> 'schema_version' ORDER BY table_name, ordinal_position`,
  );
  const tables: Schema['tables'] = {};
  for (const row of columns) (tables[row.table_name] ??= []).push(row.column_name);
  const indexes = await sqlOn<{ indexname: string }>(
    url,
    `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname`,
  );
  return { tables, indexes: indexes.map((row) => row.indexname) };
}

async function sqliteSchemaAt(version: number): Promise<Schema> {
  const db = new Database(join(makeTempDir(), 'collector.db'));
  try {
    for (const migration of SQLITE_MIGRATIONS.slice(0, version)) await migration.up(sqliteMigrationRunner(db));
    const tables: Schema['tables'] = {};
    for (const table of db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all() as string[]) {
      tables[table] = db.prepare('SELECT name FROM pragma_table_info(?)').pluck().all(table) as string[];
    }
    const indexes = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all() as string[];
    return { tables, indexes };
  } finally {
    db.close();
  }
}

/** Migrates the database at `url` by the first `version` migrations only. */
async function migrateTo(url: string, version: number): Promise<void> {
  const pool = createPool({ url });
  try {
    await runMigrations(postgresMigrationTarget(pool, 'test'), POSTGRES_MIGRATIONS.slice(0, version));
  } finally {
    await pool.end();
  }
}

describe('collector PostgreSQL migrations: the list', () => {
  it('numbers the migrations as SQLite does: version N has the same name on both engines', () => {
    POSTGRES_MIGRATIONS.forEach((migration, i) => assert.equal(migration.version, i + 1));
    assert.deepEqual(
      POSTGRES_MIGRATIONS.map((m) => m.name),
      SQLITE_MIGRATIONS.map((m) => m.name),
    );
    assert.equal(POSTGRES_SCHEMA_VERSION, POSTGRES_MIGRATIONS.length);
  });
});

describe('collector PostgreSQL migrations', function () {
  this.timeout(60_000);
  let adminUrl: string;
  const databases: TestDatabase[] = [];
  const fresh = async (): Promise<TestDatabase> => {
    const database = await createTestDatabase(adminUrl);
    databases.push(database);
    return database;
  };

  before(function () {
    adminUrl = requirePostgres(this);
  });
  after(async () => {
    for (const database of databases) await database.drop();
  });

  it('gives every schema version the same tables, columns and named indexes as SQLite at that version', async () => {
    const database = await fresh();
    for (let version = 1; version <= POSTGRES_SCHEMA_VERSION; version++) {
      await migrateTo(database.url, version);
      assert.deepEqual(await postgresSchema(database.url), await sqliteSchemaAt(version), `schema version ${version}`);
    }
  });

  it('migrates an empty database to the current version, and a second run applies nothing', async () => {
    const database = await fresh();
    const store = new PostgresStore({ url: database.url });
    try {
      assert.deepEqual(await store.migrate(), { from: 0, to: POSTGRES_SCHEMA_VERSION, applied: POSTGRES_MIGRATIONS.map((m) => m.name) });
      assert.deepEqual(await store.migrate(), { from: POSTGRES_SCHEMA_VERSION, to: POSTGRES_SCHEMA_VERSION, applied: [] });
      await store.assertSchemaCurrent();
    } finally {
      await store.close();
    }
    assert.deepEqual(await sqlOn(database.url, 'SELECT version FROM schema_version'), [{ version: String(POSTGRES_SCHEMA_VERSION) }]);
  });

  it('lets two collectors that start together migrate one after the other: the schema is built once', async () => {
    const database = await fresh();
    const stores = [new PostgresStore({ url: database.url }), new PostgresStore({ url: database.url })];
    try {
      const reports = await Promise.all(stores.map((store) => store.migrate()));
      assert.deepEqual(reports.map((r) => r.to), [POSTGRES_SCHEMA_VERSION, POSTGRES_SCHEMA_VERSION]);
      assert.deepEqual(reports.flatMap((r) => r.applied).sort(), POSTGRES_MIGRATIONS.map((m) => m.name).sort(), 'each migration applied by exactly one');
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  it('migration 0008 gives each revoked epoch the ledger index and time of its agent.revoked record, as on SQLite', async () => {
    const database = await fresh();
    await migrateTo(database.url, 7);
    await sqlOn(
      database.url,
      `INSERT INTO agents VALUES ('AS-OLD-7', 'then'), ('COLLECTOR', 'then');
       INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at, revoked_at) VALUES
         ('COLLECTOR', 1, '{}', 'kc', 't0', NULL), ('AS-OLD-7', 1, '{}', 'k1', 't1', '2026-11-01T00:00:00.005Z'), ('AS-OLD-7', 2, '{}', 'k2', 't2', NULL)`,
    );
    const record = (index: number, type: string, at: string, epoch: number) =>
      sqlOn(database.url, `INSERT INTO records VALUES ($1, $2, 'COLLECTOR', 1, $3, 'agent', $4, $5, 'r', $6, 'h', $7)`, [
        index, `c${index}`, index + 1, type, at, JSON.stringify({ type, body: { agent: 'AS-OLD-7', epoch } }), Buffer.alloc(32),
      ]);
    await record(0, 'agent.enrolled', '2026-10-01T00:00:00.000Z', 1);
    await record(1, 'agent.revoked', '2026-11-01T00:00:00.004Z', 1);
    await record(2, 'agent.revoked', '2026-11-02T00:00:00.000Z', 1);
    const store = new PostgresStore({ url: database.url });
    try {
      await store.migrate();
      const epochs = (await store.listAgentEpochs()).filter((e) => e.agent === 'AS-OLD-7');
      assert.deepEqual(
        epochs.map((e) => [e.epoch, e.revokedAt, e.revokedIndex, e.supersededBy]),
        [
          [1, '2026-11-01T00:00:00.004Z', 1, null],
          [2, null, null, null],
        ],
      );
    } finally {
      await store.close();
    }
  });

  it('refuses a database newer than the code, naming both versions, and an older one for reading', async () => {
    const database = await fresh();
    await migrateTo(database.url, POSTGRES_SCHEMA_VERSION);
    await sqlOn(database.url, `UPDATE schema_version SET version = ${POSTGRES_SCHEMA_VERSION + 7}`);
    const store = new PostgresStore({ url: database.url });
    try {
      for (const attempt of [() => store.migrate(), () => store.assertSchemaCurrent(), () => store.currentEpoch('AS-1')]) {
        await assert.rejects(
          attempt(),
          (err: unknown) =>
            err instanceof SchemaVersionError &&
            err.databaseVersion === POSTGRES_SCHEMA_VERSION + 7 &&
            err.codeVersion === POSTGRES_SCHEMA_VERSION &&
            err.message.includes(`(${POSTGRES_SCHEMA_VERSION})`),
        );
      }
      await sqlOn(database.url, `UPDATE schema_version SET version = ${POSTGRES_SCHEMA_VERSION - 1}`);
      await assert.rejects(store.assertSchemaCurrent(), /older than this collector's .*run `sakshya-collector migrate`/);
    } finally {
      await store.close();
    }
  });

  it('makes the database itself refuse a second copy of a record, and any change to the ledger tables', async () => {
    const database = await fresh();
    await migrateTo(database.url, POSTGRES_SCHEMA_VERSION);
    await sqlOn(database.url, `INSERT INTO agents VALUES ('AS-1', 'now'); INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at) VALUES ('AS-1', 1, '{}', 'k', 'now')`);
    const insert = (index: number, id: string, seq: number) =>
      sqlOn(database.url, `INSERT INTO records VALUES ($1, $2, 'AS-1', 1, $3, 'audit', 'a.b', 'at', 'rx', '{}', 'h', $4)`, [index, id, seq, Buffer.alloc(32)]);
    await insert(0, 'id-1', 1);
    await assert.rejects(insert(1, 'id-2', 1), /duplicate key/);
    await assert.rejects(insert(2, 'id-1', 2), /duplicate key/);
    await assert.rejects(insert(0, 'id-3', 3), /duplicate key/);
    await sqlOn(database.url, `INSERT INTO merkle_subtrees VALUES (0, 0, $1); INSERT INTO checkpoints VALUES (1, $1, 'note', 'now')`.replace(/\$1/g, `'\\x${'00'.repeat(32)}'`));
    for (const table of ['records', 'merkle_subtrees', 'checkpoints']) {
      const column = { records: 'agent', merkle_subtrees: 'hash', checkpoints: 'note' }[table]!;
      await assert.rejects(sqlOn(database.url, `UPDATE ${table} SET ${column} = ${column}`), /append-only/, `UPDATE ${table}`);
      await assert.rejects(sqlOn(database.url, `DELETE FROM ${table}`), /append-only/, `DELETE ${table}`);
      await assert.rejects(sqlOn(database.url, `TRUNCATE ${table} CASCADE`), /append-only/, `TRUNCATE ${table}`);
    }
    assert.equal((await sqlOn(database.url, 'SELECT count(*)::int AS n FROM records'))[0]!.n, 1);
  });

  it('names a guard that is missing, disabled, or whose function no longer refuses', async () => {
    const database = await fresh();
    const store = new PostgresStore({ url: database.url });
    try {
      await store.migrate();
      const missing = async () => {
        const audit = await store.openAudit();
        try {
          return await audit.missingAppendOnlyGuards();
        } finally {
          await audit.close();
        }
      };
      assert.deepEqual(await missing(), []);
      await sqlOn(database.url, 'ALTER TABLE records DISABLE TRIGGER records_no_update; DROP TRIGGER checkpoints_no_truncate ON checkpoints');
      assert.deepEqual(await missing(), ['checkpoints_no_truncate', 'records_no_update']);
      await sqlOn(database.url, `CREATE OR REPLACE FUNCTION sakshya_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$`);
      assert.deepEqual(await missing(), APPEND_ONLY_GUARDS.map((guard) => guard.name));
    } finally {
      await store.close();
    }
  });

  it('refuses a database whose encoding cannot hold every record byte for byte', async () => {
    const database = await fresh();
    await database.drop();
    await sqlOn(adminUrl, `CREATE DATABASE ${database.name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
    const store = new PostgresStore({ url: database.url });
    try {
      await assert.rejects(store.migrate(), (err: unknown) => err instanceof DatabaseEncodingError && /encoding SQL_ASCII; the collector needs a UTF8 database/.test(err.message));
    } finally {
      await store.close();
    }
  });

  it('runs the migrate command on a PostgreSQL URL, and refuses a newer database with one line', async () => {
    const database = await fresh();
    const env = { SAKSHYA_COLLECTOR_DIR: join(makeTempDir(), 'collector'), SAKSHYA_COLLECTOR_DATABASE: database.url, SAKSHYA_LOG_LEVEL: 'warn' };
    const migrated = await runCollectorCli(['migrate'], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, new RegExp(`schema version 0 -> ${POSTGRES_SCHEMA_VERSION}`));
    assert.match((await runCollectorCli(['migrate'], env)).stdout, new RegExp(`schema version ${POSTGRES_SCHEMA_VERSION} is current`));
    await sqlOn(database.url, 'UPDATE schema_version SET version = 999');
    for (const command of ['migrate', 'serve']) {
      const result = await runCollectorCli([command], { ...env, SAKSHYA_COLLECTOR_PORT: '0' });
      assert.notEqual(result.code, 0, command);
      assert.match(result.stderr, new RegExp(`schema version 999, newer than the newest this collector knows \\(${POSTGRES_SCHEMA_VERSION}\\)`));
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    }
  });
});
