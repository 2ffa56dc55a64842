/**
 * PostgreSQL for tests: `SAKSHYA_TEST_POSTGRES_URL` names an administrator's URL of a throwaway
 * server (`.ci/postgres.sh` starts one and sets it). Each test database is created fresh from it
 * (`sakshya_t_<random>`, UTF8, "C" locale) and dropped afterwards. Without the variable the
 * PostgreSQL tests are skipped with a line that says so — except in CI, where that is a failure.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { skipUnlessCi } from './skip.ts';

export const POSTGRES_TEST_URL_ENV = 'SAKSHYA_TEST_POSTGRES_URL';

/** The administrator URL, or undefined when this machine has no test server. */
export function postgresTestUrl(): string | undefined {
  const url = process.env[POSTGRES_TEST_URL_ENV];
  return url === undefined || url === '' ? undefined : url;
}

/** The administrator URL; skips the test (fails it in CI) when there is none. */
export function requirePostgres(context: Mocha.Context): string {
  const url = postgresTestUrl();
  if (url === undefined) {
    skipUnlessCi(context, `PostgreSQL tests need ${POSTGRES_TEST_URL_ENV} (an administrator URL of a throwaway server; \`. .ci/postgres.sh\` starts one and sets it)`);
  }
  return url;
}

/** Runs `sql` on the database at `url` on a connection of its own. */
export async function sqlOn<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** The URL of database `name` on the server of `adminUrl`. */
export function urlOfDatabase(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.href;
}

export interface TestDatabase {
  name: string;
  url: string;
  /** Drops it, ending whatever connection is still open to it. */
  drop(): Promise<void>;
}

/** A new, empty database on the server of `adminUrl`. */
export async function createTestDatabase(adminUrl: string): Promise<TestDatabase> {
  const name = `sakshya_t_${randomBytes(6).toString('hex')}`;
  await sqlOn(adminUrl, `CREATE DATABASE ${name} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
  return {
    name,
    url: urlOfDatabase(adminUrl, name),
    drop: async () => {
      await sqlOn(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/**
 * The backend the collector tests run on: `SAKSHYA_TEST_BACKEND=postgres` runs the collector
 * integration tests on PostgreSQL (a fresh database per collector, from SAKSHYA_TEST_POSTGRES_URL);
 * anything else, SQLite.
 */
export function testBackend(): 'sqlite' | 'postgres' {
  return process.env.SAKSHYA_TEST_BACKEND === 'postgres' ? 'postgres' : 'sqlite';
}

/**
 * For a test collector: `{ SAKSHYA_COLLECTOR_DATABASE }` of a fresh PostgreSQL database when the
 * tests run on PostgreSQL (and `drop` for afterwards), nothing on SQLite (the collector's default
 * file in its data directory).
 */
export async function testDatabaseEnv(): Promise<{ env: { [name: string]: string }; drop: () => Promise<void> }> {
  if (testBackend() !== 'postgres') return { env: {}, drop: async () => {} };
  const admin = postgresTestUrl();
  if (admin === undefined) throw new Error(`SAKSHYA_TEST_BACKEND=postgres needs ${POSTGRES_TEST_URL_ENV}`);
  const database = await createTestDatabase(admin);
  return { env: { SAKSHYA_COLLECTOR_DATABASE: database.url }, drop: database.drop };
}

/** Skips a test that reads or damages the SQLite file itself when the tests run on PostgreSQL (its PostgreSQL twin lives elsewhere). */
export function sqliteOnly(context: Mocha.Context, why: string): void {
  if (testBackend() !== 'postgres') return;
  console.log(`      skipped on PostgreSQL: ${why}`);
  context.skip();
}
