/**
 * 0004: the buffer cap's running total (DESIGN "Buffer cap"). `chains.pending_bytes` is the sum
 * of `records.bytes` of the epoch's records above `acked_seq` — the unacknowledged outbox data
 * the soft and hard caps are measured against. The outbox keeps it in the same transactions that
 * insert records (+bytes) and acknowledge them (−bytes of the newly acknowledged range, an index
 * range read), so checking the cap costs one small read, never a scan of the backlog.
 *
 * The migration fills it in once from the records already stored (one scan, at upgrade time).
 */
import type { OutboxMigration } from './migration.ts';

export const migration0004: OutboxMigration = {
  version: 4,
  name: 'buffer-bytes',
  up(db) {
    db.exec(`
      ALTER TABLE chains ADD COLUMN pending_bytes INTEGER NOT NULL DEFAULT 0 CHECK (pending_bytes >= 0);
      UPDATE chains SET pending_bytes = (
        SELECT coalesce(sum(r.bytes), 0) FROM records r WHERE r.epoch = chains.epoch AND r.seq > chains.acked_seq
      );
    `);
  },
};
