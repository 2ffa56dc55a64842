/**
 * The one way above `store/` to get a store: from the database URL the operator configured
 * (`SAKSHYA_COLLECTOR_DATABASE`). Nothing above this module imports a backend, a driver or a
 * database file path.
 *
 * URLs
 * - `sqlite:<path>` — embedded SQLite (the default: `sqlite:<collector dir>/collector.db`). A
 *   relative path is taken from the working directory.
 * - `postgres://…` / `postgresql://…` — PostgreSQL, for several collector replicas; refused by
 *   this release with a message that says so (the contract is ready for it: ADR 0002).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DATABASE_FILE_NAME, openSqliteReportSource, openSqliteStore } from './sqlite/sqlite-store.ts';
import type { CollectorStore, ReportSource } from './store.ts';

/** A database URL this release cannot use. */
export class DatabaseUrlError extends Error {
  override name = 'DatabaseUrlError';
}

export type DatabaseLocation = { backend: 'sqlite'; path: string };

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
    throw new DatabaseUrlError('PostgreSQL is not supported by this release of the collector yet; use sqlite:<path>');
  }
  throw new DatabaseUrlError('must be sqlite:<path> (or, in a later release, postgres://…)');
}

/** The database as messages and logs may name it. */
export function describeDatabase(url: string): string {
  return parseDatabaseUrl(url).path;
}

/** True if the database exists already (a command that only reads must not create one). */
export function databaseExists(url: string): boolean {
  return existsSync(parseDatabaseUrl(url).path);
}

/** Opens the store at `url`. The caller MUST `migrate()` or `assertSchemaCurrent()` it next. */
export function openStore(url: string): CollectorStore {
  return openSqliteStore(parseDatabaseUrl(url).path);
}

/**
 * Opens a read-only report snapshot (CollectorStore.openReport) of the database at `url`
 * without a store around it: what an export in a worker thread needs.
 */
export function openReportSnapshot(url: string, size: number): Promise<ReportSource | undefined> {
  return openSqliteReportSource(parseDatabaseUrl(url).path, size);
}
