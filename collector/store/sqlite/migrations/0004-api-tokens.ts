/**
 * 0004 — human bearer tokens (roles: services/access.ts).
 *
 * `api_tokens` holds one row per admin or auditor token: its public id, the name of whom it
 * was issued to, its role, and ONLY the sha256 of the token (hex, UNIQUE: the lookup key). A
 * token is revoked by setting `revoked_at`, never deleted, so `tokens list` keeps the history
 * (the COLLECTOR chain keeps it too, tamper-evidently).
 *
 * Revocation of agents needs no schema change: `agent_epochs.revoked_at` exists since 0001.
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 4,
  name: '0004-api-tokens',
  async up(db) {
    await db.exec(`
      CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'auditor')),
        token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT,
        created_by TEXT NOT NULL
      ) STRICT;
      CREATE INDEX api_tokens_by_name ON api_tokens (name);
    `);
  },
};
