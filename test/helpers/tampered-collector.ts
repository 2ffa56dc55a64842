/**
 * An intruder with the collector's SQLite file: a copy of a collector directory whose database
 * a test changes directly, and `ledger verify --json` run on it by the real CLI.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { AuditReport } from '../../collector/services/ledger-audit.ts';
import { makeTempDir, runCollectorCli } from './collector-process.ts';

/** The triggers an intruder drops before changing the ledger tables (migration 0001). */
export const APPEND_ONLY_TRIGGER_NAMES = [
  'records_no_update',
  'records_no_delete',
  'merkle_subtrees_no_update',
  'merkle_subtrees_no_delete',
  'checkpoints_no_update',
  'checkpoints_no_delete',
] as const;

/** A copy of the collector directory `pristine` whose database `tamper` changed (foreign keys off, as an intruder would). */
export function tamperedCopy(pristine: string, tamper: (db: Database.Database) => void, options: { dropTriggers?: boolean } = {}): string {
  const dir = makeTempDir('sakshya-tampered-');
  cpSync(pristine, dir, { recursive: true });
  const db = new Database(join(dir, 'collector.db'));
  try {
    db.pragma('foreign_keys = OFF');
    if (options.dropTriggers === true) for (const trigger of APPEND_ONLY_TRIGGER_NAMES) db.exec(`DROP TRIGGER ${trigger}`);
    tamper(db);
  } finally {
    db.close();
  }
  return dir;
}

/** `sakshya-collector ledger verify --json` on `dir`: its exit code and report (never an unexpected error). */
export async function ledgerVerify(dir: string): Promise<{ code: number | null; report: AuditReport }> {
  const result = await runCollectorCli(['ledger', 'verify', '--json'], { SAKSHYA_COLLECTOR_DIR: dir });
  assert.equal(result.stderr.includes('unexpected error'), false, result.stderr);
  return { code: result.code, report: JSON.parse(result.stdout) as AuditReport };
}
