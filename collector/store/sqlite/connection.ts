/**
 * What every part of the SQLite store shares: the connection type, its settings, the guards
 * it installs, and how a SQLite error becomes StoreUnavailableError.
 */
import Database from 'better-sqlite3';
import { StoreUnavailableError } from '../store.ts';

export type Db = Database.Database;

/** The triggers that make the ledger tables append-only (migration 0001). */
export const APPEND_ONLY_TRIGGERS = [
  'checkpoints_no_delete',
  'checkpoints_no_update',
  'collector_keys_no_delete',
  'collector_keys_no_update',
  'merkle_subtrees_no_delete',
  'merkle_subtrees_no_update',
  'records_no_delete',
  'records_no_update',
] as const;

export const DATABASE_FILE_NAME = 'collector.db';
export const BUSY_TIMEOUT_MS = 5000;

/** SQLite result codes that mean "the database cannot take this now", not "the request is bad". */
const UNAVAILABLE_CODES = /^SQLITE_(READONLY|FULL|IOERR|BUSY|LOCKED|CANTOPEN|NOMEM|PROTOCOL)/;

export function translateError(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && UNAVAILABLE_CODES.test(code)) {
    return new StoreUnavailableError(code, `database unavailable: ${code}: ${(err as Error).message}`);
  }
  return err;
}

/** Serialises async critical sections in this process. */
export class AsyncMutex {
  #tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/**
 * A read-only connection holding one read transaction: a snapshot that WAL keeps stable while
 * the writer goes on committing. The snapshot starts at its first read; close it with closeSnapshot.
 */
export function openSnapshot(path: string): Db {
  const db = new Database(path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.exec('BEGIN');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Ends a snapshot's read transaction and closes its connection. */
export function closeSnapshot(db: Db): void {
  try {
    if (db.inTransaction) db.exec('COMMIT');
  } finally {
    db.close();
  }
}
