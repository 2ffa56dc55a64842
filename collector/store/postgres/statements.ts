/** Statements the PostgreSQL store's reads share (committed data, outside write transactions). */
import type { SubtreeRef } from '../store.ts';

/** Hashes of `nodes` in their order, NULL where absent: one statement, so one snapshot. */
export function readSubtreesSql(nodes: readonly SubtreeRef[]): { sql: string; params: unknown[] } {
  return {
    sql: `SELECT s.hash FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS n(level, idx, position)
          LEFT JOIN merkle_subtrees s ON s.level = n.level AND s.idx = n.idx ORDER BY n.position`,
    params: [nodes.map((node) => node.level), nodes.map((node) => node.index)],
  };
}

/** Seq ranges with no record between stored seqs of one chain (only run for a chain whose count differs from its head). */
export const INNER_GAPS = `SELECT prev + 1 AS "from", seq - 1 AS "to"
  FROM (SELECT seq, lag(seq, 1, 0::bigint) OVER (ORDER BY seq) AS prev FROM records WHERE agent = $1 AND epoch = $2 AND seq <= $3) chain
  WHERE seq > prev + 1 ORDER BY seq LIMIT $4`;

export const HIGHEST_STORED_SEQ = `SELECT coalesce(max(seq), 0) AS seq FROM records WHERE agent = $1 AND epoch = $2 AND seq <= $3`;

/** The ledger's counts and newest checkpoint, from one statement (one committed state). */
export const LEDGER_COUNTS = `SELECT
    (SELECT coalesce(max(ledger_index) + 1, 0) FROM records) AS ledger_size,
    (SELECT coalesce(json_object_agg(kind, records), '{}') FROM ledger_kind_counts) AS by_kind,
    (SELECT count(*) FROM agents) AS agents,
    (SELECT count(*) FROM quarantine) AS quarantined,
    c.size, c.root, c.note, c.created_at
  FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT * FROM checkpoints ORDER BY size DESC LIMIT 1) c ON true`;

/**
 * Remembers a JWT id, or answers that it is remembered (no row). A remembered id that expired
 * is taken over by the same statement; other expired ids are forgotten on the way (ids locked
 * by another replica's statement are skipped, not waited for).
 */
export const REMEMBER_JTI = `WITH forgotten AS (
    DELETE FROM jti_replay WHERE jti IN (SELECT jti FROM jti_replay WHERE expires_at < $4 AND jti <> $1 LIMIT 1000 FOR UPDATE SKIP LOCKED)
  )
  INSERT INTO jti_replay (jti, agent, expires_at) VALUES ($1, $2, $3)
  ON CONFLICT (jti) DO UPDATE SET agent = excluded.agent, expires_at = excluded.expires_at WHERE jti_replay.expires_at < $4
  RETURNING 1`;
