/**
 * 0007 — per-kind ledger counts kept as counters, instead of the `records_by_kind` index.
 *
 * `ledger stats` answered its per-kind counts by scanning `records_by_kind`: O(n) on every
 * call, and every record insert paid a fourth B-tree insert for it (about 1.1 µs of the
 * collector's 12 µs insert, the ingest's heaviest statement: docs/benchmarks.md).
 * `ledger_kind_counts` holds one row per kind, moved by each append in the batch's own
 * transaction (the store's `appendRecords`), so the counts always describe exactly the
 * committed records; `ledger verify` recounts them from the records.
 *
 * Existing ledgers: the counts are filled from the records (using the index, before it is
 * dropped). Report queries never used the index: they scan by ledger index.
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 7,
  name: '0007-ledger-kind-counts',
  async up(db) {
    await db.exec(`
      CREATE TABLE ledger_kind_counts (
        kind TEXT PRIMARY KEY CHECK (kind IN ('audit', 'telemetry', 'agent')),
        records INTEGER NOT NULL CHECK (records >= 0)
      ) STRICT, WITHOUT ROWID;
      INSERT INTO ledger_kind_counts (kind, records) SELECT kind, count(*) FROM records GROUP BY kind;
      DROP INDEX records_by_kind;
    `);
  },
};
