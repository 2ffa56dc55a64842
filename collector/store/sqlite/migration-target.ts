/**
 * The SQLite side of migrating (store/migrate.ts): the schema version lives in
 * `PRAGMA user_version`, and each migration runs in a `BEGIN IMMEDIATE` transaction (SQLite's
 * write lock, which excludes a migrator in another process) that commits the schema change and
 * the version bump together.
 */
import type Database from 'better-sqlite3';
import type { MigrationRunner, MigrationTarget } from '../migrate.ts';

/** The runner a migration's `up` gets: SQL on `db`, inside the caller's transaction. */
export function sqliteMigrationRunner(db: Database.Database): MigrationRunner {
  return {
    exec: async (sql) => {
      db.exec(sql);
    },
  };
}

export function sqliteMigrationTarget(db: Database.Database, where: string, translateError: (err: unknown) => unknown = (err) => err): MigrationTarget {
  const runner = sqliteMigrationRunner(db);
  const version = {
    read: async () => db.pragma('user_version', { simple: true }) as number,
    write: async (next: number) => {
      db.pragma(`user_version = ${Math.trunc(next)}`);
    },
  };
  return {
    where,
    async transaction(step) {
      try {
        db.exec('BEGIN IMMEDIATE');
      } catch (err) {
        throw translateError(err);
      }
      try {
        const result = await step(runner, version);
        db.exec('COMMIT');
        return result;
      } catch (err) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw translateError(err);
      }
    },
  };
}
