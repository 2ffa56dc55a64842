/** 0012 — the request each agent token was first used for (PostgreSQL; see store/sqlite/migrations/0012-jti-request-key.ts). */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 13,
  name: '0013-jti-request-key',
  async up(db) {
    await db.exec(`
      ALTER TABLE jti_replay ADD COLUMN request_key TEXT COLLATE "C";
    `);
  },
};
