/**
 * 0001 — the initial collector schema.
 *
 * - `agents`, `agent_epochs`: one row per enrolled key; the chain head of (agent, epoch)
 *   (`highest_seq`, `highest_hash`) lives here so a batch is checked in O(batch), never a scan.
 * - `records`: the ledger. `ledger_index` is the RFC 9162 leaf index; the canonical JSON text is
 *   stored exactly as hashed. UNIQUE(id) and UNIQUE(agent, epoch, seq) make exactly-once a
 *   database rule, not only a code rule.
 * - `merkle_subtrees`: every complete subtree hash (level 0 = leaf hashes), so appending and
 *   proving read O(log n) rows.
 * - `checkpoints`, `receipts`, `quarantine`, `enrollment_tokens`, `jti_replay`.
 * - Triggers make the ledger tables append-only: an UPDATE or DELETE is refused by the database.
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 1,
  name: '0001-initial',
  async up(db) {
    await db.exec(`
      CREATE TABLE agents (
        agent TEXT PRIMARY KEY,
        created_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE agent_epochs (
        agent TEXT NOT NULL REFERENCES agents (agent),
        epoch INTEGER NOT NULL CHECK (epoch >= 1),
        public_jwk TEXT NOT NULL,
        kid TEXT NOT NULL,
        enrolled_at TEXT NOT NULL,
        revoked_at TEXT,
        highest_seq INTEGER NOT NULL DEFAULT 0 CHECK (highest_seq >= 0),
        highest_hash TEXT,
        last_seen_at TEXT,
        backlog_pending INTEGER,
        backlog_oldest_at TEXT,
        backlog_reported_at TEXT,
        PRIMARY KEY (agent, epoch),
        CHECK ((highest_seq = 0) = (highest_hash IS NULL))
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE enrollment_tokens (
        token_hash TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT
      ) STRICT;

      CREATE TABLE records (
        ledger_index INTEGER PRIMARY KEY CHECK (ledger_index >= 0),
        id TEXT NOT NULL UNIQUE,
        agent TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        seq INTEGER NOT NULL CHECK (seq >= 1),
        kind TEXT NOT NULL CHECK (kind IN ('audit', 'telemetry', 'agent')),
        type TEXT NOT NULL,
        at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        canonical TEXT NOT NULL,
        record_hash TEXT NOT NULL,
        leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32),
        UNIQUE (agent, epoch, seq),
        FOREIGN KEY (agent, epoch) REFERENCES agent_epochs (agent, epoch)
      ) STRICT;
      CREATE INDEX records_by_kind ON records (kind);

      CREATE TABLE merkle_subtrees (
        level INTEGER NOT NULL CHECK (level >= 0),
        idx INTEGER NOT NULL CHECK (idx >= 0),
        hash BLOB NOT NULL CHECK (length(hash) = 32),
        PRIMARY KEY (level, idx)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE checkpoints (
        size INTEGER PRIMARY KEY CHECK (size >= 0),
        root BLOB NOT NULL CHECK (length(root) = 32),
        note TEXT NOT NULL,
        created_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE receipts (
        batch_id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        records_digest TEXT NOT NULL,
        receipt_json TEXT NOT NULL,
        signature TEXT NOT NULL,
        created_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        record_id TEXT NOT NULL,
        record_hash TEXT NOT NULL,
        stored_hash TEXT NOT NULL,
        canonical TEXT NOT NULL,
        batch_id TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        received_at TEXT NOT NULL,
        UNIQUE (agent, epoch, seq, record_hash)
      ) STRICT;

      CREATE TABLE jti_replay (
        jti TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX jti_replay_by_expiry ON jti_replay (expires_at);

      CREATE TRIGGER records_no_update BEFORE UPDATE ON records
        BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
      CREATE TRIGGER records_no_delete BEFORE DELETE ON records
        BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
      CREATE TRIGGER merkle_subtrees_no_update BEFORE UPDATE ON merkle_subtrees
        BEGIN SELECT RAISE(ABORT, 'merkle subtrees are append-only'); END;
      CREATE TRIGGER merkle_subtrees_no_delete BEFORE DELETE ON merkle_subtrees
        BEGIN SELECT RAISE(ABORT, 'merkle subtrees are append-only'); END;
      CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
        BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
      CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
        BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
    `);
  },
};
