/**
 * Synchronous reads of a test collector's database, whichever backend it runs on (helpers such
 * as the COLLECTOR chain reader are synchronous): better-sqlite3 on the SQLite file, `psql` on
 * PostgreSQL. For plain SELECTs of text and numbers; parameters are inlined as SQL literals
 * (test values only).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { postgresUrlOf } from './collector-process.ts';

type Param = string | number | null;

function literal(value: Param): string {
  if (value === null) return 'NULL';
  if (typeof value === 'number') return String(value);
  return `'${value.replace(/'/g, "''")}'`;
}

/** Rows of `sql` (with `?` placeholders) on the database of the collector in `dir`. */
export function ledgerRows<T>(dir: string, sql: string, params: readonly Param[] = []): T[] {
  const url = postgresUrlOf(dir);
  if (url === undefined) {
    const db = new Database(join(dir, 'collector.db'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare(sql).all(...params) as T[];
    } finally {
      db.close();
    }
  }
  let i = 0;
  const inlined = sql.replace(/\?/g, () => literal(params[i++] ?? null));
  const result = spawnSync('psql', [url, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', `SELECT coalesce(json_agg(q), '[]') FROM (${inlined}) q`], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`psql: ${result.stderr || result.error?.message}`);
  return JSON.parse(result.stdout) as T[];
}
