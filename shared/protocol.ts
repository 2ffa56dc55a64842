/**
 * Wire protocol v1 (collector API under /api/v1): zod schemas for records, batches, receipts and
 * enrollment, and the limits both sides agree on. Every schema is strict: an unknown field is
 * an error, never silently ignored.
 */
import { z } from 'zod';
import { AGENT_ID_PATTERN, GENESIS_PREV, MAX_BODY_CANONICAL_BYTES, RECORD_KINDS, RECORD_TYPE_PATTERN } from './record.ts';

export const API_PREFIX = '/api/v1';
export const AGENT_JWT_TYP = 'sakshya-agent+jwt';
/** An agent JWT MUST NOT live longer than this (exp - iat). */
export const MAX_AGENT_JWT_LIFETIME_SECONDS = 300;
export const MAX_RECORDS_PER_BATCH = 2000;
/** Limit on a batch body after decompression. Agents keep their batches well under it. */
export const MAX_BATCH_DECODED_BYTES = 8 * 1024 * 1024;
export const DEFAULT_COLLECTOR_PORT = 7400;
export const DEFAULT_AGENT_PORT = 7410;

/** Unpadded base64url of exactly `bytes` bytes. */
export const base64urlPattern = (bytes: number): RegExp => new RegExp(`^[A-Za-z0-9_-]{${Math.ceil((bytes * 4) / 3)}}$`);

const base64url = (bytes: number) => z.string().regex(base64urlPattern(bytes), `base64url of ${bytes} bytes`);

export const sha256B64Schema = base64url(32);
export const agentIdSchema = z.string().regex(AGENT_ID_PATTERN, 'agent id: 3-64 of A-Z, 0-9, -');
export const epochSchema = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
export const seqSchema = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
export const isoInstantSchema = z.iso.datetime({ offset: false });
/** An agent's software version as it reports it: semver-like, bounded, no spaces or controls. */
export const AGENT_VERSION_PATTERN = /^[0-9A-Za-z.+-]{1,64}$/;
export const agentVersionSchema = z.string().regex(AGENT_VERSION_PATTERN, 'agentVersion: 1-64 of A-Z, a-z, 0-9, ., +, -');

/**
 * The canonical size of a body without canonicalising it: RFC 8785 writes the same members,
 * strings and numbers as JSON.stringify (only the key order differs), so the byte lengths are
 * equal for any value that came from JSON. This check runs for every record on the collector's
 * event loop; a full canonicalisation there cost as much as parsing the batch.
 */
function canonicalByteLength(body: unknown): number {
  return Buffer.byteLength(JSON.stringify(body), 'utf8');
}

const BODY_MESSAGE = `body must be a JSON object of at most ${MAX_BODY_CANONICAL_BYTES} canonical bytes`;

/**
 * A record body: any JSON object within the size limit. Checked, not rebuilt: `z.record` would
 * copy every body member by member, and on the collector that copy is garbage made for every
 * record of every batch.
 */
export function isRecordBody(body: unknown): body is { [key: string]: unknown } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  try {
    return canonicalByteLength(body) <= MAX_BODY_CANONICAL_BYTES;
  } catch {
    return false;
  }
}

export const recordBodySchema = z.custom<{ [key: string]: unknown }>(isRecordBody, BODY_MESSAGE);

export const recordSchema = z
  .strictObject({
    v: z.literal(1),
    id: z.uuidv7(),
    agent: agentIdSchema,
    epoch: epochSchema,
    seq: seqSchema,
    prev: sha256B64Schema,
    kind: z.enum(RECORD_KINDS),
    type: z.string().max(128).regex(RECORD_TYPE_PATTERN, 'type: dotted lower-case name'),
    at: isoInstantSchema,
    body: recordBodySchema,
    kid: sha256B64Schema,
    sig: base64url(64),
  })
  .refine((r) => r.seq !== 1 || r.prev === GENESIS_PREV, { message: 'seq 1 must have the genesis prev', path: ['prev'] });

export const backlogSchema = z.strictObject({
  pending: z.number().int().min(0),
  oldestAt: isoInstantSchema.nullable(),
});

export const batchSchema = z
  .strictObject({
    batchId: z.uuid(),
    agent: agentIdSchema,
    epoch: epochSchema,
    records: z.array(recordSchema).min(1).max(MAX_RECORDS_PER_BATCH),
    backlog: backlogSchema,
    /** The newest checkpoint this agent has verified as a witness (signature and consistency). */
    witness: z.lazy(() => checkpointRefSchema).optional(),
    /** The sending agent's software version (absent from agents older than this field). */
    agentVersion: agentVersionSchema.optional(),
  })
  .superRefine((batch, ctx) => {
    batch.records.forEach((record, i) => {
      if (record.agent !== batch.agent || record.epoch !== batch.epoch) {
        ctx.addIssue({ code: 'custom', path: ['records', i], message: 'record agent/epoch differ from the batch' });
      }
      if (i > 0 && record.seq !== batch.records[i - 1]!.seq + 1) {
        ctx.addIssue({ code: 'custom', path: ['records', i, 'seq'], message: 'records must be in ascending, contiguous seq' });
      }
    });
  });

export const checkpointRefSchema = z.strictObject({
  size: z.number().int().min(0),
  root: sha256B64Schema,
});

export const receiptSchema = z.strictObject({
  v: z.literal(1),
  collector: z.string(),
  batchId: z.uuid(),
  agent: agentIdSchema,
  epoch: epochSchema,
  accepted: z.number().int().min(0),
  duplicates: z.number().int().min(0),
  highestSeq: z.number().int().min(0),
  ledger: z.strictObject({ first: z.number().int().min(0), last: z.number().int().min(0) }).nullable(),
  checkpoint: checkpointRefSchema,
  receivedAt: isoInstantSchema,
});

export const signedReceiptSchema = z.strictObject({
  receipt: receiptSchema,
  signature: z.string(),
});

export const ed25519PublicJwkSchema = z.object({
  kty: z.literal('OKP'),
  crv: z.literal('Ed25519'),
  x: base64url(32),
  kid: z.string().optional(),
  use: z.string().optional(),
  alg: z.string().optional(),
});

export const enrollRequestSchema = z.strictObject({
  token: z.string().min(16).max(256),
  agent: agentIdSchema,
  publicKey: ed25519PublicJwkSchema.strict(),
});

export const enrollResponseSchema = z.strictObject({
  agent: agentIdSchema,
  epoch: epochSchema,
  origin: z.string(),
  logKey: z.string(),
  receiptKey: ed25519PublicJwkSchema,
});

export type Batch = z.infer<typeof batchSchema>;
export type Receipt = z.infer<typeof receiptSchema>;
export type SignedReceipt = z.infer<typeof signedReceiptSchema>;
export type EnrollRequest = z.infer<typeof enrollRequestSchema>;
export type EnrollResponse = z.infer<typeof enrollResponseSchema>;
export type Backlog = z.infer<typeof backlogSchema>;

/** One line per zod issue, `path: message`, for problem details and CLI errors. */
export function describeZodError(error: z.ZodError, limit = 10): string {
  const lines = error.issues.slice(0, limit).map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
  if (error.issues.length > limit) lines.push(`… and ${error.issues.length - limit} more`);
  return lines.join('; ');
}
