/**
 * 0009 — report bundles expire (PostgreSQL; see store/sqlite/migrations/0009-report-retention.ts).
 * PostgreSQL changes the CHECKs in place, where SQLite rebuilds the table.
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 9,
  name: '0009-report-retention',
  async up(db) {
    await db.exec(`
      ALTER TABLE report_jobs ADD COLUMN expired_at TEXT COLLATE "C";
      ALTER TABLE report_jobs DROP CONSTRAINT report_jobs_status_known;
      ALTER TABLE report_jobs DROP CONSTRAINT report_jobs_done_has_manifest;
      ALTER TABLE report_jobs ADD CONSTRAINT report_jobs_status_known CHECK (status IN ('running', 'done', 'failed', 'expired'));
      ALTER TABLE report_jobs ADD CONSTRAINT report_jobs_done_has_manifest CHECK ((status IN ('done', 'expired')) = (manifest_sha256 IS NOT NULL));
      ALTER TABLE report_jobs ADD CONSTRAINT report_jobs_expired_has_time CHECK ((status = 'expired') = (expired_at IS NOT NULL));
      DROP INDEX report_jobs_by_status;
      CREATE INDEX report_jobs_by_status ON report_jobs (status, finished_at);
    `);
  },
};
