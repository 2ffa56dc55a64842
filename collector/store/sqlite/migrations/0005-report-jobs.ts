/**
 * 0005 — report export jobs (auditors' report bundles: docs/report-bundle.md).
 *
 * `report_jobs` holds one row per export started over HTTP (`POST /api/v1/reports`), so a
 * restart neither loses a finished export nor leaves a job "running" forever:
 * - `status` goes `running` → `done` (with `counts_json`, `manifest_sha256`, `bundle_bytes`) or
 *   `running` → `failed` (with `problem_json`, an RFC 9457 body). A job found `running` at start
 *   was interrupted by the restart and is marked `failed`.
 * - `owner` is the public id of the auditor token that started it (only that token may read it);
 *   `actor` is who is recorded in the COLLECTOR chain's `report.exported` record.
 * - `filter_json` is the normalised filter; `checkpoint_size` the ledger size the bundle is
 *   against, fixed when the job starts (a "latest" request resolves to a number then).
 *
 * The bundle files themselves live in `<collector dir>/reports/<id>/`, not in the database.
 * No ledger table changes: exports read the ledger through indexes that exist since 0001
 * (ledger_index order, UNIQUE(agent, epoch, seq)).
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 5,
  name: '0005-report-jobs',
  async up(db) {
    await db.exec(`
      CREATE TABLE report_jobs (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
        owner TEXT NOT NULL,
        actor TEXT NOT NULL,
        filter_json TEXT NOT NULL,
        checkpoint_size INTEGER NOT NULL CHECK (checkpoint_size >= 0),
        created_at TEXT NOT NULL,
        finished_at TEXT,
        counts_json TEXT,
        manifest_sha256 TEXT,
        bundle_bytes INTEGER,
        problem_json TEXT,
        CHECK ((status = 'running') = (finished_at IS NULL)),
        CHECK ((status = 'done') = (manifest_sha256 IS NOT NULL)),
        CHECK ((status = 'failed') = (problem_json IS NOT NULL))
      ) STRICT;
      CREATE INDEX report_jobs_by_status ON report_jobs (status);
    `);
  },
};
