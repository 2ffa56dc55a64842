/** 0004 — human bearer tokens (PostgreSQL; see store/sqlite/migrations/0004-api-tokens.ts). */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 4,
  name: '0004-api-tokens',
  async up(db) {
    await db.exec(`
      CREATE TABLE api_tokens (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT COLLATE "C" NOT NULL,
        role TEXT COLLATE "C" NOT NULL CHECK (role IN ('admin', 'auditor')),
        token_hash TEXT COLLATE "C" NOT NULL UNIQUE CHECK (length(token_hash) = 64),
        created_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C",
        revoked_at TEXT COLLATE "C",
        created_by TEXT COLLATE "C" NOT NULL
      );
      CREATE INDEX api_tokens_by_name ON api_tokens (name);
    `);
  },
};
