/**
 * 0012 — what several collector replicas on one database coordinate through it (PostgreSQL;
 * see store/sqlite/migrations/0012-replica-coordination.ts). `rate_buckets` is UNLOGGED: a
 * bucket is worth nothing after a crash (it refills in seconds), so it costs no WAL.
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 12,
  name: '0012-replica-coordination',
  async up(db) {
    await db.exec(`
      ALTER TABLE report_jobs ADD COLUMN replica TEXT COLLATE "C";
      CREATE UNLOGGED TABLE rate_buckets (
        key TEXT COLLATE "C" PRIMARY KEY,
        tokens DOUBLE PRECISION NOT NULL,
        at_ms BIGINT NOT NULL,
        allowed BOOLEAN NOT NULL
      );
    `);
  },
};
