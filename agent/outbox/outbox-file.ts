/**
 * The outbox file: where it lives, how a connection to it is opened (WAL, `synchronous=FULL`,
 * a busy timeout for the other processes writing to it), how it is checked before use (SQLite's
 * integrity check) and how it is brought to the current schema (numbered forward-only
 * migrations, and a gate that refuses a file newer than this code). The design header of the
 * outbox (sqlite-outbox.ts) describes the layout and what a crash during a migration leaves.
 */
import { preparePrivateDatabase } from '../../shared/private-files.ts';
import Database from 'better-sqlite3';
import type { Database as SqliteDatabase } from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CURRENT_SCHEMA_VERSION, MIGRATIONS } from './migrations/migration-list.ts';
import { OutboxCorruptError, OutboxNotInitialisedError, OutboxSchemaError } from './outbox-errors.ts';

export const OUTBOX_FILE = 'outbox.db';
export const DEFAULT_BUSY_TIMEOUT_MS = 10_000;

export function outboxPath(dir: string): string {
  return join(dir, OUTBOX_FILE);
}

/** Which SQLite check `open` runs before touching the outbox (see `checkOutboxIntegrity`). */
export type IntegrityCheck = 'none' | 'quick' | 'full';

export interface OpenOptions {
  /** Create the file if it does not exist (`init` only). */
  create?: boolean;
  busyTimeoutMs?: number;
  integrity?: IntegrityCheck;
}

/**
 * Opens a read-write connection to the outbox at `path` (with `create`, creates it), after the
 * integrity check `options.integrity` names, and applies pending migrations. Throws
 * OutboxNotInitialisedError if there is no file (and no `create`), OutboxCorruptError if the
 * check fails, OutboxSchemaError if the file is newer than this code; the connection is closed
 * whenever it throws.
 */
export function openOutboxDatabase(path: string, options: OpenOptions = {}): SqliteDatabase {
  if (options.create !== true && !existsSync(path)) {
    throw new OutboxNotInitialisedError(`no outbox at ${path}: run \`sakshya-agent init\` first`);
  }
  // 0600 before SQLite opens it, so that its -wal and -shm are 0600 too (shared/private-files.ts).
  preparePrivateDatabase(path, { create: options.create === true });
  if (options.integrity !== undefined && options.integrity !== 'none' && existsSync(path)) checkOutboxIntegrity(path, options.integrity);
  const db: SqliteDatabase = new Database(path, { fileMustExist: options.create !== true });
  try {
    db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS}`);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    migrate(db, path);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** The schema version of the file behind `db` (`PRAGMA user_version`). */
export function schemaVersionOf(db: SqliteDatabase): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Throws OutboxSchemaError if `version` is newer than this code can read. */
export function refuseNewerSchema(path: string, version: number): void {
  if (version > CURRENT_SCHEMA_VERSION) {
    throw new OutboxSchemaError(`${path} has schema version ${version}, newer than this agent supports (${CURRENT_SCHEMA_VERSION}); upgrade sakshya-agent`);
  }
}

/**
 * Runs `PRAGMA quick_check` ('quick') or `PRAGMA integrity_check` ('full') on a READ-ONLY
 * connection, so that a corrupt file is never written to (a read-write connection could
 * checkpoint its WAL into it on close). Throws OutboxCorruptError if the check finds a problem
 * or SQLite cannot read the file as a database.
 *
 * Both read every page; integrity_check also re-checks every index against its table, and
 * costs several times as much (docs/operations.md, "A corrupted outbox", has figures for an
 * outbox at the default hard cap). So the long-running `run` pays for the full check once at
 * start; the short commands (`emit`, `sync`, `status`, `rotate-key`) run the quick one, which
 * finds damaged pages and b-trees — what a torn write or a failing disk leaves behind — and
 * costs milliseconds on an outbox of ordinary size.
 */
export function checkOutboxIntegrity(path: string, check: Exclude<IntegrityCheck, 'none'>): void {
  const pragma = check === 'full' ? 'integrity_check' : 'quick_check';
  let db: SqliteDatabase | undefined;
  let problems: string[];
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma(`busy_timeout = ${DEFAULT_BUSY_TIMEOUT_MS}`);
    const rows = db.pragma(pragma) as Array<{ [column: string]: string }>;
    problems = rows.map((row) => String(Object.values(row)[0])).filter((line) => line !== 'ok');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'string' || !/^SQLITE_(CORRUPT|NOTADB)/.test(code)) throw err;
    problems = [`${code}: ${(err as Error).message}`];
  } finally {
    db?.close();
  }
  if (problems.length > 0) throw new OutboxCorruptError(path, `PRAGMA ${pragma}`, problems);
}

/** Applies every migration above the database's version, each in its own IMMEDIATE transaction. */
function migrate(db: SqliteDatabase, path: string): void {
  const readVersion = () => schemaVersionOf(db);
  refuseNewerSchema(path, readVersion());
  for (const migration of MIGRATIONS) {
    if (readVersion() >= migration.version) continue;
    db.transaction(() => {
      // Re-check inside the write lock: another process may have migrated meanwhile.
      const version = readVersion();
      refuseNewerSchema(path, version);
      if (version >= migration.version) return;
      if (version !== migration.version - 1) throw new OutboxSchemaError(`${path}: cannot migrate from version ${version} to ${migration.version}`);
      migration.up(db);
      db.pragma(`user_version = ${migration.version}`);
    }).immediate();
  }
}
