/**
 * Answers of the collector's read API for people (admins and auditors), as zod schemas: the
 * services type their output with `z.infer` of these, and the OpenAPI description is generated
 * from the same schemas. Strict: a field not listed here is never sent.
 *
 * Times are ISO 8601 UTC instants as the collector stores them; `null` means "not known yet"
 * (never seen, never reported), never zero.
 */
import { z } from 'zod';
import { agentIdSchema, AGENT_VERSION_PATTERN, epochSchema } from './protocol.ts';

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
