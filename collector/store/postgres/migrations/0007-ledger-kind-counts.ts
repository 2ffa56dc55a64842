/** 0007 — per-kind ledger counts kept as counters (PostgreSQL; see store/sqlite/migrations/0007-ledger-kind-counts.ts). */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 7,
  name: '0007-ledger-kind-counts',
  async up(db) {
    await db.exec(`
      CREATE TABLE ledger_kind_counts (
        kind TEXT COLLATE "C" PRIMARY KEY CHECK (kind IN ('audit', 'telemetry', 'agent')),
        records BIGINT NOT NULL CHECK (records >= 0)
      );
      INSERT INTO ledger_kind_counts (kind, records) SELECT kind, count(*) FROM records GROUP BY kind;
      DROP INDEX records_by_kind;
    `);
  },
};
