/**
 * 0013 — the request each agent token was first used for.
 *
 * `jti_replay.request_key`: the Idempotency-Key (the batch id) of the request that brought the
 * token, NULL for a request without one. The same token arriving again with the same key is the
 * same request sent again — by a load balancer that retried it on another replica after the
 * first one failed or died, possibly after that one remembered the token — and is admitted:
 * the batch is idempotent, so answering it twice changes nothing. With another key, or none, it
 * is a replay and is refused as before.
 *
 * Forward-only and additive: remembered tokens get NULL (no request admitted twice).
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 13,
  name: '0013-jti-request-key',
  async up(db) {
    await db.exec(`
      ALTER TABLE jti_replay ADD COLUMN request_key TEXT;
    `);
  },
};
