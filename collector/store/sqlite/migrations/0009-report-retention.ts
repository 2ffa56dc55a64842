/**
 * 0009 — report bundles expire (services/report/retention.ts).
 *
 * A job whose bundle was deleted after SAKSHYA_REPORT_RETENTION keeps its row with status
 * `expired` and the time in `expired_at`, so the API can say the bundle expired (410) instead of
 * not knowing it (404). An expired job keeps its counts and manifest hash; the CHECKs say so.
 * SQLite cannot change a CHECK in place: the table is rebuilt, its rows copied as they are.
 * `report_jobs_by_status` now also orders by `finished_at`, the sweep's range.
 */
import type { Migration } from '../../migrate.ts';

const COLUMNS = 'id, status, owner, actor, filter_json, checkpoint_size, created_at, finished_at, counts_json, manifest_sha256, bundle_bytes, problem_json';

export const migration: Migration = {
  version: 9,
  name: '0009-report-retention',
  async up(db) {
    await db.exec(`
      CREATE TABLE report_jobs_0009 (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'expired')),
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
        expired_at TEXT,
        CHECK ((status = 'running') = (finished_at IS NULL)),
        CHECK ((status IN ('done', 'expired')) = (manifest_sha256 IS NOT NULL)),
        CHECK ((status = 'failed') = (problem_json IS NOT NULL)),
        CHECK ((status = 'expired') = (expired_at IS NOT NULL))
      ) STRICT;
      INSERT INTO report_jobs_0009 (${COLUMNS}) SELECT ${COLUMNS} FROM report_jobs;
      DROP TABLE report_jobs;
      ALTER TABLE report_jobs_0009 RENAME TO report_jobs;
      CREATE INDEX report_jobs_by_status ON report_jobs (status, finished_at);
    `);
  },
};
