/** 0006 — clock skew per (agent, epoch) (PostgreSQL; see store/sqlite/migrations/0006-clock-skew.ts). */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 6,
  name: '0006-clock-skew',
  async up(db) {
    await db.exec(`
      CREATE TABLE clock_skew (
        agent TEXT COLLATE "C" NOT NULL,
        epoch BIGINT NOT NULL,
        last_seq BIGINT NOT NULL CHECK (last_seq >= 0),
        last_at TEXT COLLATE "C",
        caught_up_seq BIGINT,
        caught_up_at TEXT COLLATE "C",
        implausible BIGINT NOT NULL DEFAULT 0 CHECK (implausible = ahead + backwards + behind),
        ahead BIGINT NOT NULL DEFAULT 0,
        backwards BIGINT NOT NULL DEFAULT 0,
        behind BIGINT NOT NULL DEFAULT 0,
        max_ahead_ms BIGINT,
        max_backwards_ms BIGINT,
        max_behind_ms BIGINT,
        last_skew_json TEXT COLLATE "C",
        PRIMARY KEY (agent, epoch),
        FOREIGN KEY (agent, epoch) REFERENCES agent_epochs (agent, epoch),
        CHECK ((caught_up_seq IS NULL) = (caught_up_at IS NULL))
      );

      INSERT INTO clock_skew (agent, epoch, last_seq, last_at)
      SELECT e.agent, e.epoch, e.highest_seq, r.at
      FROM agent_epochs e JOIN records r ON r.agent = e.agent AND r.epoch = e.epoch AND r.seq = e.highest_seq
      WHERE e.highest_seq > 0;
    `);
  },
};
