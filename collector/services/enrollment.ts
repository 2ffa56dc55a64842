/**
 * Enrollment: an admin issues a one-time token for an agent id; the agent presents it with its
 * public key and gets an epoch, the collector's origin, log key and receipt key to pin.
 *
 * Invariants
 * - Only sha256(token) is stored; the token itself exists only on the admin's stdout and in
 *   the agent's hands. It is never logged and never put in a record.
 * - A token works once, until it expires, and only for the agent id it was issued for.
 * - An agent id whose current epoch is active is never enrolled over silently: an ordinary
 *   token is refused (409 `enroll.agent_active`, at issue and at use) and nothing changes. Only
 *   a replacement token (`--replace`, for an agent whose disk and key are lost) enrolls it, and
 *   then the old epoch is revoked (`agent.revoked`, reason `replaced`, `supersededBy`) in the
 *   same transaction that creates the new one (`agent.enrolled`, `replaces`).
 * - Enrolling an agent id again starts a new epoch (max + 1) with the new key; earlier epochs
 *   stay in the ledger and in `agent_epochs`, and only the newest one may send batches.
 * - Each issue, enrollment, revocation and voiding is a record of the COLLECTOR chain,
 *   committed in the same transaction as the row it explains; the records name the token by
 *   its public id (enrollmentTokenId: a prefix of its stored hash, never the token), so
 *   `ledger verify` can replay the chain against the tables (services/authority-replay.ts).
 * - Revocation (`revokeAgent`) revokes the agent's CURRENT epoch, stores the ledger index of its
 *   `agent.revoked` record, and voids every unused token of the id (`enrollment_token.voided`):
 *   a token issued before the revocation no longer enrolls. From that commit on, the agent's
 *   JWTs get 403 `agent.revoked` (services/agent-auth.ts): no batch, no read. Its records
 *   already in the ledger stay there, valid and verifiable; an auditor sees the revocation's
 *   ledger index, and a record of that epoch after it is a finding.
 */
import { randomBytes } from 'node:crypto';
import type { Revocation } from '../../shared/api-schemas.ts';
import { fromBase64Url, jwkThumbprint, publicJwkOf, sha256, type SigningKey } from '../../shared/crypto.ts';
import { ProblemError } from '../../shared/problem.ts';
import type { EnrollRequest, EnrollResponse } from '../../shared/protocol.ts';
import { agentIdSchema } from '../../shared/protocol.ts';
import { COLLECTOR_AGENT_ID } from '../../shared/record.ts';
import { verifierKeyString } from '../../shared/signed-note.ts';
import type { ClockSkewState, CollectorStore, EpochStatus, SeqRange } from '../store/store.ts';
import { DEFAULT_CLOCK_SKEW_TOLERANCE_MS } from './clock-skew.ts';
import type { Actor } from './access.ts';
import type { CollectorChain } from './collector-chain.ts';

export const DEFAULT_ENROLLMENT_TOKEN_TTL_SECONDS = 24 * 60 * 60;
export const MAX_ENROLLMENT_TOKEN_TTL_SECONDS = 30 * 24 * 60 * 60;
export const ENROLLMENT_TOKEN_BYTES = 32;

export class EnrollmentInputError extends Error {
  override name = 'EnrollmentInputError';
}

/** Parses a duration such as `90s`, `30m`, `24h` or `7d` into seconds. */
export function parseDurationSeconds(text: string): number {
  const match = /^(\d{1,6})([smhd])$/.exec(text.trim());
  if (!match) throw new EnrollmentInputError(`invalid duration "${text}"; use a number with s, m, h or d, e.g. 24h`);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[match[2] as 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

/** One (agent, epoch) as `agents list` shows it. */
export interface AgentListing {
  agent: string;
  epoch: number;
  kid: string;
  enrolledAt: string;
  revokedAt: string | null;
  /** active, revoked (agents revoke) or superseded (replaced by a --replace enrollment). */
  status: EpochStatus;
  /** Ledger index of the epoch's `agent.revoked` record. */
  revokedIndex: number | null;
  /** The epoch that replaced this one. */
  supersededBy: number | null;
  highestSeq: number;
  ledgerEntries: number;
  lastSeenAt: string | null;
  /** What the agent last reported in a batch: records waiting in its outbox. */
  backlog: { pending: number | null; oldestAt: string | null; reportedAt: string | null };
  /** Seq ranges below highestSeq with no record in the ledger. There should be none. */
  gaps: SeqRange[];
  /** Equivocating records of this (agent, epoch), held in quarantine, never in the ledger. */
  quarantined: number;
  /** The newest checkpoint size this agent confirmed as a witness, and when (null: never). */
  witnessedSize: number | null;
  witnessedAt: string | null;
  /** The epoch's key history (ADR 0006): the enrolled key from seq 1, then each rotated key. */
  keys: AgentKeyListing[];
  /** Records whose `at` is implausible (services/clock-skew.ts); zeros before the first batch. */
  clockSkew: ClockSkewReport;
  /** The software version the agent's newest batch reported (null: none). */
  version: string | null;
}

/** The clock-skew report of one (agent, epoch), as `agents list --json` shows it. */
export interface ClockSkewReport {
  toleranceMs: number;
  implausible: number;
  byRule: { ahead: number; backwards: number; behind: number };
  /** Largest `at` ahead of the receive time, backwards jump between consecutive seqs, and lag behind a caught-up batch (ms). */
  maxAheadMs: number | null;
  maxBackwardsMs: number | null;
  maxBehindMs: number | null;
  /** The newest implausible record. */
  lastSeen: ClockSkewState['lastSkew'];
}

/** One key of an epoch's history, as `agents list` shows it. */
export interface AgentKeyListing {
  kid: string;
  fromSeq: number;
  addedAt: string;
  reason: 'enrolled' | 'rotated';
}

/** Throws EnrollmentInputError unless `agent` is an id an admin may enroll. */
export function assertEnrollableAgentId(agent: string): void {
  if (!agentIdSchema.safeParse(agent).success) {
    throw new EnrollmentInputError(`invalid agent id "${agent}": use 3-64 of A-Z, 0-9 and -`);
  }
  if (agent === COLLECTOR_AGENT_ID) throw new EnrollmentInputError(`${COLLECTOR_AGENT_ID} is the collector's own chain, not an agent`);
}

function tokenHash(token: string): string {
  return sha256(token).toString('hex');
}

/**
 * The public id of an enrollment token in COLLECTOR chain records: the first 16 hex digits of
 * the sha256 the table stores. It names the row without revealing anything that enrolls.
 */
export function enrollmentTokenId(hash: string): string {
  return hash.slice(0, 16);
}

/** What revokeAgent did (its schema: shared/api-schemas.ts). */
export type RevocationResult = Revocation;

/** The state of one epoch, as `agents list` shows it. */
export type { EpochStatus };

export function epochStatus(epoch: { revokedAt: string | null; supersededBy: number | null }): EpochStatus {
  if (epoch.revokedAt === null) return 'active';
  return epoch.supersededBy === null ? 'revoked' : 'superseded';
}

function agentActiveProblem(agent: string, epoch: number): ProblemError {
  return new ProblemError(
    'enroll.agent_active',
    `agent ${agent} is enrolled and active (epoch ${epoch}); to replace its key after a lost disk, issue a replacement token (agents enroll --agent ${agent} --replace), which revokes epoch ${epoch} when it is used`,
    { agent, epoch },
  );
}

export class EnrollmentService {
  readonly #store: CollectorStore;
  readonly #chain: CollectorChain;
  readonly #origin: string;
  /** The C2SP verifier key of the log key, which agents and auditors pin. */
  readonly #logVerifierKey: string;
  readonly #receiptKey: SigningKey;
  readonly #now: () => Date;
  readonly #clockSkewToleranceMs: number;

  constructor(options: {
    store: CollectorStore;
    chain: CollectorChain;
    origin: string;
    logKey: SigningKey;
    receiptKey: SigningKey;
    now: () => Date;
    /** The tolerance ingest judges `at` with, shown next to the clock-skew counts. */
    clockSkewToleranceMs?: number;
  }) {
    this.#store = options.store;
    this.#chain = options.chain;
    this.#origin = options.origin;
    this.#logVerifierKey = verifierKeyString(options.origin, fromBase64Url(options.logKey.publicJwk.x));
    this.#receiptKey = options.receiptKey;
    this.#now = options.now;
    this.#clockSkewToleranceMs = options.clockSkewToleranceMs ?? DEFAULT_CLOCK_SKEW_TOLERANCE_MS;
  }

  /**
   * Issues a one-time enrollment token for `agent`, valid `ttlSeconds`. Resolves with the token
   * only after its hash and its `enrollment_token.issued` record are committed.
   */
  async issueToken(
    agent: string,
    ttlSeconds = DEFAULT_ENROLLMENT_TOKEN_TTL_SECONDS,
    by: Actor = 'internal',
    options: { replace?: boolean } = {},
  ): Promise<{ token: string; expiresAt: string; replace: boolean }> {
    const replace = options.replace === true;
    assertEnrollableAgentId(agent);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_ENROLLMENT_TOKEN_TTL_SECONDS) {
      throw new EnrollmentInputError(`token lifetime must be between 1 second and ${MAX_ENROLLMENT_TOKEN_TTL_SECONDS / 86400} days`);
    }
    const token = randomBytes(ENROLLMENT_TOKEN_BYTES).toString('base64url');
    const now = this.#now();
    const expiresAt = new Date(now.getTime() + ttlSeconds * 1000).toISOString();
    const hash = tokenHash(token);
    await this.#store.write(async (tx) => {
      const current = await tx.currentEpoch(agent);
      if (!replace && current && current.revokedAt === null) throw agentActiveProblem(agent, current.epoch);
      await tx.putEnrollmentToken({ tokenHash: hash, agent, createdAt: now.toISOString(), expiresAt, usedAt: null, forReplacement: replace, voidedAt: null });
      await this.#chain.append(tx, 'enrollment_token.issued', { agent, expiresAt, by, token: enrollmentTokenId(hash), replace });
    });
    return { token, expiresAt, replace };
  }

  /**
   * Enrolls `request.agent` with `request.publicKey` if `request.token` is an unused, unexpired
   * token issued for that agent id; otherwise rejects with `enroll.token_invalid` (the same
   * answer for every reason, so the endpoint tells a guesser nothing). A valid ordinary token
   * for an id whose current epoch is active rejects with `enroll.agent_active` and stays unused;
   * a replacement token revokes that epoch in the same transaction.
   */
  async enroll(request: EnrollRequest): Promise<EnrollResponse> {
    const publicJwk = publicJwkOf(request.publicKey);
    const kid = jwkThumbprint(publicJwk);
    const hash = tokenHash(request.token);
    const epoch = await this.#store.write(async (tx) => {
      const now = this.#now();
      const token = await tx.findEnrollmentToken(hash);
      const valid =
        token !== undefined &&
        token.usedAt === null &&
        token.voidedAt === null &&
        token.agent === request.agent &&
        Date.parse(token.expiresAt) > now.getTime() &&
        request.agent !== COLLECTOR_AGENT_ID;
      if (!valid || !(await tx.useEnrollmentToken(hash, now.toISOString()))) {
        throw new ProblemError('enroll.token_invalid', 'the enrollment token is unknown, used, expired or issued for another agent id');
      }
      const current = await tx.currentEpoch(request.agent);
      const epoch = (await tx.highestEpoch(request.agent)) + 1;
      const id = enrollmentTokenId(hash);
      let replaces: number | null = null;
      if (current && current.revokedAt === null) {
        if (!token.forReplacement) throw agentActiveProblem(request.agent, current.epoch);
        const revoked = await this.#chain.append(tx, 'agent.revoked', {
          agent: request.agent,
          epoch: current.epoch,
          kid: current.kid,
          by: `enrollment:${id}`,
          reason: 'replaced',
          supersededBy: epoch,
        });
        const revocation = { revokedAt: revoked.record.at, revokedIndex: revoked.ledger.first, supersededBy: epoch };
        if (!(await tx.revokeAgentEpoch(request.agent, current.epoch, revocation))) throw new Error(`agent ${request.agent} epoch ${current.epoch} changed during replacement`);
        replaces = current.epoch;
      }
      await tx.createAgentEpoch({ agent: request.agent, epoch, publicJwk, kid, enrolledAt: now.toISOString() });
      await this.#chain.append(tx, 'agent.enrolled', { agent: request.agent, epoch, kid, token: id, replaces });
      return epoch;
    });
    return {
      agent: request.agent,
      epoch,
      origin: this.#origin,
      logKey: this.#logVerifierKey,
      receiptKey: { ...this.#receiptKey.publicJwk, kid: this.#receiptKey.kid },
    };
  }

  /**
   * Revokes the current epoch of `agent` and voids every unused enrollment token of the id.
   * Resolves once the rows and their `agent.revoked` / `enrollment_token.voided` records are
   * committed; `alreadyRevoked` if the epoch was revoked before. Rejects with
   * `resource.not_found` for an id with neither an epoch nor an unused token.
   */
  async revokeAgent(agent: string, by: Actor): Promise<RevocationResult> {
    assertEnrollableAgentId(agent);
    return this.#store.write(async (tx) => {
      const current = await tx.currentEpoch(agent);
      const voided = await tx.voidEnrollmentTokens(agent, this.#now().toISOString());
      if (voided.length > 0) await this.#chain.append(tx, 'enrollment_token.voided', { agent, tokens: voided.map(enrollmentTokenId).sort(), by });
      if (!current) {
        if (voided.length === 0) throw new ProblemError('resource.not_found', `agent ${agent} is not enrolled and has no unused enrollment token`);
        return { agent, epoch: null, revokedAt: null, revokedIndex: null, alreadyRevoked: false, voidedTokens: voided.length };
      }
      if (current.revokedAt !== null) {
        return { agent, epoch: current.epoch, revokedAt: current.revokedAt, revokedIndex: current.revokedIndex, alreadyRevoked: true, voidedTokens: voided.length };
      }
      const revoked = await this.#chain.append(tx, 'agent.revoked', { agent, epoch: current.epoch, kid: current.kid, by, reason: 'revoked' });
      const revocation = { revokedAt: revoked.record.at, revokedIndex: revoked.ledger.first, supersededBy: null };
      if (!(await tx.revokeAgentEpoch(agent, current.epoch, revocation))) throw new Error(`agent ${agent} epoch ${current.epoch} changed during revocation`);
      return { agent, epoch: current.epoch, revokedAt: revocation.revokedAt, revokedIndex: revocation.revokedIndex, alreadyRevoked: false, voidedTokens: voided.length };
    });
  }

  /** Every (agent, epoch), the COLLECTOR chain included, by agent id then epoch. */
  async listAgents(): Promise<AgentListing[]> {
    const rows = await this.#store.listAgentEpochs();
    const keys = new Map<string, AgentKeyListing[]>();
    for (const key of await this.#store.listAgentKeys()) {
      const id = `${key.agent}\u0000${key.epoch}`;
      const list = keys.get(id) ?? [];
      list.push({ kid: key.kid, fromSeq: key.fromSeq, addedAt: key.addedAt, reason: key.reason });
      keys.set(id, list);
    }
    return rows.map((row) => ({
      agent: row.agent,
      epoch: row.epoch,
      kid: row.kid,
      enrolledAt: row.enrolledAt,
      revokedAt: row.revokedAt,
      status: epochStatus(row),
      revokedIndex: row.revokedIndex,
      supersededBy: row.supersededBy,
      highestSeq: row.highestSeq,
      ledgerEntries: row.ledgerEntries,
      lastSeenAt: row.lastSeenAt,
      backlog: row.backlog,
      gaps: row.gaps,
      quarantined: row.quarantined,
      witnessedSize: row.witnessedSize,
      witnessedAt: row.witnessedAt,
      keys: keys.get(`${row.agent}\u0000${row.epoch}`) ?? [],
      clockSkew: {
        toleranceMs: this.#clockSkewToleranceMs,
        implausible: row.clockSkew?.implausible ?? 0,
        byRule: { ahead: row.clockSkew?.ahead ?? 0, backwards: row.clockSkew?.backwards ?? 0, behind: row.clockSkew?.behind ?? 0 },
        maxAheadMs: row.clockSkew?.maxAheadMs ?? null,
        maxBackwardsMs: row.clockSkew?.maxBackwardsMs ?? null,
        maxBehindMs: row.clockSkew?.maxBehindMs ?? null,
        lastSeen: row.clockSkew?.lastSkew ?? null,
      },
      version: row.version,
    }));
  }
}
