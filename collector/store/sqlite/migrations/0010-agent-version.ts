/**
 * 0010 — the software version each agent reports (shared/agent-version.ts).
 *
 * `agent_epochs.agent_version`: the version named by the newest batch of (agent, epoch) — its
 * `agentVersion`, or else its `User-Agent` — written with `last_seen_at` and the backlog in the
 * batch's transaction. NULL: the epoch never sent a batch, or its newest batch named no version
 * (an agent older than the field). At most 64 characters; the collector checks the characters.
 *
 * Forward-only and additive: existing rows get NULL, until their agent's next batch.
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 10,
  name: '0010-agent-version',
  async up(db) {
    await db.exec(`
      ALTER TABLE agent_epochs ADD COLUMN agent_version TEXT CHECK (agent_version IS NULL OR length(agent_version) BETWEEN 1 AND 64);
    `);
  },
};
