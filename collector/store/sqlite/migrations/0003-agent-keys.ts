/**
 * 0003 — agent key history (key rotation, ADR 0006).
 *
 * `agent_keys` holds, per (agent, epoch), every key the chain was signed with and the first seq
 * it signs: the enrolled key from seq 1 (`reason` = 'enrolled'), and one row per accepted
 * `key.rotated` record, valid from that record's seq + 1 (`reason` = 'rotated'), written in the
 * batch's transaction. The key valid for a record is the row with the largest `from_seq` ≤ its
 * seq; the newest row is the key agent JWTs must be signed with.
 *
 * `agent_epochs.public_jwk`/`kid` stay the ENROLLED key (what `ledger verify` trusts); the rows
 * after it are derived from the chain and `ledger verify` re-derives and compares them.
 *
 * Forward-only: existing epochs get their enrolled key as the row from seq 1.
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 3,
  name: '0003-agent-keys',
  async up(db) {
    await db.exec(`
      CREATE TABLE agent_keys (
        agent TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        from_seq INTEGER NOT NULL CHECK (from_seq >= 1),
        kid TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        added_at TEXT NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('enrolled', 'rotated')),
        PRIMARY KEY (agent, epoch, from_seq),
        UNIQUE (agent, epoch, kid),
        FOREIGN KEY (agent, epoch) REFERENCES agent_epochs (agent, epoch)
      ) STRICT, WITHOUT ROWID;

      INSERT INTO agent_keys (agent, epoch, from_seq, kid, public_jwk, added_at, reason)
        SELECT agent, epoch, 1, kid, public_jwk, enrolled_at, 'enrolled' FROM agent_epochs;
    `);
  },
};
