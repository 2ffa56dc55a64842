/**
 * Rows as the tables hold them (the same column names on every backend), and their one
 * mapping to the contract's types.
 */
import type { Ed25519PublicJwk } from '../../shared/crypto.ts';
import {
  type ClockSkewState,
  type EnrollmentToken,
  type AgentEpoch,
  type AgentKey,
  type ApiToken,
  type ReportJob,
  type StoredCheckpoint,
  type StoredCollectorKey,
  type StoredReceipt,
} from './store.ts';

export interface AgentEpochRow {
  agent: string;
  epoch: number;
  public_jwk: string;
  kid: string;
  enrolled_at: string;
  revoked_at: string | null;
  highest_seq: number;
  highest_hash: string | null;
  last_seen_at: string | null;
  backlog_pending: number | null;
  backlog_oldest_at: string | null;
  backlog_reported_at: string | null;
  witnessed_size: number | null;
  witnessed_at: string | null;
  revoked_index: number | null;
  superseded_by: number | null;
  agent_version: string | null;
}

/** An agent_epochs row with the per-epoch counts of listAgentEpochs and listFleet (sqlite/fleet-query.ts). */
export interface EpochSummaryRow extends AgentEpochRow {
  ledger_entries: number;
  quarantined: number;
}

/** The records columns under the contract's names (LedgerRow): the one snake_case → camelCase mapping. */
export const LEDGER_ROW_COLUMNS =
  'ledger_index AS "ledgerIndex", id, agent, epoch, seq, kind, type, at, received_at AS "receivedAt", canonical, record_hash AS "recordHash", leaf_hash AS "leafHash"';

export interface CheckpointRow {
  size: number;
  root: Buffer;
  note: string;
  created_at: string;
}

export interface ReceiptRow {
  batch_id: string;
  agent: string;
  records_digest: string;
  receipt_json: string;
  signature: string;
  created_at: string;
}

export interface TokenRow {
  token_hash: string;
  agent: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  /** 0/1 on SQLite, a boolean on PostgreSQL. */
  for_replacement: number | boolean;
  voided_at: string | null;
}

export function toAgentEpoch(row: AgentEpochRow): AgentEpoch {
  return {
    agent: row.agent,
    epoch: row.epoch,
    publicJwk: JSON.parse(row.public_jwk) as Ed25519PublicJwk,
    kid: row.kid,
    enrolledAt: row.enrolled_at,
    revokedAt: row.revoked_at,
    revokedIndex: row.revoked_index,
    supersededBy: row.superseded_by,
  };
}

export interface AgentKeyRow {
  agent: string;
  epoch: number;
  from_seq: number;
  kid: string;
  public_jwk: string;
  added_at: string;
  reason: 'enrolled' | 'rotated';
}

export function toAgentKey(row: AgentKeyRow): AgentKey {
  return {
    agent: row.agent,
    epoch: row.epoch,
    fromSeq: row.from_seq,
    kid: row.kid,
    publicJwk: JSON.parse(row.public_jwk) as Ed25519PublicJwk,
    addedAt: row.added_at,
    reason: row.reason,
  };
}

export interface ApiTokenRow {
  id: string;
  name: string;
  role: 'admin' | 'auditor';
  token_hash: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  created_by: string;
}

export function toApiToken(row: ApiTokenRow): ApiToken {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    tokenHash: row.token_hash,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    createdBy: row.created_by,
  };
}

export interface ReportJobRow {
  id: string;
  status: ReportJob['status'];
  owner: string;
  actor: string;
  filter_json: string;
  checkpoint_size: number;
  created_at: string;
  finished_at: string | null;
  counts_json: string | null;
  manifest_sha256: string | null;
  bundle_bytes: number | null;
  problem_json: string | null;
  expired_at: string | null;
  replica: string | null;
}

export function toReportJob(row: ReportJobRow): ReportJob {
  return {
    id: row.id,
    status: row.status,
    owner: row.owner,
    actor: row.actor,
    filterJson: row.filter_json,
    checkpointSize: row.checkpoint_size,
    createdAt: row.created_at,
    finishedAt: row.finished_at,
    countsJson: row.counts_json,
    manifestSha256: row.manifest_sha256,
    bundleBytes: row.bundle_bytes,
    problemJson: row.problem_json,
    expiredAt: row.expired_at,
    replica: row.replica,
  };
}

export function toCheckpoint(row: CheckpointRow): StoredCheckpoint {
  return { size: row.size, root: row.root, note: row.note, createdAt: row.created_at };
}

export interface ClockSkewRow {
  last_seq: number;
  last_at: string | null;
  caught_up_seq: number | null;
  caught_up_at: string | null;
  implausible: number;
  ahead: number;
  backwards: number;
  behind: number;
  max_ahead_ms: number | null;
  max_backwards_ms: number | null;
  max_behind_ms: number | null;
  last_skew_json: string | null;
}

export function toClockSkew(row: ClockSkewRow): ClockSkewState {
  return {
    lastSeq: row.last_seq,
    lastAt: row.last_at,
    caughtUpSeq: row.caught_up_seq,
    caughtUpAt: row.caught_up_at,
    implausible: row.implausible,
    ahead: row.ahead,
    backwards: row.backwards,
    behind: row.behind,
    maxAheadMs: row.max_ahead_ms,
    maxBackwardsMs: row.max_backwards_ms,
    maxBehindMs: row.max_behind_ms,
    lastSkew: row.last_skew_json === null ? null : (JSON.parse(row.last_skew_json) as ClockSkewState['lastSkew']),
  };
}

export function toReceipt(row: ReceiptRow): StoredReceipt {
  return {
    batchId: row.batch_id,
    agent: row.agent,
    recordsDigest: row.records_digest,
    receiptJson: row.receipt_json,
    signature: row.signature,
    createdAt: row.created_at,
  };
}

export function toEnrollmentToken(row: TokenRow): EnrollmentToken {
  return {
    tokenHash: row.token_hash,
    agent: row.agent,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    usedAt: row.used_at,
    forReplacement: row.for_replacement === 1 || row.for_replacement === true,
    voidedAt: row.voided_at,
  };
}

export interface CollectorKeyRow {
  role: string;
  kid: string;
  public_jwk: string;
  recorded_at: string;
}

export function toCollectorKey(row: CollectorKeyRow): StoredCollectorKey {
  return { role: row.role as StoredCollectorKey['role'], kid: row.kid, publicJwk: JSON.parse(row.public_jwk) as StoredCollectorKey['publicJwk'], recordedAt: row.recorded_at };
}

export function collectorKeyRow(key: StoredCollectorKey): CollectorKeyRow {
  return { role: key.role, kid: key.kid, public_jwk: JSON.stringify(key.publicJwk), recorded_at: key.recordedAt };
}
