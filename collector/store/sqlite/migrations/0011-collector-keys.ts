/**
 * 0011 — the collector's public keys, as the database was initialised with them.
 *
 * `collector_keys`: one row per key role (log, receipt, chain): its RFC 7638 thumbprint and
 * public JWK, written by the first `serve` or `migrate` that finds none (services/
 * collector-identity.ts). Every later start, on any replica, compares its own keys with these
 * and refuses to run with another key: a replica started with a fresh keys directory would sign
 * checkpoints no agent can verify. Append-only, like the ledger: a key is the log's identity.
 *
 * Forward-only and additive: an existing database gets an empty table, filled by its next start.
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 11,
  name: '0011-collector-keys',
  async up(db) {
    await db.exec(`
      CREATE TABLE collector_keys (
        role TEXT PRIMARY KEY CHECK (role IN ('log', 'receipt', 'chain')),
        kid TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        recorded_at TEXT NOT NULL
      ) STRICT;
      CREATE TRIGGER collector_keys_no_update BEFORE UPDATE ON collector_keys
        BEGIN SELECT RAISE(ABORT, 'collector keys are append-only'); END;
      CREATE TRIGGER collector_keys_no_delete BEFORE DELETE ON collector_keys
        BEGIN SELECT RAISE(ABORT, 'collector keys are append-only'); END;
    `);
  },
};
