/** 0003 — agent key history (PostgreSQL; see store/sqlite/migrations/0003-agent-keys.ts). */
import type { Migration } from '../../migrate.ts';

export const migration: Migration = {
  version: 3,
  name: '0003-agent-keys',
  async up(db) {
    await db.exec(`
      CREATE TABLE agent_keys (
        agent TEXT COLLATE "C" NOT NULL,
        epoch BIGINT NOT NULL,
        from_seq BIGINT NOT NULL CHECK (from_seq >= 1),
        kid TEXT COLLATE "C" NOT NULL,
        public_jwk TEXT COLLATE "C" NOT NULL,
        added_at TEXT COLLATE "C" NOT NULL,
        reason TEXT COLLATE "C" NOT NULL CHECK (reason IN ('enrolled', 'rotated')),
        PRIMARY KEY (agent, epoch, from_seq),
        UNIQUE (agent, epoch, kid),
        FOREIGN KEY (agent, epoch) REFERENCES agent_epochs (agent, epoch)
      );

      INSERT INTO agent_keys (agent, epoch, from_seq, kid, public_jwk, added_at, reason)
        SELECT agent, epoch, 1, kid, public_jwk, enrolled_at, 'enrolled' FROM agent_epochs;
    `);
  },
};
