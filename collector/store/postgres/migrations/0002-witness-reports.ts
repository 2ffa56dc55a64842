/** 0002 — witness reports (PostgreSQL; see store/sqlite/migrations/0002-witness-reports.ts). */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 2,
  name: '0002-witness-reports',
  async up(db) {
    await db.exec(`
      ALTER TABLE agent_epochs ADD COLUMN witnessed_size BIGINT CHECK (witnessed_size IS NULL OR witnessed_size >= 0);
      ALTER TABLE agent_epochs ADD COLUMN witnessed_at TEXT COLLATE "C";
    `);
  },
};
