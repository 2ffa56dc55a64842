/**
 * The part of `ledger verify` that checks who may write. The tables that decide it
 * (`agent_epochs`, `enrollment_tokens`, `api_tokens`) are mutable rows; the COLLECTOR chain's
 * records of every enrollment, revocation and token act are signed and in the Merkle ledger.
 * Replaying the chain tells what those rows must be, so a row the chain does not explain (an
 * inserted epoch or admin token, a cleared `revoked_at`, a re-armed enrollment token) is named.
 *
 * Fed the records in ledger order (`observe`), it also names every agent record that entered
 * the ledger after its epoch's `agent.revoked` record: the collector accepted it from a revoked
 * key, which only a tampered table allows.
 *
 * Records written before enrollment tokens carried a public id in the chain are matched to their
 * rows by (agent, expiresAt); whether such a token was used is then not checked (nothing in those
 * records names it). Memory grows with the number of epochs and tokens, never with records.
 */
import {
  COLLECTOR_ACT_TYPES,
  agentEnrolledBodySchema,
  agentRevokedBodySchema,
  apiTokenIssuedBodySchema,
  apiTokenRevokedBodySchema,
  enrollmentTokenIssuedBodySchema,
  enrollmentTokensVoidedBodySchema,
} from '../../shared/collector-acts.ts';
import { COLLECTOR_AGENT_ID, type SignedRecord } from '../../shared/record.ts';
import type { LedgerAuditSource } from '../store/store.ts';
import { COLLECTOR_EPOCH } from './collector-chain.ts';
import { enrollmentTokenId } from './enrollment.ts';
import type { AuditFinding } from './ledger-audit.ts';

interface Enrollment {
  kid: string;
  ledgerIndex: number;
}

interface Revocation {
  at: string;
  ledgerIndex: number;
  supersededBy: number | null;
}

interface IssuedToken {
  agent: string;
  expiresAt: string;
  replace: boolean;
  ledgerIndex: number;
}

interface IssuedApiToken {
  name: string;
  role: string;
  expiresAt: string | null;
  ledgerIndex: number;
}

function chainKey(agent: string, epoch: number): string {
  return `${agent}\u0000${epoch}`;
}

export class AuthorityReplay {
  readonly #add: (finding: AuditFinding) => void;
  readonly #enrolled = new Map<string, Enrollment>();
  readonly #revoked = new Map<string, Revocation>();
  readonly #issued = new Map<string, IssuedToken>();
  /** Tokens issued by records that do not name them: count per (agent, expiresAt). */
  readonly #legacyIssued = new Map<string, number>();
  readonly #used = new Set<string>();
  readonly #voided = new Set<string>();
  readonly #apiIssued = new Map<string, IssuedApiToken>();
  readonly #apiRevoked = new Set<string>();

  constructor(add: (finding: AuditFinding) => void) {
    this.#add = add;
  }

  /** Takes the next ledger entry (in index order); `record` is undefined if it does not parse. */
  observe(ledgerIndex: number, record: SignedRecord | undefined): void {
    if (!record) return;
    if (record.agent !== COLLECTOR_AGENT_ID) {
      const revocation = this.#revoked.get(chainKey(record.agent, record.epoch));
      if (revocation && ledgerIndex > revocation.ledgerIndex) {
        this.#add({
          table: 'records',
          row: { ledger_index: ledgerIndex, id: record.id, agent: record.agent, epoch: record.epoch, seq: record.seq },
          check: 'after_revocation',
          message: `accepted after ${record.agent} epoch ${record.epoch} was revoked at ledger index ${revocation.ledgerIndex}: its revocation state was tampered with`,
          expected: `ledger index < ${revocation.ledgerIndex}`,
          found: String(ledgerIndex),
        });
      }
      return;
    }
    this.#observeAct(ledgerIndex, record);
  }

  #observeAct(ledgerIndex: number, record: SignedRecord): void {
    switch (record.type) {
      case COLLECTOR_ACT_TYPES.enrolled: {
        const body = agentEnrolledBodySchema.safeParse(record.body);
        if (!body.success) return;
        this.#enrolled.set(chainKey(body.data.agent, body.data.epoch), { kid: body.data.kid, ledgerIndex });
        if (body.data.token !== undefined) this.#used.add(body.data.token);
        return;
      }
      case COLLECTOR_ACT_TYPES.revoked: {
        const body = agentRevokedBodySchema.safeParse(record.body);
        if (!body.success) return;
        const key = chainKey(body.data.agent, body.data.epoch);
        if (!this.#revoked.has(key)) this.#revoked.set(key, { at: record.at, ledgerIndex, supersededBy: body.data.supersededBy ?? null });
        return;
      }
      case COLLECTOR_ACT_TYPES.tokenIssued: {
        const body = enrollmentTokenIssuedBodySchema.safeParse(record.body);
        if (!body.success) return;
        const { agent, expiresAt, token, replace } = body.data;
        if (token === undefined) {
          const key = `${agent}\u0000${expiresAt}`;
          this.#legacyIssued.set(key, (this.#legacyIssued.get(key) ?? 0) + 1);
        } else {
          this.#issued.set(token, { agent, expiresAt, replace: replace === true, ledgerIndex });
        }
        return;
      }
      case COLLECTOR_ACT_TYPES.tokensVoided: {
        const body = enrollmentTokensVoidedBodySchema.safeParse(record.body);
        if (body.success) for (const token of body.data.tokens) this.#voided.add(token);
        return;
      }
      case COLLECTOR_ACT_TYPES.apiTokenIssued: {
        const body = apiTokenIssuedBodySchema.safeParse(record.body);
        if (body.success) this.#apiIssued.set(body.data.id, { name: body.data.name, role: body.data.role, expiresAt: body.data.expiresAt, ledgerIndex });
        return;
      }
      case COLLECTOR_ACT_TYPES.apiTokenRevoked: {
        const body = apiTokenRevokedBodySchema.safeParse(record.body);
        if (body.success) this.#apiRevoked.add(body.data.id);
        return;
      }
    }
  }

  /** After the records: compares the mutable tables with what the chain says they must be. */
  async checkTables(source: LedgerAuditSource): Promise<void> {
    await this.#checkEpochs(source);
    await this.#checkEnrollmentTokens(source);
    await this.#checkApiTokens(source);
  }

  async #checkEpochs(source: LedgerAuditSource): Promise<void> {
    const seen = new Set<string>();
    for await (const row of source.agentEpochs()) {
      const key = chainKey(row.agent, row.epoch);
      seen.add(key);
      const ref = { agent: row.agent, epoch: row.epoch };
      const add = (check: string, message: string, expected?: string, found?: string) =>
        this.#add({ table: 'agent_epochs', row: ref, check, message, ...(expected !== undefined ? { expected, found: found ?? '' } : {}) });
      if (row.agent === COLLECTOR_AGENT_ID) {
        if (row.epoch !== COLLECTOR_EPOCH) add('unexplained', `the COLLECTOR chain has only epoch ${COLLECTOR_EPOCH}; this row was inserted`);
        continue;
      }
      const enrolled = this.#enrolled.get(key);
      if (!enrolled) add('unexplained', 'no agent.enrolled record of the COLLECTOR chain created this epoch: the row was inserted');
      else if (enrolled.kid !== row.kid) add('enrolled_kid', 'kid is not the key the agent.enrolled record names', enrolled.kid, row.kid);

      const revocation = this.#revoked.get(key);
      if (!revocation) {
        if (row.revokedAt !== null || row.revokedIndex !== null || row.supersededBy !== null) {
          add('revocation', 'the epoch is marked revoked, but no agent.revoked record of the COLLECTOR chain revokes it', 'not revoked', `revoked_at ${row.revokedAt}, revoked_index ${row.revokedIndex}`);
        }
        continue;
      }
      const expected = `revoked_at ${revocation.at}, revoked_index ${revocation.ledgerIndex}, superseded_by ${revocation.supersededBy}`;
      const found = `revoked_at ${row.revokedAt}, revoked_index ${row.revokedIndex}, superseded_by ${row.supersededBy}`;
      if (row.revokedAt === null) {
        add('revocation', `the COLLECTOR chain revoked this epoch at ledger index ${revocation.ledgerIndex}, but revoked_at is empty: a revoked agent could write again`, expected, found);
      } else if (expected !== found) {
        add('revocation', 'the revocation columns differ from the agent.revoked record', expected, found);
      }
    }
    for (const [key, enrolled] of this.#enrolled) {
      if (seen.has(key)) continue;
      const [agent, epoch] = key.split('\u0000') as [string, string];
      this.#add({
        table: 'agent_epochs',
        row: { agent, epoch: Number(epoch) },
        check: 'missing',
        message: `the agent.enrolled record at ledger index ${enrolled.ledgerIndex} created this epoch, but its row is gone`,
      });
    }
  }

  async #checkEnrollmentTokens(source: LedgerAuditSource): Promise<void> {
    const seen = new Set<string>();
    for await (const row of source.enrollmentTokens()) {
      const id = enrollmentTokenId(row.tokenHash);
      seen.add(id);
      const ref = { agent: row.agent, id };
      const add = (check: string, message: string, expected?: string, found?: string) =>
        this.#add({ table: 'enrollment_tokens', row: ref, check, message, ...(expected !== undefined ? { expected, found: found ?? '' } : {}) });
      const issued = this.#issued.get(id);
      if (!issued) {
        const legacy = `${row.agent}\u0000${row.expiresAt}`;
        const count = this.#legacyIssued.get(legacy) ?? 0;
        if (count === 0 || row.forReplacement) add('unexplained', 'no enrollment_token.issued record of the COLLECTOR chain issued this token: the row was inserted');
        else this.#legacyIssued.set(legacy, count - 1);
        continue;
      }
      const expected = `agent ${issued.agent}, expires_at ${issued.expiresAt}, for_replacement ${issued.replace}`;
      const found = `agent ${row.agent}, expires_at ${row.expiresAt}, for_replacement ${row.forReplacement}`;
      if (expected !== found) add('issued', `the row differs from the enrollment_token.issued record at ledger index ${issued.ledgerIndex}`, expected, found);
      if (this.#used.has(id) !== (row.usedAt !== null)) {
        add(
          'used_at',
          row.usedAt === null ? 'an agent.enrolled record used this token, but used_at is empty: it could enroll again' : 'used_at is set, but no agent.enrolled record used this token',
          this.#used.has(id) ? 'used' : 'unused',
          row.usedAt === null ? 'unused' : 'used',
        );
      }
      if (this.#voided.has(id) !== (row.voidedAt !== null)) {
        add(
          'voided_at',
          row.voidedAt === null ? 'an enrollment_token.voided record voided this token, but voided_at is empty: it could enroll again' : 'voided_at is set, but no enrollment_token.voided record voided this token',
          this.#voided.has(id) ? 'voided' : 'not voided',
          row.voidedAt === null ? 'not voided' : 'voided',
        );
      }
    }
    for (const [id, issued] of this.#issued) {
      if (!seen.has(id)) {
        this.#add({ table: 'enrollment_tokens', row: { agent: issued.agent, id }, check: 'missing', message: `the enrollment_token.issued record at ledger index ${issued.ledgerIndex} issued this token, but its row is gone` });
      }
    }
  }

  async #checkApiTokens(source: LedgerAuditSource): Promise<void> {
    const seen = new Set<string>();
    for await (const row of source.apiTokens()) {
      seen.add(row.id);
      const ref = { id: row.id, name: row.name };
      const add = (check: string, message: string, expected?: string, found?: string) =>
        this.#add({ table: 'api_tokens', row: ref, check, message, ...(expected !== undefined ? { expected, found: found ?? '' } : {}) });
      const issued = this.#apiIssued.get(row.id);
      if (!issued) {
        add('unexplained', `no api_token.issued record of the COLLECTOR chain issued this ${row.role} token: the row was inserted`);
        continue;
      }
      const expected = `name ${issued.name}, role ${issued.role}, expires_at ${issued.expiresAt}`;
      const found = `name ${row.name}, role ${row.role}, expires_at ${row.expiresAt}`;
      if (expected !== found) add('issued', `the row differs from the api_token.issued record at ledger index ${issued.ledgerIndex}`, expected, found);
      if (this.#apiRevoked.has(row.id) !== (row.revokedAt !== null)) {
        add(
          'revoked_at',
          row.revokedAt === null ? 'an api_token.revoked record revoked this token, but revoked_at is empty: it works again' : 'revoked_at is set, but no api_token.revoked record revoked this token',
          this.#apiRevoked.has(row.id) ? 'revoked' : 'not revoked',
          row.revokedAt === null ? 'not revoked' : 'revoked',
        );
      }
    }
    for (const [id, issued] of this.#apiIssued) {
      if (!seen.has(id)) this.#add({ table: 'api_tokens', row: { id, name: issued.name }, check: 'missing', message: `the api_token.issued record at ledger index ${issued.ledgerIndex} issued this token, but its row is gone` });
    }
  }
}
