/**
 * 0011 — the collector's public keys, as the database was initialised with them (PostgreSQL;
 * see store/sqlite/migrations/0011-collector-keys.ts). Append-only like the ledger tables, with
 * the same guards (0001).
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 11,
  name: '0011-collector-keys',
  async up(db) {
    await db.exec(`
      CREATE TABLE collector_keys (
        role TEXT COLLATE "C" PRIMARY KEY CHECK (role IN ('log', 'receipt', 'chain')),
        kid TEXT COLLATE "C" NOT NULL,
        public_jwk TEXT COLLATE "C" NOT NULL,
        recorded_at TEXT COLLATE "C" NOT NULL
      );
      CREATE TRIGGER collector_keys_no_update BEFORE UPDATE ON collector_keys
        FOR EACH STATEMENT EXECUTE FUNCTION sakshya_refuse_change('collector keys are append-only');
      CREATE TRIGGER collector_keys_no_delete BEFORE DELETE ON collector_keys
        FOR EACH STATEMENT EXECUTE FUNCTION sakshya_refuse_change('collector keys are append-only');
      CREATE TRIGGER collector_keys_no_truncate BEFORE TRUNCATE ON collector_keys
        FOR EACH STATEMENT EXECUTE FUNCTION sakshya_refuse_change('collector keys are append-only');
    `);
  },
};
