/** Every statement of the store, prepared once per connection pair when the schema is current. */
import type { Db } from './connection.ts';
import { EPOCH_SUMMARY_COLUMNS } from './fleet-query.ts';
import { LEDGER_ROW_COLUMNS } from '../rows.ts';
import { INSERT_SUBTREE_RUN } from './subtree-writes.ts';

/** Every statement, prepared once the schema is current. */
export function prepareStatements(writer: Db, reader: Db) {
  const both = (sql: string) => ({ w: writer.prepare(sql), r: reader.prepare(sql) });
  return {
    currentEpoch: both(`SELECT * FROM agent_epochs WHERE agent = ? ORDER BY epoch DESC LIMIT 1`),
    latestCheckpoint: both(`SELECT * FROM checkpoints ORDER BY size DESC LIMIT 1`),
    checkpointOfSize: both(`SELECT * FROM checkpoints WHERE size = ?`),
    findReceipt: both(`SELECT * FROM receipts WHERE batch_id = ?`),
    chainHead: writer.prepare(`SELECT highest_seq, highest_hash FROM agent_epochs WHERE agent = ? AND epoch = ?`),
    clockSkew: writer.prepare(`SELECT * FROM clock_skew WHERE agent = ? AND epoch = ?`),
    putClockSkew: writer.prepare(
      `INSERT INTO clock_skew (agent, epoch, last_seq, last_at, caught_up_seq, caught_up_at, implausible, ahead, backwards, behind,
         max_ahead_ms, max_backwards_ms, max_behind_ms, last_skew_json)
       VALUES (@agent, @epoch, @lastSeq, @lastAt, @caughtUpSeq, @caughtUpAt, @implausible, @ahead, @backwards, @behind,
         @maxAheadMs, @maxBackwardsMs, @maxBehindMs, @lastSkewJson)
       ON CONFLICT (agent, epoch) DO UPDATE SET last_seq = excluded.last_seq, last_at = excluded.last_at,
         caught_up_seq = excluded.caught_up_seq, caught_up_at = excluded.caught_up_at, implausible = excluded.implausible,
         ahead = excluded.ahead, backwards = excluded.backwards, behind = excluded.behind, max_ahead_ms = excluded.max_ahead_ms,
         max_backwards_ms = excluded.max_backwards_ms, max_behind_ms = excluded.max_behind_ms, last_skew_json = excluded.last_skew_json`,
    ),
    listClockSkew: reader.prepare(`SELECT * FROM clock_skew`),
    clockSkewCommitted: reader.prepare(`SELECT * FROM clock_skew WHERE agent = ? AND epoch = ?`),
    recordHashes: writer.prepare(
      `SELECT seq, record_hash FROM records WHERE agent = ? AND epoch = ? AND seq BETWEEN ? AND ?`,
    ),
    findRecordsById: writer.prepare(
      `SELECT id, agent, epoch, seq FROM records WHERE id IN (SELECT value FROM json_each(?))`,
    ),
    ledgerSize: writer.prepare(`SELECT coalesce(max(ledger_index) + 1, 0) AS size FROM records`),
    readSubtree: writer.prepare(`SELECT hash FROM merkle_subtrees WHERE level = ? AND idx = ?`).pluck(),
    insertRecord: writer.prepare(
      // CAST: canonical may come as UTF-8 bytes (a BLOB to SQLite), and the column is TEXT.
      `INSERT INTO records (ledger_index, id, agent, epoch, seq, kind, type, at, received_at, canonical, record_hash, leaf_hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS TEXT), ?, ?) ON CONFLICT (id) DO NOTHING`,
    ),
    addKindCount: writer.prepare(
      `INSERT INTO ledger_kind_counts (kind, records) VALUES (?, ?) ON CONFLICT (kind) DO UPDATE SET records = records + excluded.records`,
    ),
    insertSubtree: writer.prepare(`INSERT INTO merkle_subtrees (level, idx, hash) VALUES (?, ?, ?)`),
    insertSubtreeRun: writer.prepare(INSERT_SUBTREE_RUN),
    insertCheckpoint: writer.prepare(`INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)`),
    advanceChainHead: writer.prepare(
      `UPDATE agent_epochs SET highest_seq = ?, highest_hash = ?
       WHERE agent = ? AND epoch = ? AND highest_seq = ? AND highest_hash IS ?`,
    ),
    recordWitness: writer.prepare(
      `UPDATE agent_epochs SET witnessed_size = ?, witnessed_at = ?
       WHERE agent = ? AND epoch = ? AND (witnessed_size IS NULL OR witnessed_size <= ?)`,
    ),
    recordAgentContact: writer.prepare(
      `UPDATE agent_epochs SET last_seen_at = ?, backlog_pending = ?, backlog_oldest_at = ?, backlog_reported_at = ?, agent_version = ?
       WHERE agent = ? AND epoch = ?`,
    ),
    insertReceipt: writer.prepare(
      `INSERT INTO receipts (batch_id, agent, records_digest, receipt_json, signature, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    insertQuarantine: writer.prepare(
      `INSERT INTO quarantine (agent, epoch, seq, record_id, record_hash, stored_hash, canonical, batch_id, trace_id, received_at)
       VALUES (@agent, @epoch, @seq, @recordId, @recordHash, @storedHash, @canonical, @batchId, @traceId, @receivedAt)
       ON CONFLICT (agent, epoch, seq, record_hash) DO NOTHING`,
    ),
    highestEpoch: writer.prepare(`SELECT coalesce(max(epoch), 0) FROM agent_epochs WHERE agent = ?`).pluck(),
    insertAgent: writer.prepare(`INSERT INTO agents (agent, created_at) VALUES (?, ?) ON CONFLICT (agent) DO NOTHING`),
    insertAgentEpoch: writer.prepare(
      `INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at) VALUES (?, ?, ?, ?, ?)`,
    ),
    insertAgentKey: writer.prepare(
      `INSERT INTO agent_keys (agent, epoch, from_seq, kid, public_jwk, added_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    agentKeys: both(`SELECT * FROM agent_keys WHERE agent = ? AND epoch = ? ORDER BY from_seq`),
    agentKeyCount: writer.prepare(`SELECT count(*) FROM agent_keys WHERE agent = ? AND epoch = ?`).pluck(),
    listAgentKeys: reader.prepare(`SELECT * FROM agent_keys ORDER BY agent, epoch, from_seq`),
    insertToken: writer.prepare(
      `INSERT INTO enrollment_tokens (token_hash, agent, created_at, expires_at, used_at, for_replacement) VALUES (?, ?, ?, ?, ?, ?)`,
    ),
    findToken: writer.prepare(`SELECT * FROM enrollment_tokens WHERE token_hash = ?`),
    useToken: writer.prepare(`UPDATE enrollment_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND voided_at IS NULL`),
    voidTokens: writer
      .prepare(`UPDATE enrollment_tokens SET voided_at = ? WHERE agent = ? AND used_at IS NULL AND voided_at IS NULL RETURNING token_hash`)
      .pluck(),
    revokeAgentEpoch: writer.prepare(
      `UPDATE agent_epochs SET revoked_at = ?, revoked_index = ?, superseded_by = ? WHERE agent = ? AND epoch = ? AND revoked_at IS NULL`,
    ),
    insertApiToken: writer.prepare(
      `INSERT INTO api_tokens (id, name, role, token_hash, created_at, expires_at, revoked_at, created_by)
       VALUES (@id, @name, @role, @tokenHash, @createdAt, @expiresAt, @revokedAt, @createdBy)`,
    ),
    revokeApiTokensById: writer.prepare(`UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING *`),
    revokeApiTokensByName: writer.prepare(`UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL RETURNING *`),
    findApiToken: reader.prepare(`SELECT * FROM api_tokens WHERE token_hash = ?`),
    collectorKeys: both(`SELECT role, kid, public_jwk, recorded_at FROM collector_keys ORDER BY role`),
    insertCollectorKey: writer.prepare(
      `INSERT INTO collector_keys (role, kid, public_jwk, recorded_at) VALUES (@role, @kid, @public_jwk, @recorded_at) ON CONFLICT (role) DO NOTHING`,
    ),
    listApiTokens: reader.prepare(`SELECT * FROM api_tokens ORDER BY created_at, id`),
    insertReportJob: writer.prepare(
      `INSERT INTO report_jobs (id, status, owner, actor, filter_json, checkpoint_size, created_at, finished_at, counts_json, manifest_sha256, bundle_bytes, problem_json, expired_at, replica)
       VALUES (@id, @status, @owner, @actor, @filterJson, @checkpointSize, @createdAt, @finishedAt, @countsJson, @manifestSha256, @bundleBytes, @problemJson, @expiredAt, @replica)`,
    ),
    finishReportJob: writer.prepare(
      `UPDATE report_jobs SET status = @status, finished_at = @finishedAt, counts_json = @countsJson, manifest_sha256 = @manifestSha256,
         bundle_bytes = @bundleBytes, problem_json = @problemJson
       WHERE id = @id AND status = 'running'`,
    ),
    failRunningReportJobs: writer.prepare(
      `UPDATE report_jobs SET status = 'failed', finished_at = ?, problem_json = ? WHERE status = 'running' AND (replica = ? OR replica IS NULL) RETURNING id`,
    ).pluck(),
    expireReportJobs: writer.prepare(
      `UPDATE report_jobs SET status = 'expired', expired_at = ? WHERE status = 'done' AND finished_at < ? RETURNING id`,
    ).pluck(),
    forgetFailedReportJobs: writer.prepare(`DELETE FROM report_jobs WHERE status = 'failed' AND finished_at < ?`),
    findReportJob: reader.prepare(`SELECT * FROM report_jobs WHERE id = ?`),
    forgetExpiredJtis: writer.prepare(`DELETE FROM jti_replay WHERE expires_at < ?`),
    rememberJti: writer.prepare(
      // A row that is there already counts as one change only for the same agent and request key (NULL matches nothing).
      `INSERT INTO jti_replay (jti, agent, expires_at, request_key) VALUES (?, ?, ?, ?)
       ON CONFLICT (jti) DO UPDATE SET expires_at = jti_replay.expires_at
       WHERE jti_replay.agent = excluded.agent AND jti_replay.request_key = excluded.request_key`,
    ),
    listAgentEpochs: reader.prepare(`SELECT ${EPOCH_SUMMARY_COLUMNS} FROM agent_epochs e ORDER BY e.agent, e.epoch`),
    // Only run for a chain whose entry count differs from its head seq (normally never).
    innerGaps: reader.prepare(
      `SELECT prev + 1 AS "from", seq - 1 AS "to"
       FROM (SELECT seq, lag(seq, 1, 0) OVER (ORDER BY seq) AS prev FROM records WHERE agent = ? AND epoch = ? AND seq <= ?)
       WHERE seq > prev + 1 ORDER BY seq LIMIT ?`,
    ),
    highestStoredSeq: reader.prepare(`SELECT coalesce(max(seq), 0) FROM records WHERE agent = ? AND epoch = ? AND seq <= ?`).pluck(),
    readSubtreeCommitted: reader.prepare(`SELECT hash FROM merkle_subtrees WHERE level = ? AND idx = ?`).pluck(),
    findLedgerRecord: reader.prepare(
      `SELECT ${LEDGER_ROW_COLUMNS} FROM records WHERE id = ?`,
    ),
    ledgerSizeCommitted: reader.prepare(`SELECT coalesce(max(ledger_index) + 1, 0) FROM records`).pluck(),
    countByKind: reader.prepare(`SELECT kind, records AS n FROM ledger_kind_counts`),
    countAgents: reader.prepare(`SELECT count(*) FROM agents`).pluck(),
    countQuarantined: reader.prepare(`SELECT count(*) FROM quarantine`).pluck(),
    ping: reader.prepare(`SELECT count(*) FROM sqlite_master`).pluck(),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;
