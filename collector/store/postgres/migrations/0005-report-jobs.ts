/**
 * 0005 — report export jobs (PostgreSQL; see store/sqlite/migrations/0005-report-jobs.ts).
 * The CHECKs are named so that 0009 can replace them in place.
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 5,
  name: '0005-report-jobs',
  async up(db) {
    await db.exec(`
      CREATE TABLE report_jobs (
        id TEXT COLLATE "C" PRIMARY KEY,
        status TEXT COLLATE "C" NOT NULL,
        owner TEXT COLLATE "C" NOT NULL,
        actor TEXT COLLATE "C" NOT NULL,
        filter_json TEXT COLLATE "C" NOT NULL,
        checkpoint_size BIGINT NOT NULL CHECK (checkpoint_size >= 0),
        created_at TEXT COLLATE "C" NOT NULL,
        finished_at TEXT COLLATE "C",
        counts_json TEXT COLLATE "C",
        manifest_sha256 TEXT COLLATE "C",
        bundle_bytes BIGINT,
        problem_json TEXT COLLATE "C",
        CONSTRAINT report_jobs_status_known CHECK (status IN ('running', 'done', 'failed')),
        CONSTRAINT report_jobs_running_unfinished CHECK ((status = 'running') = (finished_at IS NULL)),
        CONSTRAINT report_jobs_done_has_manifest CHECK ((status = 'done') = (manifest_sha256 IS NOT NULL)),
        CONSTRAINT report_jobs_failed_has_problem CHECK ((status = 'failed') = (problem_json IS NOT NULL))
      );
      CREATE INDEX report_jobs_by_status ON report_jobs (status);
    `);
  },
};
