/** 0008 — who may write is explicit and replayable (PostgreSQL; see store/sqlite/migrations/0008-enrollment-authority.ts). */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 8,
  name: '0008-enrollment-authority',
  async up(db) {
    await db.exec(`
      ALTER TABLE enrollment_tokens ADD COLUMN for_replacement BOOLEAN NOT NULL DEFAULT false;
      ALTER TABLE enrollment_tokens ADD COLUMN voided_at TEXT COLLATE "C";
      ALTER TABLE agent_epochs ADD COLUMN revoked_index BIGINT CHECK (revoked_index >= 0);
      ALTER TABLE agent_epochs ADD COLUMN superseded_by BIGINT;

      WITH revocations AS (
        SELECT DISTINCT ON (agent, epoch) agent, epoch, ledger_index, at
        FROM (
          SELECT canonical::jsonb -> 'body' ->> 'agent' AS agent, (canonical::jsonb -> 'body' ->> 'epoch')::bigint AS epoch, ledger_index, at
          FROM records WHERE agent = 'COLLECTOR' AND type = 'agent.revoked'
        ) named
        ORDER BY agent, epoch, ledger_index
      )
      UPDATE agent_epochs e SET revoked_index = r.ledger_index, revoked_at = r.at
      FROM revocations r
      WHERE e.revoked_at IS NOT NULL AND r.agent = e.agent AND r.epoch = e.epoch;
    `);
  },
};
