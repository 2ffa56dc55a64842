/**
 * 0003: the agent's rotated signing keys (key rotation, ADR 0006). One row per key that
 * `rotate-key` introduced: the epoch, the first seq it signs (the seq of its `key.rotated`
 * record + 1), its thumbprint, its public JWK and the name of its private key file in the agent
 * directory. The epoch's enrolled key is not a row: it is `pins.kid` in `agent-key.jwk`, from
 * seq 1. The key that signs the next record is the row with the largest `from_seq` of the
 * current epoch (or the enrolled key); the row is written in the same transaction as the
 * `key.rotated` record, so the switch and the record commit together.
 */
import type { OutboxMigration } from './migration.ts';

export const migration0003: OutboxMigration = {
  version: 3,
  name: 'signing-keys',
  up(db) {
    db.exec(`
      CREATE TABLE signing_keys (
        epoch      INTEGER NOT NULL,
        from_seq   INTEGER NOT NULL CHECK (from_seq >= 2),   -- seq of its key.rotated record + 1
        kid        TEXT NOT NULL UNIQUE,                     -- RFC 7638 thumbprint
        public_jwk TEXT NOT NULL,                            -- JSON {kty, crv, x}
        key_file   TEXT NOT NULL,                            -- private JWK file in the agent dir (0600)
        added_at   TEXT NOT NULL,
        PRIMARY KEY (epoch, from_seq)
      ) STRICT;
    `);
  },
};
