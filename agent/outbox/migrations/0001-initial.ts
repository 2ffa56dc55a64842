/** 0001: records, chain heads, receipts and the key/value state (pins, sync state). */
import type { OutboxMigration } from './migration.ts';

export const migration0001: OutboxMigration = {
  version: 1,
  name: 'initial',
  up(db) {
    db.exec(`
      CREATE TABLE state (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL              -- JSON
      ) STRICT;

      CREATE TABLE chains (
        epoch     INTEGER PRIMARY KEY,
        head_seq  INTEGER NOT NULL,      -- 0 before the first record
        head_hash TEXT NOT NULL,         -- hash of record head_seq (GENESIS_PREV at 0)
        acked_seq INTEGER NOT NULL       -- every seq <= acked_seq is covered by a verified receipt
      ) STRICT;

      CREATE TABLE receipts (
        batch_id    TEXT PRIMARY KEY,
        epoch       INTEGER NOT NULL,
        highest_seq INTEGER NOT NULL,
        accepted    INTEGER NOT NULL,
        duplicates  INTEGER NOT NULL,
        receipt     TEXT NOT NULL,       -- JCS(receipt), exactly what the signature covers
        signature   TEXT NOT NULL,       -- compact JWS by the pinned receipt key
        trace_id    TEXT,
        verified_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE records (
        epoch       INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        id          TEXT NOT NULL UNIQUE,
        kind        TEXT NOT NULL,
        at          TEXT NOT NULL,
        hash        TEXT NOT NULL,       -- base64url sha256(canonical)
        canonical   TEXT NOT NULL,       -- JCS(record), sig included: the bytes that are sent
        bytes       INTEGER NOT NULL,    -- UTF-8 length of canonical
        stored_at   TEXT NOT NULL,
        acked_batch TEXT REFERENCES receipts (batch_id),
        PRIMARY KEY (epoch, seq)
      ) STRICT;
    `);
  },
};
