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
import { agentIdSchema, ed25519PublicJwkSchema, epochSchema, isoInstantSchema, recordSchema, sha256B64Schema } from './protocol.ts';
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

export const healthSchema = z.strictObject({ status: z.literal('ok') });
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

/** The state of one epoch: active, revoked (agents revoke) or superseded (replaced by a --replace enrollment). */
export const EPOCH_STATUSES = ['active', 'revoked', 'superseded'] as const;

/** One (agent, epoch) as the fleet API (`GET /api/v1/agents`) shows it. */
export const fleetAgentSchema = z.strictObject({
  agent: agentIdSchema,
  epoch: epochSchema,
  status: z.enum(EPOCH_STATUSES),
  enrolledAt: isoInstantSchema,
  revokedAt: instantOrNull,
  supersededBy: epochSchema.nullable(),
  lastSeenAt: instantOrNull,
  /** What the agent last reported in a batch: records waiting in its outbox. */
  backlog: z.strictObject({ pending: countSchema.nullable(), oldestAt: instantOrNull, reportedAt: instantOrNull }),
  highestSeq: countSchema,
  ledgerEntries: countSchema,
  /** Equivocating records held in quarantine, never in the ledger. */
  quarantined: countSchema,
  /** Records whose `at` is implausible (collector/services/clock-skew.ts); null before the first batch. */
  clockSkew: z
    .strictObject({
      implausible: countSchema,
      lastOffsetSeconds: z.number().nullable(),
      lastRule: z.enum(['ahead', 'backwards', 'behind']).nullable(),
    })
    .nullable(),
  /** The newest checkpoint this agent confirmed as a witness, and when. */
  witnessed: z.strictObject({ size: countSchema, at: isoInstantSchema }).nullable(),
  /** The agent's software version, as it last reported it. */
  version: z.string().nullable(),
});
export type FleetAgent = z.infer<typeof fleetAgentSchema>;

export const fleetListSchema = z.strictObject({
  agents: z.array(fleetAgentSchema),
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: z.string().nullable(),
});
export type FleetList = z.infer<typeof fleetListSchema>;

/** One agent's current epoch and, newest first, the epochs before it. */
export const fleetAgentDetailSchema = fleetAgentSchema.extend({ previousEpochs: z.array(fleetAgentSchema) });
export type FleetAgentDetail = z.infer<typeof fleetAgentDetailSchema>;

export const FLEET_PAGE_DEFAULT = 100;
export const FLEET_PAGE_MAX = 500;
const decimalText = z.string().regex(/^(0|[1-9][0-9]*)$/, 'must be a non-negative decimal integer without leading zeros');

/** The fleet list's query string (all optional; strings, as they arrive). */
export const fleetQuerySchema = z.strictObject({
  status: z.enum(EPOCH_STATUSES).optional(),
  /** Agents not seen for at least this long: a number with s, m, h or d. */
  silentFor: z
    .string()
    .regex(/^\d{1,6}[smhd]$/, 'a duration such as 30m, 6h or 2d')
    .optional(),
  /** Agents whose reported backlog is above this many records. */
  backlogOver: decimalText.transform(Number).pipe(z.number().int().max(Number.MAX_SAFE_INTEGER)).optional(),
  limit: decimalText
    .transform(Number)
    .pipe(z.number().int().min(1).max(FLEET_PAGE_MAX))
    .optional()
    .meta({ description: `page size, 1 to ${FLEET_PAGE_MAX}; default ${FLEET_PAGE_DEFAULT}` }),
  /** `nextCursor` of the previous page, as it was answered (opaque). */
  cursor: z.string().min(1).max(512).optional(),
});
