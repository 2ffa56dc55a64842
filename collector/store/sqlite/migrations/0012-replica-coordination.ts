/**
 * 0012 — what several collector replicas on one database coordinate through it.
 *
 * - `report_jobs.replica`: the replica that runs a job and keeps its bundle on its own disk
 *   (SAKSHYA_COLLECTOR_REPLICA). A replica restarting fails only ITS interrupted jobs, and a
 *   bundle asked of another replica is answered with where it is. NULL: a job from before
 *   (one collector; any replica may treat it as its own).
 * - `rate_buckets`: per-principal token buckets shared by the replicas (PostgreSQL). A single
 *   SQLite collector keeps its buckets in memory; the table exists so both engines have the
 *   same schema at each version.
 *
 * Forward-only and additive.
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 12,
  name: '0012-replica-coordination',
  async up(db) {
    await db.exec(`
      ALTER TABLE report_jobs ADD COLUMN replica TEXT;
      CREATE TABLE rate_buckets (
        key TEXT PRIMARY KEY,
        tokens REAL NOT NULL,
        at_ms INTEGER NOT NULL,
        allowed INTEGER NOT NULL
      ) STRICT;
    `);
  },
};
