/**
 * zod schemas of the collector API's answers that shared/protocol.ts does not hold already
 * (protocol.ts: what agents send and receive; here: problems, proofs, keys, admin, auditor and
 * fleet answers). They are the API's contract: the OpenAPI document
 * (`GET /api/v1/openapi.json`) is generated from them, and where the collector builds one of
 * these objects its type comes from the schema (`z.infer`), so the two cannot drift.
 *
 * Answers are strict (an unknown member is an error), like the protocol's; a problem is loose:
 * RFC 9457 lets it carry extras (`expectedSeq`, `retryAfterSeconds`, …).
 */
import { z } from 'zod';
import { PROBLEM_TYPE_PREFIX, PROBLEMS, type ProblemCode } from './problem.ts';
import { AGENT_VERSION_PATTERN, agentIdSchema, ed25519PublicJwkSchema, epochSchema, isoInstantSchema, recordSchema, sha256B64Schema } from './protocol.ts';
import { manifestSchema, reportFilterSchema } from './report/bundle-format.ts';

const countSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const instantOrNull = isoInstantSchema.nullable();

export const PROBLEM_CODES = Object.keys(PROBLEMS) as [ProblemCode, ...ProblemCode[]];

/** An RFC 9457 problem body (shared/problem.ts): `type`, `title`, `status`, `detail`, `code`, and any extras. */
export const problemSchema = z.looseObject({
  type: z.string().regex(new RegExp(`^${PROBLEM_TYPE_PREFIX}`), `${PROBLEM_TYPE_PREFIX}<code>`),
  title: z.string(),
  status: z.number().int().min(400).max(599),
  detail: z.string(),
  code: z.enum(PROBLEM_CODES),
});

/** `GET /api/v1/openapi.json`, in outline (the OpenAPI 3.1 specification has the rest). */
export const openApiDocumentSchema = z.looseObject({
  openapi: z.string().regex(/^3\.1\.\d+$/, 'OpenAPI 3.1.x'),
  info: z.looseObject({ title: z.string(), version: z.string() }),
  paths: z.record(z.string(), z.looseObject({})),
});

export const healthSchema = z.strictObject({ status: z.literal('ok'), version: z.string() });
export type Health = z.infer<typeof healthSchema>;
export const readinessSchema = z.strictObject({ status: z.literal('ready') });
export type Readiness = z.infer<typeof readinessSchema>;

/** RFC 9162 §2.1.4: hashes base64url without padding. */
export const consistencyProofSchema = z.strictObject({ from: countSchema, to: countSchema, path: z.array(sha256B64Schema) });
export type ConsistencyProofAnswer = z.infer<typeof consistencyProofSchema>;
/** RFC 9162 §2.1.3. */
export const inclusionProofSchema = z.strictObject({ index: countSchema, size: countSchema, leafHash: sha256B64Schema, path: z.array(sha256B64Schema) });
export type InclusionProofAnswer = z.infer<typeof inclusionProofSchema>;

/** What the collector publishes at `GET /api/v1/keys`: never a private key. */
export const collectorPublicKeysSchema = z.strictObject({
  origin: z.string().min(1),
  /** C2SP signed-note verifier key of the log key: "<origin>+<key ID>+<base64 key>". */
  logKey: z.string().min(1),
  /** The receipt/report key as a JWKS. */
  jwks: z.strictObject({
    keys: z.array(ed25519PublicJwkSchema.extend({ kid: z.string().min(1), alg: z.literal('EdDSA'), use: z.literal('sig') }).strict()),
  }),
});
export type CollectorPublicKeys = z.infer<typeof collectorPublicKeysSchema>;

/** `GET /api/v1/records/<id>`: `record` is the stored canonical JSON, byte for byte. */
export const recordViewSchema = z.strictObject({ record: recordSchema, ledgerIndex: countSchema, receivedAt: isoInstantSchema });

/** A new one-time enrollment token; the only place it is ever shown. */
export const enrollmentTokenIssuedSchema = z.strictObject({
  agent: agentIdSchema,
  token: z.string().min(1),
  expiresAt: isoInstantSchema,
  /** A replacement token: it enrolls over the active epoch, revoking it. */
  replace: z.boolean(),
});
export type EnrollmentTokenIssued = z.infer<typeof enrollmentTokenIssuedSchema>;

/** What a revocation did. `epoch` is null when the id was never enrolled and only tokens were voided. */
export const revocationSchema = z.strictObject({
  agent: agentIdSchema,
  epoch: epochSchema.nullable(),
  revokedAt: instantOrNull,
  /** Ledger index of the epoch's `agent.revoked` record. */
  revokedIndex: countSchema.nullable(),
  alreadyRevoked: z.boolean(),
  /** Unused enrollment tokens of the id voided by this revocation. */
  voidedTokens: countSchema,
});
export type Revocation = z.infer<typeof revocationSchema>;

export const REPORT_JOB_STATUSES = ['running', 'done', 'failed', 'expired'] as const;

/** A report export job as the HTTP API shows it (without its links). */
export const reportJobViewSchema = z.strictObject({
  id: z.uuid(),
  status: z.enum(REPORT_JOB_STATUSES),
  filter: reportFilterSchema,
  checkpointSize: countSchema,
  createdAt: isoInstantSchema,
  finishedAt: instantOrNull,
  /** When the bundle was deleted (status `expired`). */
  expiredAt: isoInstantSchema.optional(),
  counts: manifestSchema.shape.counts.optional(),
  manifestSha256: z.string().regex(/^[0-9a-f]{64}$/, 'lower-case hex sha256').optional(),
  bundleBytes: countSchema.optional(),
  /** Why a failed job failed. */
  problem: problemSchema.optional(),
});
export type ReportJobView = z.infer<typeof reportJobViewSchema>;

export const reportJobSchema = reportJobViewSchema.extend({
  links: z.strictObject({ self: z.string(), bundle: z.string().optional() }),
});
export type LinkedReportJob = z.infer<typeof reportJobSchema>;

// The fleet view (admins and auditors): services type their output with z.infer of these.
const count = z.number().int().min(0);
const instant = z.string();

export const FLEET_STATUSES = ['active', 'revoked', 'superseded'] as const;
export const fleetStatusSchema = z.enum(FLEET_STATUSES);

/** One (agent, epoch) as the fleet view shows it. */
export const fleetAgentSchema = z.strictObject({
  agent: agentIdSchema,
  epoch: epochSchema,
  /** active: may send; revoked: revoked by an admin; superseded: revoked by a `--replace` enrollment. */
  status: fleetStatusSchema,
  enrolledAt: instant,
  revokedAt: instant.nullable(),
  /** The epoch that replaced this one (status superseded). */
  supersededBy: epochSchema.nullable(),
  /** The collector's receive time of the newest batch of this epoch. */
  lastSeenAt: instant.nullable(),
  /** What the newest batch said was still waiting in the agent's outbox, and when it said so. */
  backlog: z.strictObject({
    pending: count.nullable(),
    oldestAt: instant.nullable(),
    reportedAt: instant.nullable(),
  }),
  highestSeq: count,
  ledgerEntries: count,
  /** Equivocating records of this epoch held out of the ledger. */
  quarantined: count,
  /** Records with an implausible `at` (docs/operations-collector.md, "Clock skew"); null before the first judged batch. */
  clockSkew: z
    .strictObject({
      implausible: count,
      /** How far off the newest implausible record was, in seconds (null: none yet). */
      lastOffsetSeconds: z.number().nullable(),
      lastRule: z.enum(['ahead', 'backwards', 'behind']).nullable(),
    })
    .nullable(),
  /** The newest checkpoint the agent confirmed as a witness, and when. */
  witnessed: z.strictObject({ size: count, at: instant }).nullable(),
  /** The software version the agent's newest batch reported; null if it named none. */
  version: z.string().regex(AGENT_VERSION_PATTERN).nullable(),
});

/** `GET /api/v1/agents`: a page of (agent, epoch) rows and the cursor of the next page (null: last page). */
export const fleetListSchema = z.strictObject({
  agents: z.array(fleetAgentSchema),
  nextCursor: z.string().nullable(),
});

/** `GET /api/v1/agents/<id>`: the agent's current (highest) epoch, and its earlier epochs by epoch. */
export const fleetAgentDetailSchema = fleetAgentSchema.extend({
  previousEpochs: z.array(fleetAgentSchema),
});

/** A duration in the fleet filter: digits and one unit, s, m, h or d (e.g. 30m, 6h, 2d). */
export const FLEET_DURATION_PATTERN = /^[0-9]{1,6}[smhd]$/;
export const FLEET_MAX_LIMIT = 500;
export const FLEET_DEFAULT_LIMIT = 100;

/**
 * `GET /api/v1/agents` query parameters, as sent (text). Every one is optional; an unknown or
 * repeated parameter is refused.
 */
export const fleetListQuerySchema = z.strictObject({
  status: fleetStatusSchema.optional(),
  /** Last seen longer ago than this, or never seen. */
  silentFor: z.string().regex(FLEET_DURATION_PATTERN, 'must be a duration such as 30m, 6h or 2d').optional(),
  /** Reported pending backlog greater than this. */
  backlogOver: z.string().regex(/^(0|[1-9][0-9]{0,14})$/, 'must be a non-negative decimal integer').optional(),
  limit: z
    .string()
    .regex(/^[1-9][0-9]{0,2}$/, `must be an integer from 1 to ${FLEET_MAX_LIMIT}`)
    .refine((text) => Number(text) <= FLEET_MAX_LIMIT, `must be an integer from 1 to ${FLEET_MAX_LIMIT}`)
    .optional(),
  /** `nextCursor` of the previous page, as given. */
  cursor: z.string().max(200).optional(),
});

export type FleetStatus = z.infer<typeof fleetStatusSchema>;
export type FleetAgent = z.infer<typeof fleetAgentSchema>;
export type FleetList = z.infer<typeof fleetListSchema>;
export type FleetAgentDetail = z.infer<typeof fleetAgentDetailSchema>;
export type FleetListQuery = z.infer<typeof fleetListQuerySchema>;
