/**
 * 0002 — witness reports.
 *
 * Agents are witnesses of the ledger: each batch may carry `witness`, the newest checkpoint the
 * agent verified (its signature, and its consistency with the one before). The collector keeps,
 * per (agent, epoch), the largest such checkpoint it recognises as its own (size AND root equal
 * a stored checkpoint), and when the agent last confirmed it:
 *
 * - `witnessed_size`: the checkpoint size; NULL until the agent first reports one.
 * - `witnessed_at`: the collector's receive time of the batch that reported it.
 *
 * The root is not copied: it is the root of the stored checkpoint of that size, which
 * `ledger verify` recomputes from the leaves. Both columns are NULL together.
 *
 * Forward-only and additive: existing rows get NULLs, which mean "no report yet".
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 2,
  name: '0002-witness-reports',
  async up(db) {
    await db.exec(`
      ALTER TABLE agent_epochs ADD COLUMN witnessed_size INTEGER CHECK (witnessed_size IS NULL OR witnessed_size >= 0);
      ALTER TABLE agent_epochs ADD COLUMN witnessed_at TEXT;
    `);
  },
};
