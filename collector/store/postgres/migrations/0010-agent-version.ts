/** 0010 — the software version each agent reports (PostgreSQL; see store/sqlite/migrations/0010-agent-version.ts). */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 10,
  name: '0010-agent-version',
  async up(db) {
    await db.exec(`
      ALTER TABLE agent_epochs ADD COLUMN agent_version TEXT COLLATE "C" CHECK (agent_version IS NULL OR length(agent_version) BETWEEN 1 AND 64);
    `);
  },
};
