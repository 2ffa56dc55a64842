/**
 * What each route of the API takes and answers, for the OpenAPI document (document.ts): one
 * entry per line of ROUTE_ACCESS (services/access.ts), keyed the same way, so a route added
 * there without an entry here does not compile. Who may call a route is NOT repeated here: the
 * document takes the roles from ROUTE_ACCESS.
 *
 * The schemas are the ones the routes parse with and the answers' own (shared/protocol.ts,
 * shared/api-schemas.ts). The problem codes of each route are what it and the services it calls
 * can throw, read from the code; the sets below name where each code comes from.
 */
import { z } from 'zod';
import {
  collectorPublicKeysSchema,
  consistencyProofSchema,
  enrollmentTokenIssuedSchema,
  fleetAgentDetailSchema,
  fleetListSchema,
  fleetListQuerySchema,
  healthSchema,
  inclusionProofSchema,
  openApiDocumentSchema,
  readinessSchema,
  recordViewSchema,
  reportJobSchema,
  revocationSchema,
} from '../../../shared/api-schemas.ts';
import type { ProblemCode } from '../../../shared/problem.ts';
import { agentIdSchema, batchSchema, enrollRequestSchema, enrollResponseSchema, signedReceiptSchema } from '../../../shared/protocol.ts';
import { ROUTE_ACCESS, type Role, type RouteKey } from '../../services/access.ts';
import { reportRequestSchema } from '../../services/report/filter-input.ts';
import { issueBodySchema } from '../agents.ts';
import { idempotencyKeySchema } from '../batches.ts';
import { checkpointQuery, consistencyQuery, inclusionQuery } from '../ledger.ts';
import { recordIdSchema } from '../records.ts';
import { reportIdSchema } from '../reports.ts';

export type DocumentedRoute = RouteKey;

/** The roles a documented route admits: its ROUTE_ACCESS line. */
export function accessOf(route: DocumentedRoute): 'public' | readonly Role[] {
  return ROUTE_ACCESS[route];
}

/** A JSON Schema written by hand, for answers that are not JSON (no zod schema describes them). */
export type JsonSchema = { [keyword: string]: unknown };

export interface ResponseSpec {
  description: string;
  /** A JSON answer; the schema must be one of the document's components (document.ts). */
  json?: z.ZodType;
  /** An answer of another media type. */
  media?: { type: string; schema?: JsonSchema };
  headers?: { [name: string]: { description: string; schema: JsonSchema } };
}

export interface HeaderParameter {
  name: string;
  description: string;
  required: boolean;
  schema: z.ZodType;
}

export interface OperationSpec {
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** The path's `:name` parameters, as the route checks them. */
  pathParameters?: z.ZodObject;
  /** The query string, as the route parses it (strict: an unknown parameter is 400). */
  query?: z.ZodObject;
  headers?: readonly HeaderParameter[];
  /** A JSON request body (identity or gzip); a component schema, read as input. */
  body?: { schema: z.ZodType; description: string };
  /** The answers other than problems, by status. */
  responses: { [status: number]: ResponseSpec };
  /** Every problem code the route can answer; the document groups them by status. */
  problems: readonly ProblemCode[];
}

// Where problem codes come from (read from the code they name):
/** http/errors.ts: anything unexpected is 500 `internal.error`. */
const UNEXPECTED = ['internal.error'] as const;
/** http/limits.ts limitByIp: every request under /api/v1, before routing (the health checks are exempt). */
const API = [...UNEXPECTED, 'rate.limited'] as const;
/** store/store.ts StoreUnavailableError, answered by http/errors.ts: any route that reads or writes the database. */
const DATABASE = ['service.unavailable'] as const;
/**
 * http/auth.ts requireRole and the authenticators (services/authenticators.ts, agent-auth.ts,
 * api-tokens.ts): 401 for no or a bad credential, 403 for the credential of a role the route
 * does not admit, 403 `agent.revoked` for a revoked agent's JWT (it is proved even where agents
 * are not admitted); then limitByPrincipal (429). The token lookup reads the database.
 */
const AUTHENTICATED = [...API, ...DATABASE, 'auth.invalid_token', 'auth.forbidden', 'agent.revoked'] as const;
/** http/json-body.ts: media type and encoding (415), size on the wire and inflated (413), JSON and its depth (400). */
const JSON_BODY = ['request.unsupported_media_type', 'batch.too_large', 'request.malformed'] as const;

const SIGNED_NOTE: ResponseSpec['media'] = {
  type: 'text/plain',
  schema: { type: 'string', description: 'A C2SP tlog-checkpoint signed with the log key as a C2SP signed note (docs/ledger.md)' },
};

const agentPath = z.strictObject({ id: agentIdSchema });
const reportPath = z.strictObject({ id: reportIdSchema });

export const ROUTES = {
  'GET /healthz': {
    operationId: 'getHealth',
    summary: 'The process answers',
    tag: 'health',
    responses: { 200: { description: 'The process is up', json: healthSchema } },
    problems: UNEXPECTED,
  },
  'GET /readyz': {
    operationId: 'getReadiness',
    summary: 'The process and its database answer',
    tag: 'health',
    responses: { 200: { description: 'Ready to take requests', json: readinessSchema } },
    problems: [...UNEXPECTED, 'service.unavailable'],
  },
  'POST /api/v1/enroll': {
    operationId: 'enroll',
    summary: 'Trade a one-time enrollment token and a public key for an epoch and the keys to pin',
    description: 'Rate limited per address before the token is looked up. A token works once; an id whose epoch is active needs a replacement token.',
    tag: 'enrollment',
    body: { schema: enrollRequestSchema, description: 'The token an admin issued for this agent id, the id, and the agent\u2019s Ed25519 public key (JWK)' },
    responses: { 200: { description: 'Enrolled: the new epoch, and the collector\u2019s origin, log verifier key and receipt key', json: enrollResponseSchema } },
    problems: [...API, ...DATABASE, ...JSON_BODY, 'request.invalid', 'enroll.token_invalid', 'enroll.agent_active'],
  },
  'GET /api/v1/checkpoint': {
    operationId: 'getLatestCheckpoint',
    summary: 'The latest signed checkpoint',
    tag: 'ledger',
    responses: { 200: { description: 'The latest checkpoint (Cache-Control: no-cache)', media: SIGNED_NOTE } },
    problems: [...API, ...DATABASE, 'resource.not_found'],
  },
  'GET /api/v1/checkpoints': {
    operationId: 'getCheckpoint',
    summary: 'The stored checkpoint of exactly `size` leaves',
    tag: 'ledger',
    query: checkpointQuery,
    responses: { 200: { description: 'The checkpoint (immutable, cacheable)', media: SIGNED_NOTE } },
    problems: [...API, ...DATABASE, 'request.invalid', 'resource.not_found'],
  },
  'GET /api/v1/proofs/consistency': {
    operationId: 'getConsistencyProof',
    summary: 'RFC 9162 consistency proof from the tree of `from` leaves to the tree of `to`',
    description: '`from` must be at least 1 and at most `to`; `to` at most the latest checkpoint\u2019s size.',
    tag: 'ledger',
    query: consistencyQuery,
    responses: { 200: { description: 'The proof; hashes base64url without padding', json: consistencyProofSchema } },
    problems: [...API, ...DATABASE, 'request.invalid'],
  },
  'GET /api/v1/proofs/inclusion': {
    operationId: 'getInclusionProof',
    summary: 'RFC 9162 inclusion proof of a record (by `id`) or a leaf (by `index`)',
    description: 'Exactly one of `id` and `index`; `size` defaults to the latest checkpoint\u2019s.',
    tag: 'ledger',
    query: inclusionQuery,
    responses: { 200: { description: 'The proof; hashes base64url without padding', json: inclusionProofSchema } },
    problems: [...API, ...DATABASE, 'request.invalid', 'resource.not_found'],
  },
  'GET /api/v1/keys': {
    operationId: 'getKeys',
    summary: 'The collector\u2019s public keys: the log verifier key and the receipt/report key (JWKS)',
    tag: 'ledger',
    responses: { 200: { description: 'The public keys', json: collectorPublicKeysSchema } },
    problems: API,
  },
  'GET /api/v1/openapi.json': {
    operationId: 'getOpenApiDocument',
    summary: 'This description of the API (OpenAPI 3.1)',
    tag: 'api',
    responses: { 200: { description: 'The OpenAPI document', json: openApiDocumentSchema } },
    problems: API,
  },
  'POST /api/v1/batches': {
    operationId: 'submitBatch',
    summary: 'Deliver a batch of signed records; answered with a signed receipt once committed',
    description:
      'All or nothing. The body may be sent gzip-encoded (Content-Encoding: gzip; at most 8 MiB inflated). A retry with the same Idempotency-Key and records gets the stored receipt, byte for byte. 503 `ingest.busy` comes before authentication and body; honour Retry-After.',
    tag: 'ingest',
    headers: [{ name: 'Idempotency-Key', description: 'The batch\u2019s `batchId`', required: true, schema: idempotencyKeySchema }],
    body: { schema: batchSchema, description: 'The batch: the agent\u2019s next records, in contiguous seq order, each signed by its key' },
    responses: { 200: { description: 'Committed: the receipt and its JWS (EdDSA, receipt key) over the receipt\u2019s RFC 8785 form', json: signedReceiptSchema } },
    problems: [
      ...AUTHENTICATED,
      ...JSON_BODY,
      // services/ingest-admission.ts: a full check or write queue, before anything else and again inside ingest.
      'ingest.busy',
      // The Idempotency-Key header missing, not a UUID, or not the body's batchId.
      'request.invalid',
      // services/batch-check-worker.ts and services/ingest.ts.
      'batch.invalid',
      'batch.epoch_stale',
      'batch.out_of_order',
      'record.equivocation',
      'idempotency.key_reused',
    ],
  },
  'GET /api/v1/records/:id': {
    operationId: 'getRecord',
    summary: 'One ledger record, as stored',
    description: 'An agent reads only the records of its own current epoch; an auditor any record, and each auditor read is a `record.read` record of the COLLECTOR chain.',
    tag: 'records',
    pathParameters: z.strictObject({ id: recordIdSchema }),
    responses: { 200: { description: 'The record (its canonical JSON, byte for byte), its ledger index and when it was received', json: recordViewSchema } },
    problems: [...AUTHENTICATED, 'request.invalid', 'resource.not_found'],
  },
  'POST /api/v1/agents/:id/enrollment-tokens': {
    operationId: 'issueEnrollmentToken',
    summary: 'Issue a one-time enrollment token for an agent id',
    description: 'A recorded act (`enrollment_token.issued`). An id whose epoch is active needs `replace: true`; the token then revokes that epoch when it is used.',
    tag: 'agents',
    pathParameters: agentPath,
    body: { schema: issueBodySchema, description: '`{}` for the defaults (24 h, no replacement)' },
    responses: { 201: { description: 'The token: shown here only, never again', json: enrollmentTokenIssuedSchema } },
    problems: [...AUTHENTICATED, ...JSON_BODY, 'request.invalid', 'enroll.agent_active'],
  },
  'POST /api/v1/agents/:id/revoke': {
    operationId: 'revokeAgent',
    summary: 'Revoke an agent\u2019s current epoch and void its unused enrollment tokens',
    description: 'A recorded act (`agent.revoked`, `enrollment_token.voided`). Revoking a revoked agent answers `alreadyRevoked: true`. No body.',
    tag: 'agents',
    pathParameters: agentPath,
    responses: { 200: { description: 'What the revocation did', json: revocationSchema } },
    problems: [...AUTHENTICATED, 'request.invalid', 'resource.not_found'],
  },
  'GET /api/v1/agents': {
    operationId: 'listAgents',
    summary: 'The fleet: every agent epoch, with its contact, backlog, clock-skew and witness state',
    tag: 'agents',
    query: fleetListQuerySchema,
    responses: { 200: { description: 'One page of agents', json: fleetListSchema } },
    problems: [...AUTHENTICATED, 'request.invalid'],
  },
  'GET /api/v1/agents/:id': {
    operationId: 'getAgent',
    summary: 'One agent: its current epoch and the epochs before it',
    tag: 'agents',
    pathParameters: agentPath,
    responses: { 200: { description: 'The agent', json: fleetAgentDetailSchema } },
    problems: [...AUTHENTICATED, 'request.invalid', 'resource.not_found'],
  },
  'POST /api/v1/reports': {
    operationId: 'startReportExport',
    summary: 'Start a report export job',
    description:
      'One export runs at a time (429 `report.busy` with Retry-After); below the collector\u2019s free-space floor the answer is 507 `report.storage_full`. Either way, and for a bad filter, nothing is started. Each export is a `report.exported` record of the COLLECTOR chain.',
    tag: 'reports',
    body: { schema: reportRequestSchema, description: 'The filter: `from` and `to` (ISO dates, or date-times with Z or an offset), and optionally an agent glob, kind, type and checkpoint size' },
    responses: {
      202: {
        description: 'Started: the job, to poll at its `links.self`',
        json: reportJobSchema,
        headers: { Location: { description: 'The job\u2019s URL', schema: { type: 'string' } } },
      },
    },
    problems: [...AUTHENTICATED, ...JSON_BODY, 'request.invalid', 'report.busy', 'report.storage_full'],
  },
  'GET /api/v1/reports/:id': {
    operationId: 'getReportJob',
    summary: 'A report export job (only the token that started it sees it)',
    tag: 'reports',
    pathParameters: reportPath,
    responses: { 200: { description: 'The job; `links.bundle` once it is done', json: reportJobSchema } },
    problems: [...AUTHENTICATED, 'request.invalid', 'resource.not_found'],
  },
  'GET /api/v1/reports/:id/bundle.tar.gz': {
    operationId: 'getReportBundle',
    summary: 'A finished job\u2019s report bundle (docs/report-bundle.md)',
    tag: 'reports',
    pathParameters: reportPath,
    responses: { 200: { description: 'The bundle, a tar.gz', media: { type: 'application/gzip' } } },
    problems: [...AUTHENTICATED, 'request.invalid', 'resource.not_found', 'report.not_ready', 'report.elsewhere', 'report.expired'],
  },
} satisfies { [R in DocumentedRoute]: OperationSpec };
