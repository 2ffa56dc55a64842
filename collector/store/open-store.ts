/**
 * The one way above `store/` to get a store: from the database the operator configured
 * (`SAKSHYA_COLLECTOR_DATABASE`, and for PostgreSQL the password file and pool size). Nothing
 * above this module imports a backend, a driver or a database file path.
 *
 * URLs
 * - `sqlite:<path>` — embedded SQLite (the default: `sqlite:<collector dir>/collector.db`). A
 *   relative path is taken from the working directory.
 * - `postgres://…` / `postgresql://…` — PostgreSQL, for several collector replicas sharing one
 *   database (ADR 0013): `postgres://user[:password]@host[:port]/database`, with TLS parameters
 *   as node-postgres reads them (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DATABASE_FILE_NAME, openSqliteReportSource, openSqliteStore } from './sqlite/sqlite-store.ts';
import { openPostgresReportSource, openPostgresStore, postgresDatabaseExists, redactPostgresUrl } from './postgres/postgres-store.ts';
import { openSqliteCopySnapshot, SqliteCopyTarget } from './sqlite/copy.ts';
import { openPostgresCopySnapshot, PostgresCopyTarget } from './postgres/copy.ts';
import { CopySourceMissingError, type CopySnapshot, type CopyTarget } from './copy.ts';
import type { CollectorStore, ReportSource } from './store.ts';

/** A database URL this release cannot use. */
export class DatabaseUrlError extends Error {
  override name = 'DatabaseUrlError';
}

export type DatabaseLocation = { backend: 'sqlite'; path: string } | { backend: 'postgres'; url: string };

/** The database to open: its URL and what a server database needs besides. Plain data (an export worker gets a copy). */
export interface DatabaseConnection {
  url: string;
  /** PostgreSQL: the password, when the URL carries none (SAKSHYA_COLLECTOR_DATABASE_PASSWORD_FILE). */
  password?: string | undefined;
  /** PostgreSQL: most connections this process holds (SAKSHYA_COLLECTOR_DATABASE_POOL). */
  poolSize?: number | undefined;
}

/** The default database URL of a collector whose data directory is `dir`. */
export function defaultDatabaseUrl(dir: string): string {
  return `sqlite:${join(dir, DATABASE_FILE_NAME)}`;
}

/** Parses a database URL; throws DatabaseUrlError naming what is wrong (never echoing a password). */
export function parseDatabaseUrl(url: string): DatabaseLocation {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path.length === 0) throw new DatabaseUrlError('sqlite: needs a file path, e.g. sqlite:/var/lib/sakshya-collector/collector.db');
    return { backend: 'sqlite', path: resolve(path) };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new DatabaseUrlError('is not a valid URL; expected postgres://user@host:5432/database');
    }
    if (parsed.hostname === '') throw new DatabaseUrlError('postgres:// needs a host, e.g. postgres://sakshya@db.example:5432/sakshya');
    if (parsed.pathname.length <= 1) throw new DatabaseUrlError('postgres:// needs a database name, e.g. postgres://sakshya@db.example:5432/sakshya');
    return { backend: 'postgres', url };
  }
  throw new DatabaseUrlError('must be sqlite:<path> or postgres://user@host:5432/database');
}

/** True if the URL names a database that takes a password (a server database). */
export function databaseTakesPassword(url: string): boolean {
  return parseDatabaseUrl(url).backend === 'postgres';
}

/** True if the URL itself carries a password. */
export function databaseUrlHasPassword(url: string): boolean {
  const location = parseDatabaseUrl(url);
  if (location.backend !== 'postgres') return false;
  const parsed = new URL(location.url);
  return parsed.password !== '' || parsed.searchParams.has('password');
}

/** The database as messages and logs may name it: a file path, or a URL whose password is replaced by ***. */
export function describeDatabase(url: string): string {
  const location = parseDatabaseUrl(url);
  return location.backend === 'sqlite' ? location.path : redactPostgresUrl(location.url);
}

/** The URL as logs may show it (`describeConfig`): a password replaced by ***; anything else unchanged. */
export function redactDatabaseUrl(url: string): string {
  return /^postgres(ql)?:\/\//.test(url) ? redactPostgresUrl(url) : url;
}

/**
 * True if the database exists already and has been migrated at least once (a command that
 * only reads must not create one). PostgreSQL: the server answers, the database exists and it
 * holds the schema-version table; a server that does not answer is an error, not "absent".
 */
export async function databaseExists(database: DatabaseConnection): Promise<boolean> {
  const location = parseDatabaseUrl(database.url);
  if (location.backend === 'sqlite') return existsSync(location.path);
  return postgresDatabaseExists({ ...database, url: location.url, poolSize: 1 });
}

/** Opens the store. The caller MUST `migrate()` or `assertSchemaCurrent()` it next. */
export function openStore(database: DatabaseConnection): CollectorStore {
  const location = parseDatabaseUrl(database.url);
  if (location.backend === 'sqlite') return openSqliteStore(location.path);
  return openPostgresStore({ ...database, url: location.url });
}

/**
 * Opens a read-only report snapshot (CollectorStore.openReport) of the database without a
 * store around it: what an export in a worker thread needs (PostgreSQL: on its own
 * one-connection pool, closed with the snapshot).
 */
export function openReportSnapshot(database: DatabaseConnection, size: number): Promise<ReportSource | undefined> {
  const location = parseDatabaseUrl(database.url);
  if (location.backend === 'sqlite') return openSqliteReportSource(location.path, size);
  return openPostgresReportSource({ ...database, url: location.url }, size);
}

/** Opens a read-only snapshot of the whole database (store/copy.ts), which must exist. */
export async function openCopySnapshot(database: DatabaseConnection): Promise<CopySnapshot> {
  const location = parseDatabaseUrl(database.url);
  if (location.backend === 'sqlite') {
    if (!existsSync(location.path)) throw new CopySourceMissingError(`there is no database at ${location.path}`);
    return openSqliteCopySnapshot(location.path);
  }
  return openPostgresCopySnapshot({ ...database, url: location.url, poolSize: 1 });
}

/** The database as a copy's target (store/copy.ts); nothing is asked of it yet. */
export function openCopyTarget(database: DatabaseConnection): CopyTarget {
  const location = parseDatabaseUrl(database.url);
  if (location.backend === 'sqlite') return new SqliteCopyTarget(location.path);
  return new PostgresCopyTarget({ ...database, url: location.url });
}

/** True if the two URLs name the same database: the same file, or the same server, port and database name. */
export function sameDatabase(a: string, b: string): boolean {
  const x = parseDatabaseUrl(a);
  const y = parseDatabaseUrl(b);
  if (x.backend === 'sqlite' && y.backend === 'sqlite') return x.path === y.path;
  if (x.backend !== 'postgres' || y.backend !== 'postgres') return false;
  const u = new URL(x.url);
  const v = new URL(y.url);
  return u.hostname === v.hostname && (u.port || '5432') === (v.port || '5432') && decodeURIComponent(u.pathname) === decodeURIComponent(v.pathname);
}
