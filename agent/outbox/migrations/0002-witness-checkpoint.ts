/**
 * 0002: the witness's last verified checkpoint (agent/witness/). One row at most (`slot` = 1),
 * replaced whenever a newer checkpoint of the collector's log is verified: its size, its root
 * (base64url, as receipts name it) and the signed note exactly as the collector served it, so
 * `sakshya-agent verify` can re-check the log's signature offline.
 */
import type { OutboxMigration } from './migration.ts';

export const migration0002: OutboxMigration = {
  version: 2,
  name: 'witness-checkpoint',
  up(db) {
    db.exec(`
      CREATE TABLE witness_checkpoint (
        slot        INTEGER PRIMARY KEY CHECK (slot = 1),
        size        INTEGER NOT NULL CHECK (size >= 1),
        root        TEXT NOT NULL CHECK (length(root) = 43),   -- base64url sha256 root hash
        note        TEXT NOT NULL,                             -- C2SP signed note, as served
        verified_at TEXT NOT NULL
      ) STRICT;
    `);
  },
};
