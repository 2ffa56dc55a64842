/**
 * 0006 — clock skew per (agent, epoch) (the rule is in services/clock-skew.ts).
 *
 * `clock_skew` holds, per chain, what the next batch is judged against — the `at` of the newest
 * stored record (`last_seq`, `last_at`, exactly as sent) and the newest batch that carried the
 * agent's whole backlog (`caught_up_seq`, `caught_up_at` = its receive time) — and the counts:
 * implausible records in all and per rule, the largest offset per rule (ms), and the newest
 * implausible record. It is written in each batch's own transaction, so the counts describe
 * exactly the committed records. Records stay as they are: `records.at` is stored as sent.
 *
 * Existing chains start from their stored head: its seq and `at` (one indexed read per chain),
 * no counts, and no caught-up batch yet.
 */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 6,
  name: '0006-clock-skew',
  async up(db) {
    await db.exec(`
      CREATE TABLE clock_skew (
        agent TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        last_seq INTEGER NOT NULL CHECK (last_seq >= 0),
        last_at TEXT,
        caught_up_seq INTEGER,
        caught_up_at TEXT,
        implausible INTEGER NOT NULL DEFAULT 0 CHECK (implausible = ahead + backwards + behind),
        ahead INTEGER NOT NULL DEFAULT 0,
        backwards INTEGER NOT NULL DEFAULT 0,
        behind INTEGER NOT NULL DEFAULT 0,
        max_ahead_ms INTEGER,
        max_backwards_ms INTEGER,
        max_behind_ms INTEGER,
        last_skew_json TEXT,
        PRIMARY KEY (agent, epoch),
        FOREIGN KEY (agent, epoch) REFERENCES agent_epochs (agent, epoch),
        CHECK ((caught_up_seq IS NULL) = (caught_up_at IS NULL))
      ) STRICT, WITHOUT ROWID;

      INSERT INTO clock_skew (agent, epoch, last_seq, last_at)
      SELECT e.agent, e.epoch, e.highest_seq, r.at
      FROM agent_epochs e JOIN records r ON r.agent = e.agent AND r.epoch = e.epoch AND r.seq = e.highest_seq
      WHERE e.highest_seq > 0;
    `);
  },
};
