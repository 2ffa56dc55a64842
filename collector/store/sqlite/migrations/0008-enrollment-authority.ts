/**
 * 0008 — who may write is explicit and replayable.
 *
 * - `enrollment_tokens.for_replacement`: 1 for a token issued with `--replace`, the only kind
 *   that may enroll an agent id whose current epoch is active (it revokes that epoch in the same
 *   transaction). Existing tokens are ordinary ones.
 * - `enrollment_tokens.voided_at`: set when `agents revoke` voids the unused tokens of an id; a
 *   voided token never enrolls.
 * - `agent_epochs.revoked_index`: the ledger index of the COLLECTOR chain's `agent.revoked`
 *   record of the epoch. A record of that epoch at a later index was accepted after the
 *   revocation; `ledger verify` and `sakshya-verify` both name it.
 * - `agent_epochs.superseded_by`: the epoch that replaced this one (`--replace`), null otherwise.
 *
 * Existing revoked epochs get their index from the revocation record, and `revoked_at` is set to
 * that record's `at`, so that the table and the ledger state the same instant (they differed by
 * the milliseconds between two clock reads).
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 8,
  name: '0008-enrollment-authority',
  async up(db) {
    await db.exec(`
      ALTER TABLE enrollment_tokens ADD COLUMN for_replacement INTEGER NOT NULL DEFAULT 0 CHECK (for_replacement IN (0, 1));
      ALTER TABLE enrollment_tokens ADD COLUMN voided_at TEXT;
      ALTER TABLE agent_epochs ADD COLUMN revoked_index INTEGER CHECK (revoked_index >= 0);
      ALTER TABLE agent_epochs ADD COLUMN superseded_by INTEGER;

      CREATE TEMP TABLE revocations AS
        SELECT json_extract(canonical, '$.body.agent') AS agent, json_extract(canonical, '$.body.epoch') AS epoch,
               min(ledger_index) AS ledger_index, at
        FROM records WHERE agent = 'COLLECTOR' AND type = 'agent.revoked'
        GROUP BY 1, 2;
      UPDATE agent_epochs SET
        revoked_index = (SELECT r.ledger_index FROM revocations r WHERE r.agent = agent_epochs.agent AND r.epoch = agent_epochs.epoch),
        revoked_at = (SELECT r.at FROM revocations r WHERE r.agent = agent_epochs.agent AND r.epoch = agent_epochs.epoch)
      WHERE revoked_at IS NOT NULL
        AND EXISTS (SELECT 1 FROM revocations r WHERE r.agent = agent_epochs.agent AND r.epoch = agent_epochs.epoch);
      DROP TABLE revocations;
    `);
  },
};
