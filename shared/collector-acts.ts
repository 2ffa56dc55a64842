/**
 * The bodies of the COLLECTOR chain's records that decide who may write: enrollments,
 * revocations and tokens. The collector writes them (services/enrollment.ts,
 * services/api-tokens.ts); `ledger verify` replays them against the tables they explain
 * (services/authority-replay.ts); report exports read revocations from them.
 *
 * Also the records of reads by auditors (COLLECTOR_READ_TYPES): who read what, for the record
 * only — nothing replays them, and they change no table.
 *
 * Fields added after the first release are optional, so that records written before them still
 * parse: `token` (the enrollment token's public id), `replace`, `replaces`, `reason` and
 * `supersededBy`. A record without `token` is matched to its row by (agent, expiresAt).
 */
import { z } from 'zod';

export const COLLECTOR_ACT_TYPES = {
  enrolled: 'agent.enrolled',
  revoked: 'agent.revoked',
  tokenIssued: 'enrollment_token.issued',
  tokensVoided: 'enrollment_token.voided',
  apiTokenIssued: 'api_token.issued',
  apiTokenRevoked: 'api_token.revoked',
} as const;

/** Reads by auditors, each a record of the COLLECTOR chain committed before the answer is sent. */
export const COLLECTOR_READ_TYPES = {
  /** One ledger record (services/records.ts): `{ id, agent, ledgerIndex, by }`. */
  recordRead: 'record.read',
  /** The fleet view (services/fleet.ts): FleetReadBody. */
  fleetRead: 'fleet.read',
} as const;

const epoch = z.number().int().min(1);

/**
 * A read of the fleet view: who, the filter as asked (a list's query parameters, or `{ agent }`
 * for one agent's epochs), and how many (agent, epoch) rows the answer held.
 */
export const fleetReadBodySchema = z.looseObject({
  by: z.string(),
  filter: z.looseObject({
    agent: z.string().optional(),
    status: z.string().optional(),
    silentFor: z.string().optional(),
    backlogOver: z.number().optional(),
    limit: z.number().optional(),
    cursor: z.string().optional(),
  }),
  rows: z.number().int().min(0),
});
export type FleetReadBody = z.infer<typeof fleetReadBodySchema>;

export const agentEnrolledBodySchema = z.looseObject({
  agent: z.string(),
  epoch,
  kid: z.string(),
  token: z.string().optional(),
  replaces: epoch.nullable().optional(),
});
export type AgentEnrolledBody = z.infer<typeof agentEnrolledBodySchema>;

export const agentRevokedBodySchema = z.looseObject({
  agent: z.string(),
  epoch,
  kid: z.string(),
  by: z.string(),
  /** `replaced`: a replacement enrollment revoked it (then supersededBy names the new epoch). */
  reason: z.enum(['revoked', 'replaced']).optional(),
  supersededBy: epoch.optional(),
});
export type AgentRevokedBody = z.infer<typeof agentRevokedBodySchema>;

export const enrollmentTokenIssuedBodySchema = z.looseObject({
  agent: z.string(),
  expiresAt: z.string(),
  by: z.string(),
  token: z.string().optional(),
  replace: z.boolean().optional(),
});
export type EnrollmentTokenIssuedBody = z.infer<typeof enrollmentTokenIssuedBodySchema>;

export const enrollmentTokensVoidedBodySchema = z.looseObject({
  agent: z.string(),
  tokens: z.array(z.string()),
  by: z.string(),
});

export const apiTokenIssuedBodySchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  role: z.string(),
  expiresAt: z.string().nullable(),
  by: z.string(),
});

export const apiTokenRevokedBodySchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  role: z.string(),
  by: z.string(),
});

/** One epoch's revocation as the ledger states it. */
export interface LedgerRevocation {
  agent: string;
  epoch: number;
  /** The revocation record's `at`. */
  at: string;
  ledgerIndex: number;
  supersededBy: number | null;
}

/**
 * The revocation an `agent.revoked` record states, or undefined if `canonical` is not one.
 * The first revocation of an epoch counts; callers keep the earliest index.
 */
export function revocationOfRecord(ledgerIndex: number, canonical: string): LedgerRevocation | undefined {
  let record: { type?: unknown; at?: unknown; body?: unknown };
  try {
    record = JSON.parse(canonical) as typeof record;
  } catch {
    return undefined;
  }
  if (record.type !== COLLECTOR_ACT_TYPES.revoked || typeof record.at !== 'string') return undefined;
  const body = agentRevokedBodySchema.safeParse(record.body);
  if (!body.success) return undefined;
  return { agent: body.data.agent, epoch: body.data.epoch, at: record.at, ledgerIndex, supersededBy: body.data.supersededBy ?? null };
}
