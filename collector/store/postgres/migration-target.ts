/**
 * The PostgreSQL side of migrating (store/migrate.ts): the schema version lives in the
 * one-row table `schema_version` (created by the first migration run, before migration 0001),
 * and each migration runs in one transaction that first takes the writer lock
 * (connection.ts WRITER_LOCK_KEY): two replicas starting at once migrate one after the other,
 * and the second finds nothing left to do. PostgreSQL's DDL is transactional, so a migration
 * and its version bump commit together.
 */
import type { MigrationRunner, MigrationTarget } from '../migrate.ts';
import { checkout, query, rollbackAndRelease, translateError, WRITER_LOCK_KEY, type Client, type Pool } from './connection.ts';

export const SCHEMA_VERSION_TABLE = 'schema_version';

const CREATE_VERSION_TABLE = `CREATE TABLE IF NOT EXISTS ${SCHEMA_VERSION_TABLE} (
  only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
  version BIGINT NOT NULL CHECK (version >= 0)
)`;

/** The schema version of the database `on` answers for: 0 before the first migration. */
export async function readSchemaVersion(on: Pool | Client): Promise<number> {
  const table = await query<{ present: boolean }>(on, `SELECT to_regclass('${SCHEMA_VERSION_TABLE}') IS NOT NULL AS present`);
  if (!table.rows[0]?.present) return 0;
  return (await query<{ version: number }>(on, `SELECT version FROM ${SCHEMA_VERSION_TABLE}`)).rows[0]?.version ?? 0;
}

/** The runner a migration's `up` gets: SQL on `client`, inside the caller's transaction. */
export function postgresMigrationRunner(client: Client): MigrationRunner {
  return {
    exec: async (sql) => {
      await query(client, sql);
    },
  };
}

export function postgresMigrationTarget(pool: Pool, where: string): MigrationTarget {
  return {
    where,
    async transaction(step) {
      const connection = await checkout(pool);
      const { client } = connection;
      try {
        await query(client, `BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE; SET LOCAL statement_timeout = 0; SELECT pg_advisory_xact_lock(${WRITER_LOCK_KEY}); ${CREATE_VERSION_TABLE}`);
        const version = {
          read: async () => (await query<{ version: number }>(client, `SELECT version FROM ${SCHEMA_VERSION_TABLE}`)).rows[0]?.version ?? 0,
          write: async (next: number) => {
            await query(
              client,
              `INSERT INTO ${SCHEMA_VERSION_TABLE} (only_row, version) VALUES (true, $1) ON CONFLICT (only_row) DO UPDATE SET version = excluded.version`,
              [Math.trunc(next)],
            );
          },
        };
        const result = await step(postgresMigrationRunner(client), version);
        await query(client, 'COMMIT');
        connection.release();
        return result;
      } catch (err) {
        await rollbackAndRelease(connection);
        throw translateError(err);
      }
    },
  };
}
