/**
 * The collector API's OpenAPI 3.1 document, generated from the route table (routes.ts), the
 * roles of ROUTE_ACCESS (services/access.ts) and the zod schemas, by zod's own JSON Schema
 * output in draft 2020-12, the dialect of OpenAPI 3.1: no other library.
 *
 * - Answers are read as zod "output" (what the collector sends), request bodies and parameters
 *   as "input" (what a client sends, before any transform: a query number is its text).
 * - Named schemas (components.schemas) are the ANSWERS and REQUESTS below; a route's JSON
 *   answer must be one of them.
 * - Problems are `application/problem+json`, one response per status, whose schema is the
 *   Problem component with `code` narrowed to the codes the route can answer with that status.
 * - Security: agent = bearer JWT (EdDSA), admin and auditor = bearer API token, public = none;
 *   `x-sakshya-roles` lists the roles of ROUTE_ACCESS as they are.
 */
import { z } from 'zod';
import {
  collectorPublicKeysSchema,
  consistencyProofSchema,
  enrollmentTokenIssuedSchema,
  fleetAgentDetailSchema,
  fleetAgentSchema,
  fleetListSchema,
  healthSchema,
  inclusionProofSchema,
  openApiDocumentSchema,
  problemSchema,
  readinessSchema,
  recordViewSchema,
  reportJobSchema,
  revocationSchema,
} from '../../../shared/api-schemas.ts';
import { packageVersion } from '../../../shared/package-version.ts';
import { PROBLEM_CONTENT_TYPE, PROBLEMS, type ProblemCode } from '../../../shared/problem.ts';
import {
  AGENT_JWT_TYP,
  batchSchema,
  enrollRequestSchema,
  enrollResponseSchema,
  MAX_AGENT_JWT_LIFETIME_SECONDS,
  receiptSchema,
  recordBodySchema,
  recordSchema,
  signedReceiptSchema,
} from '../../../shared/protocol.ts';
import { MAX_BODY_CANONICAL_BYTES } from '../../../shared/record.ts';
import type { Role } from '../../services/access.ts';
import { reportRequestSchema } from '../../services/report/filter-input.ts';
import { issueBodySchema } from '../agents.ts';
import { accessOf, ROUTES, type DocumentedRoute, type JsonSchema, type OperationSpec, type ResponseSpec } from './routes.ts';

export const OPENAPI_VERSION = '3.1.1';
export const JSON_SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema';
const SCHEMA_REF_PREFIX = '#/components/schemas/';

/** Answers, by component name. */
const ANSWERS: { [name: string]: z.ZodType } = {
  Problem: problemSchema,
  Health: healthSchema,
  Readiness: readinessSchema,
  EnrollResponse: enrollResponseSchema,
  Receipt: receiptSchema,
  SignedReceipt: signedReceiptSchema,
  ConsistencyProof: consistencyProofSchema,
  InclusionProof: inclusionProofSchema,
  CollectorPublicKeys: collectorPublicKeysSchema,
  Record: recordSchema,
  RecordView: recordViewSchema,
  EnrollmentToken: enrollmentTokenIssuedSchema,
  Revocation: revocationSchema,
  ReportJob: reportJobSchema,
  FleetAgent: fleetAgentSchema,
  FleetAgentDetail: fleetAgentDetailSchema,
  FleetList: fleetListSchema,
  OpenApiDocument: openApiDocumentSchema,
};

/** Request bodies, by component name. */
const REQUESTS: { [name: string]: z.ZodType } = {
  EnrollRequest: enrollRequestSchema,
  Batch: batchSchema,
  EnrollmentTokenRequest: issueBodySchema,
  ReportRequest: reportRequestSchema,
};

const SECURITY_SCHEMES = {
  agentJwt: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: `An EdDSA JWT (typ ${AGENT_JWT_TYP}) signed by the agent's current key: iss = sub = the agent id, aud = the collector's origin, a jti used once (only the same batch may come again with it: the same request retried by a load balancer), living at most ${MAX_AGENT_JWT_LIFETIME_SECONDS} s. A new one for every request.`,
  },
  apiToken: {
    type: 'http',
    scheme: 'bearer',
    description: 'An admin or auditor token (sakshya_…), issued with `sakshya-collector tokens issue --role admin|auditor`.',
  },
} as const;

const SCHEME_OF: { [R in Role]: keyof typeof SECURITY_SCHEMES } = { agent: 'agentJwt', admin: 'apiToken', auditor: 'apiToken' };

const RETRY_AFTER_HEADER = { description: 'Seconds to wait before sending the request again', schema: { type: 'integer', minimum: 0 } };

/** Statuses whose problems carry Retry-After (http/errors.ts sendProblem). */
const RETRY_STATUSES = new Set([429, 503]);

const DESCRIPTION = [
  'The Sakshya collector: agents deliver signed records (`POST /api/v1/batches`) and get signed receipts; anyone can fetch checkpoints, proofs and keys; admins enroll and revoke agents; auditors read records and export report bundles.',
  '',
  'Errors are RFC 9457 `application/problem+json` with a stable `code` (the catalogue is the `code` enum of the Problem schema). A path the API does not have is 404 `resource.not_found`; a method a path does not have is 405 `method.not_allowed`; every request under /api/v1 may be 429 `rate.limited` (with Retry-After).',
].join('\n');

type Json = { [key: string]: unknown };

/** A record body is a zod custom check (shared/protocol.ts isRecordBody); this is what it admits. */
const RECORD_BODY_JSON_SCHEMA: z.core.JSONSchema.BaseSchema = {
  type: 'object',
  description: `Any JSON object of at most ${MAX_BODY_CANONICAL_BYTES} bytes in its RFC 8785 form`,
};

function jsonSchemaOptions(io: 'input' | 'output'): z.core.ToJSONSchemaParams {
  return {
    target: 'draft-2020-12',
    io,
    unrepresentable: (ctx) => {
      if (ctx.zodSchema === recordBodySchema) return { ...RECORD_BODY_JSON_SCHEMA };
      throw new Error(`${ctx.message} (at ${ctx.path.join('.') || 'the root'}): give it a JSON Schema in collector/resources/openapi/document.ts`);
    },
  };
}

/** Without the keywords zod adds to a standalone schema: the document has one dialect, and components are named by their place. */
function embedded(schema: Json): Json {
  const { $schema: _dialect, $id: _id, ...rest } = schema;
  return rest;
}

function componentSchemas(schemas: { [name: string]: z.ZodType }, io: 'input' | 'output'): { [name: string]: Json } {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const converted = z.toJSONSchema(registry, { ...jsonSchemaOptions(io), uri: (id) => SCHEMA_REF_PREFIX + id }).schemas;
  return Object.fromEntries(Object.entries(converted as { [id: string]: Json }).map(([id, schema]) => [id, embedded(schema)]));
}

function refTo(components: { [name: string]: z.ZodType }, schema: z.ZodType, what: string): Json {
  const name = Object.keys(components).find((id) => components[id] === schema);
  if (name === undefined) throw new Error(`${what}: its schema is not a component; name it in collector/resources/openapi/document.ts`);
  return { $ref: SCHEMA_REF_PREFIX + name };
}

/** A ROUTE_ACCESS key as an OpenAPI operation: `GET /api/v1/records/:id` → get `/api/v1/records/{id}`. */
export function operationOf(route: string): { method: string; path: string } {
  const [method, path] = route.split(' ') as [string, string];
  return { method: method.toLowerCase(), path: path.replace(/:([A-Za-z0-9_]+)/g, '{$1}') };
}

function parameters(spec: OperationSpec): Json[] {
  const list: Json[] = [];
  for (const [location, object] of [
    ['path', spec.pathParameters],
    ['query', spec.query],
  ] as const) {
    if (object === undefined) continue;
    const schema = z.toJSONSchema(object, jsonSchemaOptions('input')) as { properties?: { [name: string]: Json }; required?: string[] };
    for (const [name, property] of Object.entries(schema.properties ?? {})) {
      const { description, ...propertySchema } = property;
      list.push({
        name,
        in: location,
        required: location === 'path' || (schema.required ?? []).includes(name),
        ...(typeof description === 'string' ? { description } : {}),
        schema: propertySchema,
      });
    }
  }
  for (const header of spec.headers ?? []) {
    list.push({ name: header.name, in: 'header', required: header.required, description: header.description, schema: embedded(z.toJSONSchema(header.schema, jsonSchemaOptions('input')) as Json) });
  }
  return list;
}

function successResponse(route: string, status: number, response: ResponseSpec): Json {
  const content: Json = {};
  if (response.json) content['application/json'] = { schema: refTo(ANSWERS, response.json, `${route} ${status}`) };
  if (response.media) content[response.media.type] = response.media.schema ? { schema: response.media.schema } : {};
  return {
    description: response.description,
    ...(response.headers ? { headers: response.headers } : {}),
    content,
  };
}

/** The route's problem codes, one response per status. */
function problemResponses(route: string, codes: readonly ProblemCode[]): { [status: string]: Json } {
  const byStatus = new Map<number, ProblemCode[]>();
  for (const code of new Set(codes)) {
    const { status } = PROBLEMS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: { [status: string]: Json } = {};
  for (const [status, list] of [...byStatus.entries()].sort((a, b) => a[0] - b[0])) {
    const schema: JsonSchema = { $ref: `${SCHEMA_REF_PREFIX}Problem`, type: 'object', properties: { status: { const: status }, code: { enum: list } } };
    responses[String(status)] = {
      description: list.map((code) => `\`${code}\`: ${PROBLEMS[code].title}`).join('; '),
      ...(RETRY_STATUSES.has(status) ? { headers: { 'Retry-After': RETRY_AFTER_HEADER } } : {}),
      content: { [PROBLEM_CONTENT_TYPE]: { schema } },
    };
  }
  if (byStatus.size === 0) throw new Error(`${route} lists no problem codes`);
  return responses;
}

function securityOf(access: 'public' | readonly Role[]): Json[] {
  if (access === 'public') return [];
  return [...new Set(access.map((role) => SCHEME_OF[role]))].map((scheme) => ({ [scheme]: [] }));
}

function operation(route: DocumentedRoute, spec: OperationSpec): Json {
  const access = accessOf(route);
  const responses: { [status: string]: Json } = {};
  for (const [status, response] of Object.entries(spec.responses)) responses[status] = successResponse(route, Number(status), response);
  for (const [status, response] of Object.entries(problemResponses(route, spec.problems))) {
    if (responses[status]) throw new Error(`${route}: status ${status} is both an answer and a problem`);
    responses[status] = response;
  }
  const params = parameters(spec);
  return {
    operationId: spec.operationId,
    summary: spec.summary,
    ...(spec.description ? { description: spec.description } : {}),
    tags: [spec.tag],
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(spec.body
      ? { requestBody: { required: true, description: spec.body.description, content: { 'application/json': { schema: refTo(REQUESTS, spec.body.schema, `${route} body`) } } } }
      : {}),
    responses,
    security: securityOf(access),
    'x-sakshya-roles': access === 'public' ? ['public'] : [...access],
  };
}

export interface OpenApiDocument {
  openapi: string;
  jsonSchemaDialect: string;
  info: { title: string; version: string; description: string };
  paths: { [path: string]: { [method: string]: Json } };
  components: { schemas: { [name: string]: Json }; securitySchemes: typeof SECURITY_SCHEMES };
  tags: { name: string }[];
}

/** The whole document. Pure; the resource builds it once. */
export function buildOpenApiDocument(): OpenApiDocument {
  const answers = componentSchemas(ANSWERS, 'output');
  const requests = componentSchemas(REQUESTS, 'input');
  const clash = Object.keys(requests).filter((name) => Object.hasOwn(answers, name));
  if (clash.length > 0) throw new Error(`component names used twice: ${clash.join(', ')}`);
  const paths: OpenApiDocument['paths'] = {};
  const tags = new Set<string>();
  for (const [route, spec] of Object.entries(ROUTES) as [DocumentedRoute, OperationSpec][]) {
    const { method, path } = operationOf(route);
    paths[path] ??= {};
    paths[path][method] = operation(route, spec);
    tags.add(spec.tag);
  }
  return {
    openapi: OPENAPI_VERSION,
    jsonSchemaDialect: JSON_SCHEMA_DIALECT,
    info: { title: 'Sakshya collector API', version: packageVersion(), description: DESCRIPTION },
    paths,
    components: { schemas: { ...answers, ...requests }, securitySchemes: SECURITY_SCHEMES },
    tags: [...tags].map((name) => ({ name })),
  };
}
