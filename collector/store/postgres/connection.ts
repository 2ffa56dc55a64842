/**
 * What every part of the PostgreSQL store shares: the pool and its settings, the one writer
 * lock, the append-only guards it installs, how a database error becomes StoreUnavailableError,
 * and how a URL is named without its password.
 */
import pg from 'pg';
import type { PoolClient, QueryResultRow } from 'pg';
import { StoreUnavailableError } from '../store.ts';

export type Pool = pg.Pool;
export type Client = PoolClient;

/** How to reach the database: the URL, a password kept out of it, and the pool's size. */
export interface PostgresConnection {
  /** `postgres://user[:password]@host[:port]/database[?sslmode=…&sslrootcert=…]`, as node-postgres reads it. */
  url: string;
  /** Used when the URL carries none (SAKSHYA_COLLECTOR_DATABASE_PASSWORD_FILE). */
  password?: string | undefined;
  /** Most connections the store holds at once. */
  poolSize?: number | undefined;
  /** How long a write waits for the writer lock (and any row lock) before the store answers StoreUnavailableError. */
  lockTimeoutMs?: number | undefined;
}

export const DEFAULT_POOL_SIZE = 10;
/** As SQLite's busy timeout: a write waits this long for the writer lock, then the caller is told to retry. */
export const DEFAULT_LOCK_TIMEOUT_MS = 5000;
/** No single statement of the store runs longer; snapshots (audits, reports) lift it for their own transaction. */
export const STATEMENT_TIMEOUT_MS = 30_000;
/** Waiting for a free pooled connection or a new one, before the caller is told to retry. */
export const CONNECT_TIMEOUT_MS = 10_000;

/**
 * The key of the transaction-scoped advisory lock every write transaction (and every migration)
 * takes first: one writer at a time across every process on the database, which is what makes
 * ledger index assignment (max + 1) and the chain-head checks safe. Advisory locks are per
 * database, so two collectors on two databases of one server do not meet. ("SAKSHYA1")
 */
export const WRITER_LOCK_KEY = '5999158999702389041';

/**
 * The append-only guards of migrations 0001 and 0011: statement triggers that refuse UPDATE,
 * DELETE and TRUNCATE on the ledger tables and the collector's keys (TRUNCATE fires no DELETE
 * trigger, so it has its own).
 */
export const APPEND_ONLY_GUARDS = [
  { table: 'checkpoints', name: 'checkpoints_no_delete', event: 'DELETE' },
  { table: 'checkpoints', name: 'checkpoints_no_truncate', event: 'TRUNCATE' },
  { table: 'checkpoints', name: 'checkpoints_no_update', event: 'UPDATE' },
  { table: 'collector_keys', name: 'collector_keys_no_delete', event: 'DELETE' },
  { table: 'collector_keys', name: 'collector_keys_no_truncate', event: 'TRUNCATE' },
  { table: 'collector_keys', name: 'collector_keys_no_update', event: 'UPDATE' },
  { table: 'merkle_subtrees', name: 'merkle_subtrees_no_delete', event: 'DELETE' },
  { table: 'merkle_subtrees', name: 'merkle_subtrees_no_truncate', event: 'TRUNCATE' },
  { table: 'merkle_subtrees', name: 'merkle_subtrees_no_update', event: 'UPDATE' },
  { table: 'records', name: 'records_no_delete', event: 'DELETE' },
  { table: 'records', name: 'records_no_truncate', event: 'TRUNCATE' },
  { table: 'records', name: 'records_no_update', event: 'UPDATE' },
] as const;

/** The function the guards call, and its body: a guard whose function was replaced is no guard. */
export const REFUSE_CHANGE_FUNCTION = 'sakshya_refuse_change';
export const REFUSE_CHANGE_BODY = `BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END`;

/**
 * BIGINT columns (ledger indexes, seqs, sizes, counts) as JavaScript numbers: the store's
 * values are far below 2^53. node-postgres would give strings. Per pool, not process-wide.
 */
const INT8_OID = 20;
const TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (text: string) => Number(text);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

/** The URL with the password of `connection` put into it, for node-postgres (which prefers the URL's over a separate one). */
export function urlWithPassword(connection: PostgresConnection): string {
  if (connection.password === undefined) return connection.url;
  const url = new URL(connection.url);
  // Encoded first: the URL setter leaves '%' as it is, and node-postgres decodes once.
  url.password = encodeURIComponent(connection.password);
  return url.href;
}

/** A pool on `connection`. Idle connections that the server drops are replaced, never fatal. */
export function createPool(connection: PostgresConnection, options: { max?: number } = {}): Pool {
  const pool = new pg.Pool({
    connectionString: urlWithPassword(connection),
    max: options.max ?? connection.poolSize ?? DEFAULT_POOL_SIZE,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    lock_timeout: connection.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
    application_name: 'sakshya-collector',
    types: TYPES,
  });
  // An idle connection the server closed (restart, failover): the pool drops it; the next query reconnects.
  pool.on('error', () => {});
  return pool;
}

/** SQLSTATEs and classes that mean "the database cannot take this now", not "the request is wrong". */
const UNAVAILABLE_SQLSTATE = /^(08|53|58|57P0[123]|55P03|57014|40001|40P01|25006)/;
/** Socket errors on the way to the server. */
const UNAVAILABLE_ERRNO = /^(ECONNREFUSED|ECONNRESET|ECONNABORTED|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENETDOWN|ENOTFOUND|EAI_AGAIN)$/;
/** node-postgres's own errors (no code) for a connection that died or never came. */
const UNAVAILABLE_MESSAGES: [RegExp, string][] = [
  [/Connection terminated/i, 'CONNECTION_TERMINATED'],
  [/timeout exceeded when trying to connect/i, 'CONNECT_TIMEOUT'],
  [/Client has encountered a connection error/i, 'CONNECTION_ERROR'],
  [/Client was closed and is not queryable/i, 'CONNECTION_CLOSED'],
  [/Connection closed/i, 'CONNECTION_CLOSED'],
];

/** The error as the contract wants it: StoreUnavailableError (reason = SQLSTATE or errno) when the database cannot take it. */
export function translateError(err: unknown): unknown {
  if (err instanceof StoreUnavailableError || !(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_ERRNO.test(code))) {
    return new StoreUnavailableError(code, `database unavailable: ${code}: ${err.message}`);
  }
  if (code === undefined) {
    for (const [pattern, reason] of UNAVAILABLE_MESSAGES) {
      if (pattern.test(err.message)) return new StoreUnavailableError(reason, `database unavailable: ${err.message}`);
    }
  }
  return err;
}

/**
 * A connection of the pool for the caller's exclusive use; `release(broken)` returns it (or
 * discards it when it may be in an unknown state). While it is out, a connection error on it
 * is reported through the next query instead of crashing the process.
 */
export async function checkout(pool: Pool): Promise<{ client: Client; release: (broken?: boolean) => void }> {
  let client: Client;
  try {
    client = await pool.connect();
  } catch (err) {
    throw translateError(err);
  }
  const ignore = () => {};
  client.on('error', ignore);
  let released = false;
  return {
    client,
    release: (broken = false) => {
      if (released) return;
      released = true;
      client.off('error', ignore);
      client.release(broken ? new Error('discarded') : undefined);
    },
  };
}

/** Runs one statement; rejects with the translated error. */
export async function query<R extends QueryResultRow>(on: Pool | Client, sql: string, params: readonly unknown[] = []): Promise<pg.QueryResult<R>> {
  try {
    return await on.query<R>(sql, params as unknown[]);
  } catch (err) {
    throw translateError(err);
  }
}

/** Ends a transaction on a checked-out client (ROLLBACK), discarding the connection if even that fails. */
export async function rollbackAndRelease(connection: { client: Client; release: (broken?: boolean) => void }): Promise<void> {
  try {
    await connection.client.query('ROLLBACK');
    connection.release();
  } catch {
    connection.release(true);
  }
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

/** The URL as messages and logs may show it: the password (in the user part or as a parameter) replaced by ***. */
export function redactPostgresUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'postgres://(unparsable URL)';
  }
  if (parsed.password !== '') parsed.password = '***';
  if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
  return parsed.href.replaceAll('%2A%2A%2A', '***');
}

/** Text of UTF-8 bytes, exactly: invalid UTF-8 is refused instead of being replaced. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
export function utf8Text(text: string | Uint8Array): string {
  return typeof text === 'string' ? text : UTF8.decode(text);
}
