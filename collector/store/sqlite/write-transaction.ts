/**
 * What `fn` sees inside SqliteStore.write: the WriteTransaction of the contract over the writer
 * connection, inside the transaction the store opened (BEGIN IMMEDIATE) and will end.
 */
import type { SubtreeNode, SubtreeReader } from '../../../shared/merkle.ts';
import { RECORD_KINDS, type RecordKind } from '../../../shared/record.ts';
import {
  DuplicateRecordIdError,
  StoreIntegrityError,
  type AgentContact,
  type ClockSkewState,
  type AgentKey,
  type ApiToken,
  type ChainHead,
  type EnrollmentToken,
  type LedgerEntry,
  type NewAgentEpoch,
  type QuarantinedRecord,
  type ReportJob,
  type ReportJobOutcome,
  type StoredCheckpoint,
  type StoredReceipt,
  type StoredRecordRef,
  type WitnessReport,
  type WriteTransaction,
} from '../store.ts';
import {
  collectorKeyRow,
  toCollectorKey,
  type CollectorKeyRow,
  toAgentEpoch,
  toAgentKey,
  toApiToken,
  toCheckpoint,
  toClockSkew,
  toReceipt,
  type AgentEpochRow,
  type CheckpointRow,
  type ReceiptRow,
  type TokenRow,
  type AgentKeyRow,
  type ApiTokenRow,
  type ClockSkewRow,
} from '../rows.ts';
import { writeSubtrees } from './subtree-writes.ts';
import type { Statements } from './statements.ts';

export function sqliteWriteTransaction(sql: Statements, isOpen: () => boolean, path: string): WriteTransaction {
  const guard = () => {
    if (!isOpen()) throw new Error('write transaction used after it ended');
  };
  // SQLite answers in-process, so the coarse operations are the fine ones in sequence.
  const tx: WriteTransaction = {
    batchState: async (agent, epoch, batchId, witnessSize) => ({
      receipt: await tx.findReceipt(batchId),
      currentEpoch: await tx.currentEpoch(agent),
      head: await tx.chainHead(agent, epoch),
      keyCount: (sql.agentKeyCount.get(agent, epoch) as number | undefined) ?? 0,
      clockSkew: await tx.clockSkew(agent, epoch),
      ledgerSize: await tx.ledgerSize(),
      witnessCheckpoint: witnessSize === undefined ? undefined : await tx.checkpointOfSize(witnessSize),
    }),
    appendLedger: async (append) => {
      await tx.appendRecords(append.entries);
      await tx.putSubtrees(append.subtrees);
      await tx.putCheckpoint(append.checkpoint);
      await tx.advanceChainHead(append.chain.agent, append.chain.epoch, append.chain.from, append.chain.to);
    },
    commitBatch: async (commit) => {
      if (commit.append) await tx.appendLedger(commit.append);
      for (const key of commit.rotatedKeys) await tx.addAgentKey(key);
      await tx.recordAgentContact(commit.agent, commit.epoch, commit.contact);
      if (commit.clockSkew) await tx.putClockSkew(commit.agent, commit.epoch, commit.clockSkew);
      const witnessRecorded = commit.witness ? await tx.recordWitness(commit.agent, commit.epoch, commit.witness) : false;
      await tx.putReceipt(commit.receipt);
      return { witnessRecorded };
    },
    currentEpoch: async (agent) => {
      guard();
      const row = sql.currentEpoch.w.get(agent) as AgentEpochRow | undefined;
      return row && toAgentEpoch(row);
    },
    chainHead: async (agent, epoch) => {
      guard();
      const row = sql.chainHead.get(agent, epoch) as { highest_seq: number; highest_hash: string | null } | undefined;
      return row && { highestSeq: row.highest_seq, highestHash: row.highest_hash };
    },
    clockSkew: async (agent, epoch) => {
      guard();
      const row = sql.clockSkew.get(agent, epoch) as ClockSkewRow | undefined;
      return row && toClockSkew(row);
    },
    putClockSkew: async (agent, epoch, state: ClockSkewState) => {
      guard();
      const { lastSkew, ...counts } = state;
      sql.putClockSkew.run({ agent, epoch, ...counts, lastSkewJson: lastSkew === null ? null : JSON.stringify(lastSkew) });
    },
    recordHashes: async (agent, epoch, fromSeq, toSeq) => {
      guard();
      const rows = sql.recordHashes.all(agent, epoch, fromSeq, toSeq) as { seq: number; record_hash: string }[];
      return new Map(rows.map((row) => [row.seq, row.record_hash]));
    },
    findRecordsById: async (ids) => {
      guard();
      if (ids.length === 0) return [];
      return sql.findRecordsById.all(JSON.stringify(ids)) as StoredRecordRef[];
    },
    ledgerSize: async () => {
      guard();
      return (sql.ledgerSize.get() as { size: number }).size;
    },
    subtreeReader: async (): Promise<SubtreeReader> => {
      guard();
      return (level, index) => {
        guard();
        const hash = sql.readSubtree.get(level, index) as Buffer | undefined;
        if (!hash) throw new StoreIntegrityError(`Merkle subtree (level ${level}, index ${index}) is missing from ${path}`);
        return hash;
      };
    },
    appendRecords: async (entries: readonly LedgerEntry[]) => {
      guard();
      // Positional parameters: binding by name costs a property lookup per column per row.
      const perKind: { [K in RecordKind]: number } = { audit: 0, telemetry: 0, agent: 0 };
      // UNIQUE(id) answers "is this id new?" for every row it inserts anyway (asking first cost a
      // lookup per record); the answer is the statement's outcome, so the transaction stays usable.
      for (const e of entries) {
        const inserted = sql.insertRecord.run(e.ledgerIndex, e.id, e.agent, e.epoch, e.seq, e.kind, e.type, e.at, e.receivedAt, e.canonical, e.recordHash, e.leafHash);
        if (inserted.changes !== 1) throw new DuplicateRecordIdError(e.id);
        perKind[e.kind]++;
      }
      for (const kind of RECORD_KINDS) if (perKind[kind] > 0) sql.addKindCount.run(kind, perKind[kind]);
    },
    putSubtrees: async (nodes: readonly SubtreeNode[]) => {
      guard();
      writeSubtrees(nodes, sql.insertSubtree, sql.insertSubtreeRun);
    },
    putCheckpoint: async (checkpoint: StoredCheckpoint) => {
      guard();
      sql.insertCheckpoint.run(checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.createdAt);
    },
    latestCheckpoint: async () => {
      guard();
      const row = sql.latestCheckpoint.w.get() as CheckpointRow | undefined;
      return row && toCheckpoint(row);
    },
    checkpointOfSize: async (size) => {
      guard();
      const row = sql.checkpointOfSize.w.get(size) as CheckpointRow | undefined;
      return row && toCheckpoint(row);
    },
    recordWitness: async (agent, epoch, report: WitnessReport) => {
      guard();
      return sql.recordWitness.run(report.size, report.at, agent, epoch, report.size).changes === 1;
    },
    advanceChainHead: async (agent, epoch, from: ChainHead, to: ChainHead) => {
      guard();
      const result = sql.advanceChainHead.run(to.highestSeq, to.highestHash, agent, epoch, from.highestSeq, from.highestHash);
      if (result.changes !== 1) {
        throw new StoreIntegrityError(`chain head of ${agent} epoch ${epoch} is not at seq ${from.highestSeq} as expected`);
      }
    },
    recordAgentContact: async (agent, epoch, contact: AgentContact) => {
      guard();
      sql.recordAgentContact.run(
        contact.lastSeenAt,
        contact.backlog.pending,
        contact.backlog.oldestAt,
        contact.lastSeenAt,
        contact.version,
        agent,
        epoch,
      );
    },
    findReceipt: async (batchId) => {
      guard();
      const row = sql.findReceipt.w.get(batchId) as ReceiptRow | undefined;
      return row && toReceipt(row);
    },
    putReceipt: async (receipt: StoredReceipt) => {
      guard();
      sql.insertReceipt.run(
        receipt.batchId,
        receipt.agent,
        receipt.recordsDigest,
        receipt.receiptJson,
        receipt.signature,
        receipt.createdAt,
      );
    },
    quarantine: async (record: QuarantinedRecord) => {
      guard();
      sql.insertQuarantine.run(record);
    },
    highestEpoch: async (agent) => {
      guard();
      return sql.highestEpoch.get(agent) as number;
    },
    createAgentEpoch: async (epoch: NewAgentEpoch) => {
      guard();
      sql.insertAgent.run(epoch.agent, epoch.enrolledAt);
      sql.insertAgentEpoch.run(epoch.agent, epoch.epoch, JSON.stringify(epoch.publicJwk), epoch.kid, epoch.enrolledAt);
      sql.insertAgentKey.run(epoch.agent, epoch.epoch, 1, epoch.kid, JSON.stringify(epoch.publicJwk), epoch.enrolledAt, 'enrolled');
    },
    agentKeys: async (agent, epoch) => {
      guard();
      return (sql.agentKeys.w.all(agent, epoch) as AgentKeyRow[]).map(toAgentKey);
    },
    addAgentKey: async (key: AgentKey) => {
      guard();
      sql.insertAgentKey.run(key.agent, key.epoch, key.fromSeq, key.kid, JSON.stringify(key.publicJwk), key.addedAt, key.reason);
    },
    putEnrollmentToken: async (token: EnrollmentToken) => {
      guard();
      sql.insertToken.run(token.tokenHash, token.agent, token.createdAt, token.expiresAt, token.usedAt, token.forReplacement ? 1 : 0);
    },
    findEnrollmentToken: async (tokenHash) => {
      guard();
      const row = sql.findToken.get(tokenHash) as TokenRow | undefined;
      return (
        row && {
          tokenHash: row.token_hash,
          agent: row.agent,
          createdAt: row.created_at,
          expiresAt: row.expires_at,
          usedAt: row.used_at,
          forReplacement: row.for_replacement === 1,
          voidedAt: row.voided_at,
        }
      );
    },
    useEnrollmentToken: async (tokenHash, usedAt) => {
      guard();
      return sql.useToken.run(usedAt, tokenHash).changes === 1;
    },
    voidEnrollmentTokens: async (agent, voidedAt) => {
      guard();
      return sql.voidTokens.all(voidedAt, agent) as string[];
    },
    revokeAgentEpoch: async (agent, epoch, revocation) => {
      guard();
      return sql.revokeAgentEpoch.run(revocation.revokedAt, revocation.revokedIndex, revocation.supersededBy, agent, epoch).changes === 1;
    },
    putApiToken: async (token: ApiToken) => {
      guard();
      sql.insertApiToken.run(token);
    },
    collectorKeys: async () => {
      guard();
      return (sql.collectorKeys.w.all() as CollectorKeyRow[]).map(toCollectorKey);
    },
    putCollectorKeys: async (keys) => {
      guard();
      for (const key of keys) sql.insertCollectorKey.run(collectorKeyRow(key));
    },
    revokeApiTokens: async (match, revokedAt) => {
      guard();
      const rows = ('id' in match ? sql.revokeApiTokensById.all(revokedAt, match.id) : sql.revokeApiTokensByName.all(revokedAt, match.name)) as ApiTokenRow[];
      return rows.map(toApiToken);
    },
    putReportJob: async (job: ReportJob) => {
      guard();
      sql.insertReportJob.run(job);
    },
    finishReportJob: async (id, outcome: ReportJobOutcome) => {
      guard();
      const done = outcome.status === 'done' ? outcome : undefined;
      return (
        sql.finishReportJob.run({
          id,
          status: outcome.status,
          finishedAt: outcome.finishedAt,
          countsJson: done?.countsJson ?? null,
          manifestSha256: done?.manifestSha256 ?? null,
          bundleBytes: done?.bundleBytes ?? null,
          problemJson: outcome.status === 'failed' ? outcome.problemJson : null,
        }).changes === 1
      );
    },
    failRunningReportJobs: async (outcome, replica) => {
      guard();
      return sql.failRunningReportJobs.all(outcome.finishedAt, outcome.problemJson, replica) as string[];
    },
    expireReportJobs: async (finishedBefore, expiredAt) => {
      guard();
      return sql.expireReportJobs.all(expiredAt, finishedBefore) as string[];
    },
    forgetFailedReportJobs: async (finishedBefore) => {
      guard();
      return sql.forgetFailedReportJobs.run(finishedBefore).changes;
    },
  };
  return tx;
}
