/**
 * What `fn` sees inside PostgresStore.write: the WriteTransaction of the contract on the one
 * pooled connection that holds the transaction (and the writer lock) the store opened.
 *
 * Round trips are what a server database costs, so the hot path is a few statements whatever
 * a batch holds: `batchState` is one SELECT; `commitBatch` and `appendLedger` are two — the
 * records (with the per-kind counters) and one statement of data-modifying CTEs for the rest
 * (Merkle nodes, checkpoint, keys, clock skew, receipt, and one UPDATE of the epoch row for the
 * chain head, the contact and the witness). Rows go as arrays through `unnest`.
 */
import type { SubtreeNode, SubtreeReader } from '../../../shared/merkle.ts';
import {
  DuplicateRecordIdError,
  StoreIntegrityError,
  type AgentContact,
  type AgentKey,
  type BatchState,
  type ChainHead,
  type ClockSkewState,
  type LedgerEntry,
  type StoredCheckpoint,
  type StoredReceipt,
  type StoredRecordRef,
  type WitnessReport,
  type WriteTransaction,
} from '../store.ts';
import {
  collectorKeyRow,
  toAgentEpoch,
  toAgentKey,
  toApiToken,
  toCheckpoint,
  toClockSkew,
  toCollectorKey,
  toEnrollmentToken,
  toReceipt,
  type AgentEpochRow,
  type AgentKeyRow,
  type ApiTokenRow,
  type CheckpointRow,
  type ClockSkewRow,
  type CollectorKeyRow,
  type ReceiptRow,
  type TokenRow,
} from '../rows.ts';
import { query, utf8Text, type Client } from './connection.ts';
import { rightEdge } from './right-edge.ts';

/** Numbers the parameters of a statement built from parts. */
class Params {
  readonly values: unknown[] = [];
  add(value: unknown, type: string): string {
    this.values.push(value);
    return `$${this.values.length}::${type}`;
  }
}

/** Everything after the records that an append or a batch writes: one statement. */
interface Tail {
  agent: string;
  epoch: number;
  subtrees?: readonly SubtreeNode[] | undefined;
  checkpoint?: StoredCheckpoint | undefined;
  chain?: { from: ChainHead; to: ChainHead } | undefined;
  rotatedKeys?: readonly AgentKey[] | undefined;
  contact?: AgentContact | undefined;
  clockSkew?: ClockSkewState | undefined;
  witness?: WitnessReport | undefined;
  receipt?: StoredReceipt | undefined;
}

/** The statement that writes `tail`, and what it answers: whether the head matched and the witness moved (no row: no such epoch). */
function tailStatement(tail: Tail): { sql: string; params: unknown[] } {
  const p = new Params();
  const ctes: string[] = [];
  if (tail.subtrees && tail.subtrees.length > 0) {
    const nodes = tail.subtrees;
    ctes.push(
      `subtrees AS (INSERT INTO merkle_subtrees (level, idx, hash) SELECT * FROM unnest(${p.add(nodes.map((n) => n.level), 'bigint[]')}, ${p.add(nodes.map((n) => n.index), 'bigint[]')}, ${p.add(nodes.map((n) => n.hash), 'bytea[]')}))`,
    );
  }
  if (tail.checkpoint) {
    const c = tail.checkpoint;
    ctes.push(`checkpoint AS (INSERT INTO checkpoints (size, root, note, created_at) VALUES (${p.add(c.size, 'bigint')}, ${p.add(c.root, 'bytea')}, ${p.add(c.note, 'text')}, ${p.add(c.createdAt, 'text')}))`);
  }
  if (tail.rotatedKeys && tail.rotatedKeys.length > 0) {
    const keys = tail.rotatedKeys;
    ctes.push(
      `keys AS (INSERT INTO agent_keys (agent, epoch, from_seq, kid, public_jwk, added_at, reason) SELECT * FROM unnest(` +
        [
          p.add(keys.map((k) => k.agent), 'text[]'),
          p.add(keys.map((k) => k.epoch), 'bigint[]'),
          p.add(keys.map((k) => k.fromSeq), 'bigint[]'),
          p.add(keys.map((k) => k.kid), 'text[]'),
          p.add(keys.map((k) => JSON.stringify(k.publicJwk)), 'text[]'),
          p.add(keys.map((k) => k.addedAt), 'text[]'),
          p.add(keys.map((k) => k.reason), 'text[]'),
        ].join(', ') +
        '))',
    );
  }
  // Added when first used: a parameter the statement does not use is an error.
  let agentParam: string | undefined;
  let epochParam: string | undefined;
  const agent = () => (agentParam ??= p.add(tail.agent, 'text'));
  const epoch = () => (epochParam ??= p.add(tail.epoch, 'bigint'));
  if (tail.clockSkew) {
    const s = tail.clockSkew;
    const values = [
      p.add(s.lastSeq, 'bigint'), p.add(s.lastAt, 'text'), p.add(s.caughtUpSeq, 'bigint'), p.add(s.caughtUpAt, 'text'),
      p.add(s.implausible, 'bigint'), p.add(s.ahead, 'bigint'), p.add(s.backwards, 'bigint'), p.add(s.behind, 'bigint'),
      p.add(s.maxAheadMs, 'bigint'), p.add(s.maxBackwardsMs, 'bigint'), p.add(s.maxBehindMs, 'bigint'),
      p.add(s.lastSkew === null ? null : JSON.stringify(s.lastSkew), 'text'),
    ];
    const columns = ['last_seq', 'last_at', 'caught_up_seq', 'caught_up_at', 'implausible', 'ahead', 'backwards', 'behind', 'max_ahead_ms', 'max_backwards_ms', 'max_behind_ms', 'last_skew_json'];
    ctes.push(
      `skew AS (INSERT INTO clock_skew (agent, epoch, ${columns.join(', ')}) VALUES (${agent()}, ${epoch()}, ${values.join(', ')})
        ON CONFLICT (agent, epoch) DO UPDATE SET ${columns.map((c) => `${c} = excluded.${c}`).join(', ')})`,
    );
  }
  if (tail.receipt) {
    const r = tail.receipt;
    ctes.push(
      `receipt AS (INSERT INTO receipts (batch_id, agent, records_digest, receipt_json, signature, created_at) VALUES (` +
        `${p.add(r.batchId, 'text')}, ${p.add(r.agent, 'text')}, ${p.add(r.recordsDigest, 'text')}, ${p.add(r.receiptJson, 'text')}, ${p.add(r.signature, 'text')}, ${p.add(r.createdAt, 'text')}))`,
    );
  }
  const sets: string[] = [];
  let headOk = 'true';
  let witnessOk = 'false';
  if (tail.chain) {
    const { from, to } = tail.chain;
    headOk = `(o.highest_seq = ${p.add(from.highestSeq, 'bigint')} AND o.highest_hash IS NOT DISTINCT FROM ${p.add(from.highestHash, 'text')})`;
    sets.push(`highest_seq = CASE WHEN ${headOk} THEN ${p.add(to.highestSeq, 'bigint')} ELSE o.highest_seq END`);
    sets.push(`highest_hash = CASE WHEN ${headOk} THEN ${p.add(to.highestHash, 'text')} ELSE o.highest_hash END`);
  }
  if (tail.contact) {
    const seen = p.add(tail.contact.lastSeenAt, 'text');
    sets.push(
      `last_seen_at = ${seen}`,
      `backlog_pending = ${p.add(tail.contact.backlog.pending, 'bigint')}`,
      `backlog_oldest_at = ${p.add(tail.contact.backlog.oldestAt, 'text')}`,
      `backlog_reported_at = ${seen}`,
      `agent_version = ${p.add(tail.contact.version, 'text')}`,
    );
  }
  if (tail.witness) {
    const size = p.add(tail.witness.size, 'bigint');
    witnessOk = `(o.witnessed_size IS NULL OR o.witnessed_size <= ${size})`;
    sets.push(`witnessed_size = CASE WHEN ${witnessOk} THEN ${size} ELSE o.witnessed_size END`);
    sets.push(`witnessed_at = CASE WHEN ${witnessOk} THEN ${p.add(tail.witness.at, 'text')} ELSE o.witnessed_at END`);
  }
  let answer = `SELECT true AS head_ok, false AS witness_ok`;
  if (sets.length > 0) {
    // `o` is the row as it was before this statement: what the head and the witness are compared with.
    ctes.push(
      `epoch_row AS (UPDATE agent_epochs e SET ${sets.join(', ')} FROM agent_epochs o
        WHERE e.agent = ${agent()} AND e.epoch = ${epoch()} AND o.agent = e.agent AND o.epoch = e.epoch
        RETURNING ${headOk} AS head_ok, ${witnessOk} AS witness_ok)`,
    );
    answer = `SELECT head_ok, witness_ok FROM epoch_row`;
  }
  return { sql: ctes.length > 0 ? `WITH ${ctes.join(',\n')}\n${answer}` : answer, params: p.values };
}

const COLUMNS_OF_RECORDS = 'ledger_index, id, agent, epoch, seq, kind, type, at, received_at, canonical, record_hash, leaf_hash';

/** The records, and the per-kind counters moved by the rows actually inserted; answers their ids. */
const APPEND_RECORDS = `WITH inserted AS (
    INSERT INTO records (${COLUMNS_OF_RECORDS})
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[])
    ON CONFLICT (id) DO NOTHING
    RETURNING id, kind
  ), counted AS (
    INSERT INTO ledger_kind_counts (kind, records) SELECT kind, count(*) FROM inserted GROUP BY kind
    ON CONFLICT (kind) DO UPDATE SET records = ledger_kind_counts.records + excluded.records
  )
  SELECT id FROM inserted`;

/** Everything `batchState` reads, as one row (one statement: one round trip, one snapshot). */
const BATCH_STATE = `SELECT
    (SELECT to_json(r) FROM receipts r WHERE r.batch_id = $3) AS receipt,
    (SELECT to_json(e) FROM agent_epochs e WHERE e.agent = $1 ORDER BY e.epoch DESC LIMIT 1) AS current_epoch,
    (SELECT json_build_object('highest_seq', h.highest_seq, 'highest_hash', h.highest_hash) FROM agent_epochs h WHERE h.agent = $1 AND h.epoch = $2) AS head,
    (SELECT count(*) FROM agent_keys k WHERE k.agent = $1 AND k.epoch = $2) AS key_count,
    (SELECT to_json(s) FROM clock_skew s WHERE s.agent = $1 AND s.epoch = $2) AS clock_skew,
    (SELECT coalesce(max(ledger_index) + 1, 0) FROM records) AS ledger_size,
    c.size, c.root, c.note, c.created_at
  FROM (SELECT 1) AS one LEFT JOIN checkpoints c ON c.size = $4::bigint`;

export function postgresWriteTransaction(client: Client, isOpen: () => boolean, where: string): WriteTransaction {
  /** Merkle nodes written in this transaction, for the subtree reader. */
  const written = new Map<string, Buffer>();
  const remember = (nodes: readonly SubtreeNode[] | undefined) => {
    for (const node of nodes ?? []) written.set(`${node.level}/${node.index}`, node.hash);
  };
  const run = async <R extends object>(sql: string, params: readonly unknown[] = []): Promise<R[]> => {
    if (!isOpen()) throw new Error('write transaction used after it ended');
    return (await query<R & object>(client, sql, params)).rows;
  };
  const one = async <R extends object>(sql: string, params: readonly unknown[] = []): Promise<R | undefined> => (await run<R>(sql, params))[0];
  const writeTail = async (tail: Tail): Promise<{ head_ok: boolean; witness_ok: boolean } | undefined> => {
    const { sql, params } = tailStatement(tail);
    const answer = await one<{ head_ok: boolean; witness_ok: boolean }>(sql, params);
    remember(tail.subtrees);
    return answer;
  };
  const chainMoved = (agent: string, epoch: number, from: ChainHead, answer: { head_ok: boolean } | undefined) => {
    if (!answer?.head_ok) throw new StoreIntegrityError(`chain head of ${agent} epoch ${epoch} is not at seq ${from.highestSeq} as expected (in ${where})`);
  };

  const tx: WriteTransaction = {
    batchState: async (agent, epoch, batchId, witnessSize): Promise<BatchState> => {
      const row = (await one<{
        receipt: ReceiptRow | null;
        current_epoch: AgentEpochRow | null;
        head: { highest_seq: number; highest_hash: string | null } | null;
        key_count: number;
        clock_skew: ClockSkewRow | null;
        ledger_size: number;
      } & { size: number | null } & Omit<CheckpointRow, 'size'>>(BATCH_STATE, [agent, epoch, batchId, witnessSize ?? null]))!;
      return {
        receipt: row.receipt ? toReceipt(row.receipt) : undefined,
        currentEpoch: row.current_epoch ? toAgentEpoch(row.current_epoch) : undefined,
        head: row.head ? { highestSeq: row.head.highest_seq, highestHash: row.head.highest_hash } : undefined,
        keyCount: row.key_count,
        clockSkew: row.clock_skew ? toClockSkew(row.clock_skew) : undefined,
        ledgerSize: row.ledger_size,
        witnessCheckpoint: row.size === null ? undefined : toCheckpoint({ ...row, size: row.size }),
      };
    },
    appendLedger: async (append) => {
      await tx.appendRecords(append.entries);
      const { agent, epoch, from, to } = append.chain;
      chainMoved(agent, epoch, from, await writeTail({ agent, epoch, subtrees: append.subtrees, checkpoint: append.checkpoint, chain: { from, to } }));
    },
    commitBatch: async (commit) => {
      const { append } = commit;
      if (append) await tx.appendRecords(append.entries);
      const answer = await writeTail({
        agent: commit.agent,
        epoch: commit.epoch,
        subtrees: append?.subtrees,
        checkpoint: append?.checkpoint,
        chain: append ? { from: append.chain.from, to: append.chain.to } : undefined,
        rotatedKeys: commit.rotatedKeys,
        contact: commit.contact,
        clockSkew: commit.clockSkew,
        witness: commit.witness,
        receipt: commit.receipt,
      });
      if (append) chainMoved(append.chain.agent, append.chain.epoch, append.chain.from, answer);
      return { witnessRecorded: answer?.witness_ok === true };
    },
    currentEpoch: async (agent) => {
      const row = await one<AgentEpochRow>(`SELECT * FROM agent_epochs WHERE agent = $1 ORDER BY epoch DESC LIMIT 1`, [agent]);
      return row && toAgentEpoch(row);
    },
    chainHead: async (agent, epoch) => {
      const row = await one<{ highest_seq: number; highest_hash: string | null }>(`SELECT highest_seq, highest_hash FROM agent_epochs WHERE agent = $1 AND epoch = $2`, [agent, epoch]);
      return row && { highestSeq: row.highest_seq, highestHash: row.highest_hash };
    },
    clockSkew: async (agent, epoch) => {
      const row = await one<ClockSkewRow>(`SELECT * FROM clock_skew WHERE agent = $1 AND epoch = $2`, [agent, epoch]);
      return row && toClockSkew(row);
    },
    putClockSkew: async (agent, epoch, state) => {
      await writeTail({ agent, epoch, clockSkew: state });
    },
    recordHashes: async (agent, epoch, fromSeq, toSeq) => {
      const rows = await run<{ seq: number; record_hash: string }>(`SELECT seq, record_hash FROM records WHERE agent = $1 AND epoch = $2 AND seq BETWEEN $3 AND $4`, [agent, epoch, fromSeq, toSeq]);
      return new Map(rows.map((row) => [row.seq, row.record_hash]));
    },
    findRecordsById: async (ids) => {
      if (ids.length === 0) return [];
      return run<StoredRecordRef>(`SELECT id, agent, epoch, seq FROM records WHERE id = ANY($1::text[])`, [ids]);
    },
    ledgerSize: async () => (await one<{ size: number }>(`SELECT coalesce(max(ledger_index) + 1, 0) AS size FROM records`))!.size,
    subtreeReader: async (size): Promise<SubtreeReader> => {
      // The nodes appendLeaves(size, …) and rootFromSubtrees(≥ size, …) read from before this
      // transaction are the right edge of `size`: fetched here, O(log n), in one statement.
      const edge = rightEdge(size);
      const stored = new Map<string, Buffer>();
      if (edge.length > 0) {
        const rows = await run<{ level: number; idx: number; hash: Buffer }>(
          `SELECT s.level, s.idx, s.hash FROM unnest($1::bigint[], $2::bigint[]) AS n(level, idx) JOIN merkle_subtrees s ON s.level = n.level AND s.idx = n.idx`,
          [edge.map((node) => node.level), edge.map((node) => node.index)],
        );
        for (const row of rows) stored.set(`${row.level}/${row.idx}`, row.hash);
      }
      return (level, index) => {
        if (!isOpen()) throw new Error('write transaction used after it ended');
        const key = `${level}/${index}`;
        const hash = written.get(key) ?? stored.get(key);
        if (!hash) throw new StoreIntegrityError(`Merkle subtree (level ${level}, index ${index}) is missing from ${where}`);
        return hash;
      };
    },
    appendRecords: async (entries: readonly LedgerEntry[]) => {
      if (entries.length === 0) return;
      const column = <T>(pick: (e: LedgerEntry) => T) => entries.map(pick);
      const rows = await run<{ id: string }>(APPEND_RECORDS, [
        column((e) => e.ledgerIndex),
        column((e) => e.id),
        column((e) => e.agent),
        column((e) => e.epoch),
        column((e) => e.seq),
        column((e) => e.kind),
        column((e) => e.type),
        column((e) => e.at),
        column((e) => e.receivedAt),
        column((e) => utf8Text(e.canonical)),
        column((e) => e.recordHash),
        column((e) => e.leafHash),
      ]);
      if (rows.length === entries.length) return;
      // UNIQUE(id) answered for every row (ON CONFLICT DO NOTHING): the first entry not inserted holds a stored id.
      const inserted = new Set(rows.map((row) => row.id));
      for (const entry of entries) {
        if (!inserted.delete(entry.id)) throw new DuplicateRecordIdError(entry.id);
      }
    },
    putSubtrees: async (nodes) => {
      if (nodes.length > 0) await writeTail({ agent: '', epoch: 0, subtrees: nodes });
    },
    putCheckpoint: async (checkpoint) => {
      await writeTail({ agent: '', epoch: 0, checkpoint });
    },
    latestCheckpoint: async () => {
      const row = await one<CheckpointRow>(`SELECT * FROM checkpoints ORDER BY size DESC LIMIT 1`);
      return row && toCheckpoint(row);
    },
    checkpointOfSize: async (size) => {
      const row = await one<CheckpointRow>(`SELECT * FROM checkpoints WHERE size = $1`, [size]);
      return row && toCheckpoint(row);
    },
    recordWitness: async (agent, epoch, report) => (await writeTail({ agent, epoch, witness: report }))?.witness_ok === true,
    advanceChainHead: async (agent, epoch, from, to) => {
      chainMoved(agent, epoch, from, await writeTail({ agent, epoch, chain: { from, to } }));
    },
    recordAgentContact: async (agent, epoch, contact) => {
      await writeTail({ agent, epoch, contact });
    },
    findReceipt: async (batchId) => {
      const row = await one<ReceiptRow>(`SELECT * FROM receipts WHERE batch_id = $1`, [batchId]);
      return row && toReceipt(row);
    },
    putReceipt: async (receipt) => {
      await writeTail({ agent: receipt.agent, epoch: 0, receipt });
    },
    quarantine: async (record) => {
      await run(
        `INSERT INTO quarantine (agent, epoch, seq, record_id, record_hash, stored_hash, canonical, batch_id, trace_id, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (agent, epoch, seq, record_hash) DO NOTHING`,
        [record.agent, record.epoch, record.seq, record.recordId, record.recordHash, record.storedHash, record.canonical, record.batchId, record.traceId, record.receivedAt],
      );
    },
    highestEpoch: async (agent) => (await one<{ epoch: number }>(`SELECT coalesce(max(epoch), 0) AS epoch FROM agent_epochs WHERE agent = $1`, [agent]))!.epoch,
    createAgentEpoch: async (epoch) => {
      await run(
        `WITH agent AS (INSERT INTO agents (agent, created_at) VALUES ($1, $5) ON CONFLICT (agent) DO NOTHING),
              epoch AS (INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at) VALUES ($1, $2, $3, $4, $5))
         INSERT INTO agent_keys (agent, epoch, from_seq, kid, public_jwk, added_at, reason) VALUES ($1, $2, 1, $4, $3, $5, 'enrolled')`,
        [epoch.agent, epoch.epoch, JSON.stringify(epoch.publicJwk), epoch.kid, epoch.enrolledAt],
      );
    },
    agentKeys: async (agent, epoch) =>
      (await run<AgentKeyRow>(`SELECT * FROM agent_keys WHERE agent = $1 AND epoch = $2 ORDER BY from_seq`, [agent, epoch])).map(toAgentKey),
    addAgentKey: async (key) => {
      await writeTail({ agent: key.agent, epoch: key.epoch, rotatedKeys: [key] });
    },
    putEnrollmentToken: async (token) => {
      await run(
        `INSERT INTO enrollment_tokens (token_hash, agent, created_at, expires_at, used_at, for_replacement) VALUES ($1, $2, $3, $4, $5, $6)`,
        [token.tokenHash, token.agent, token.createdAt, token.expiresAt, token.usedAt, token.forReplacement],
      );
    },
    findEnrollmentToken: async (tokenHash) => {
      const row = await one<TokenRow>(`SELECT * FROM enrollment_tokens WHERE token_hash = $1`, [tokenHash]);
      return row && toEnrollmentToken(row);
    },
    useEnrollmentToken: async (tokenHash, usedAt) =>
      (await run(`UPDATE enrollment_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND voided_at IS NULL RETURNING 1`, [usedAt, tokenHash])).length === 1,
    voidEnrollmentTokens: async (agent, voidedAt) =>
      (
        await run<{ token_hash: string }>(
          `UPDATE enrollment_tokens SET voided_at = $1 WHERE agent = $2 AND used_at IS NULL AND voided_at IS NULL RETURNING token_hash`,
          [voidedAt, agent],
        )
      ).map((row) => row.token_hash),
    revokeAgentEpoch: async (agent, epoch, revocation) =>
      (
        await run(`UPDATE agent_epochs SET revoked_at = $1, revoked_index = $2, superseded_by = $3 WHERE agent = $4 AND epoch = $5 AND revoked_at IS NULL RETURNING 1`, [
          revocation.revokedAt,
          revocation.revokedIndex,
          revocation.supersededBy,
          agent,
          epoch,
        ])
      ).length === 1,
    putApiToken: async (token) => {
      await run(
        `INSERT INTO api_tokens (id, name, role, token_hash, created_at, expires_at, revoked_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [token.id, token.name, token.role, token.tokenHash, token.createdAt, token.expiresAt, token.revokedAt, token.createdBy],
      );
    },
    collectorKeys: async () => (await run<CollectorKeyRow>(`SELECT role, kid, public_jwk, recorded_at FROM collector_keys ORDER BY role`)).map(toCollectorKey),
    putCollectorKeys: async (keys) => {
      if (keys.length === 0) return;
      const rows = keys.map(collectorKeyRow);
      await run(
        `INSERT INTO collector_keys (role, kid, public_jwk, recorded_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) ON CONFLICT (role) DO NOTHING`,
        [rows.map((r) => r.role), rows.map((r) => r.kid), rows.map((r) => r.public_jwk), rows.map((r) => r.recorded_at)],
      );
    },
    revokeApiTokens: async (match, revokedAt) => {
      const [column, value] = 'id' in match ? ['id', match.id] : ['name', match.name];
      return (await run<ApiTokenRow>(`UPDATE api_tokens SET revoked_at = $1 WHERE ${column} = $2 AND revoked_at IS NULL RETURNING *`, [revokedAt, value])).map(toApiToken);
    },
    putReportJob: async (job) => {
      await run(
        `INSERT INTO report_jobs (id, status, owner, actor, filter_json, checkpoint_size, created_at, finished_at, counts_json, manifest_sha256, bundle_bytes, problem_json, expired_at, replica)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
        [job.id, job.status, job.owner, job.actor, job.filterJson, job.checkpointSize, job.createdAt, job.finishedAt, job.countsJson, job.manifestSha256, job.bundleBytes, job.problemJson, job.expiredAt, job.replica],
      );
    },
    finishReportJob: async (id, outcome) => {
      const done = outcome.status === 'done' ? outcome : undefined;
      const rows = await run(
        `UPDATE report_jobs SET status = $2, finished_at = $3, counts_json = $4, manifest_sha256 = $5, bundle_bytes = $6, problem_json = $7
         WHERE id = $1 AND status = 'running' RETURNING 1`,
        [id, outcome.status, outcome.finishedAt, done?.countsJson ?? null, done?.manifestSha256 ?? null, done?.bundleBytes ?? null, outcome.status === 'failed' ? outcome.problemJson : null],
      );
      return rows.length === 1;
    },
    failRunningReportJobs: async (outcome, replica) =>
      (
        await run<{ id: string }>(
          `UPDATE report_jobs SET status = 'failed', finished_at = $1, problem_json = $2 WHERE status = 'running' AND (replica = $3 OR replica IS NULL) RETURNING id`,
          [outcome.finishedAt, outcome.problemJson, replica],
        )
      ).map((row) => row.id),
    expireReportJobs: async (finishedBefore, expiredAt) =>
      (await run<{ id: string }>(`UPDATE report_jobs SET status = 'expired', expired_at = $1 WHERE status = 'done' AND finished_at < $2 RETURNING id`, [expiredAt, finishedBefore])).map(
        (row) => row.id,
      ),
    forgetFailedReportJobs: async (finishedBefore) => (await run(`DELETE FROM report_jobs WHERE status = 'failed' AND finished_at < $1 RETURNING 1`, [finishedBefore])).length,
  };
  return tx;
}
