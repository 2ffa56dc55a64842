/**
 * Report bundle format `sakshya-report/2`: the contract between the collector's exporter
 * (collector/services/reports.ts) and the standalone verifier (`sakshya-verify`). The published
 * description is docs/report-bundle.md; a change here MUST change that document in the same
 * commit.
 *
 * A bundle is a directory of the files in BUNDLE_FILES. Every JSON file is RFC 8785 (JCS)
 * text, and nothing in a bundle depends on the time of the export: a bundle is a pure
 * function of (filter, checkpoint, ledger), so two exports of the same filter and checkpoint
 * size are byte-identical.
 *
 * The schemas are strict (an unknown member is an error): a verifier MUST NOT accept a field it
 * does not understand as if it had checked it.
 */
import { z } from 'zod';
import { agentIdSchema, ed25519PublicJwkSchema, epochSchema, isoInstantSchema, seqSchema, sha256B64Schema } from '../protocol.ts';
import { RECORD_KINDS, RECORD_TYPE_PATTERN, type RecordKind } from '../record.ts';

export const BUNDLE_FORMAT = 'sakshya-report/2';
/** `typ` of the protected header of manifest.jws. */
export const MANIFEST_JWS_TYP = 'sakshya-manifest+jws';
export const GENERATOR_NAME = 'sakshya';

export const BUNDLE_FILES = {
  records: 'records.jsonl',
  proofs: 'proofs.jsonl',
  checkpoint: 'checkpoint',
  keys: 'keys.json',
  csv: 'records.csv',
  summary: 'summary.html',
  manifest: 'manifest.json',
  manifestJws: 'manifest.jws',
} as const;

/** The files manifest.json lists with their sha256 and length (every file but the manifest and its JWS). */
export const MANIFEST_LISTED_FILES = [
  BUNDLE_FILES.records,
  BUNDLE_FILES.csv,
  BUNDLE_FILES.checkpoint,
  BUNDLE_FILES.proofs,
  BUNDLE_FILES.keys,
  BUNDLE_FILES.summary,
] as const;
export type ListedFileName = (typeof MANIFEST_LISTED_FILES)[number];

/** Every file a complete bundle holds, in the order the tar.gz stores them (sorted by name). */
export const ALL_BUNDLE_FILES = [...Object.values(BUNDLE_FILES)].sort();

/** Why a seq between a chain's firstSeq and lastSeq is not in the bundle (stable strings). */
export const GAP_REASONS = {
  /** The ledger has the record, but its `at` is outside [from, to): e.g. clock skew. */
  outsideDateRange: 'outside-date-range',
  /** The ledger has the record, but the kind or type filter left it out. */
  excludedByFilter: 'excluded-by-filter',
  /** The collector has no record with that seq in the tree of the checkpoint's size. */
  notInLedger: 'not-in-ledger',
} as const;
export const GAP_REASON_VALUES = [GAP_REASONS.outsideDateRange, GAP_REASONS.excludedByFilter, GAP_REASONS.notInLedger] as const;
export type GapReason = (typeof GAP_REASON_VALUES)[number];

/** The summary record an agent writes into its own chain when it sheds telemetry at its buffer cap. */
export const TELEMETRY_DROPPED = { kind: 'agent', type: 'telemetry.dropped' } as const;

/**
 * records.csv's columns: CSV_FIXED_COLUMNS, then at most CSV_MAX_FIELD_COLUMNS body fields (each
 * headed by its RFC 6901 JSON Pointer into the record, `/body/…`, sorted), then CSV_BODY_COLUMN,
 * the whole body as RFC 8785 text. The field columns are the bundle's most common body fields,
 * so the file's width does not grow with how many distinct fields the records carry.
 */
export const CSV_FIXED_COLUMNS = ['ledger_index', 'id', 'agent', 'epoch', 'seq', 'kind', 'type', 'at', 'received_at'] as const;
export const CSV_MAX_FIELD_COLUMNS = 64;
export const CSV_BODY_COLUMN = 'body';

const sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'lower-case hex sha256');
const countSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** Filter bounds are UTC instants with millisecond precision, as Date.prototype.toISOString writes them. */
export const filterInstantSchema = z.iso.datetime({ offset: false, precision: 3 });

/**
 * An agent glob: agent-id characters plus `*` (any run, also empty) and `?` (exactly one
 * character). No other wildcard exists, so a glob means the same in SQLite GLOB and in
 * agentMatchesGlob.
 */
export const agentGlobSchema = z.string().regex(/^[A-Z0-9*?-]{1,64}$/, 'agent glob: 1-64 of A-Z, 0-9, -, * and ?');
export const recordTypeSchema = z.string().max(128).regex(RECORD_TYPE_PATTERN, 'type: dotted lower-case name');

export const reportFilterSchema = z
  .strictObject({
    from: filterInstantSchema,
    to: filterInstantSchema,
    agent: agentGlobSchema.nullable(),
    kind: z.enum(RECORD_KINDS).nullable(),
    type: recordTypeSchema.nullable(),
  })
  .refine((f) => f.from < f.to, { message: 'from must be before to', path: ['to'] });
export type ReportFilter = z.infer<typeof reportFilterSchema>;

export const fileDigestSchema = z.strictObject({ sha256: sha256HexSchema, bytes: countSchema });
export type FileDigest = z.infer<typeof fileDigestSchema>;

export const gapSchema = z.strictObject({ from: seqSchema, to: seqSchema, reason: z.enum(GAP_REASON_VALUES) });
export type Gap = z.infer<typeof gapSchema>;

export const droppedEntrySchema = z.strictObject({
  seq: seqSchema,
  id: z.string(),
  dropped: countSchema,
  firstAt: isoInstantSchema,
  lastAt: isoInstantSchema,
});
export type DroppedEntry = z.infer<typeof droppedEntrySchema>;

export const manifestChainSchema = z.strictObject({
  agent: agentIdSchema,
  epoch: epochSchema,
  firstSeq: seqSchema,
  lastSeq: seqSchema,
  records: countSchema,
  gaps: z.array(gapSchema),
  dropped: z.array(droppedEntrySchema),
  revokedAt: isoInstantSchema.nullable(),
  /** Ledger index of the `agent.revoked` record: no record of this epoch may sit after it. */
  revokedIndex: countSchema.nullable(),
  /** The epoch that replaced this one (`--replace` enrollment), when that revoked it. */
  supersededBy: epochSchema.nullable(),
});
export type ManifestChain = z.infer<typeof manifestChainSchema>;

export const manifestSchema = z.strictObject({
  format: z.literal(BUNDLE_FORMAT),
  generator: z.strictObject({ name: z.string(), version: z.string() }),
  origin: z.string().min(1),
  filter: reportFilterSchema,
  checkpoint: z.strictObject({ size: countSchema, root: sha256B64Schema }),
  counts: z.strictObject({
    records: countSchema,
    byKind: z.strictObject({ audit: countSchema, telemetry: countSchema, agent: countSchema }),
    chains: countSchema,
  }),
  files: z.strictObject({
    'records.jsonl': fileDigestSchema,
    'records.csv': fileDigestSchema,
    checkpoint: fileDigestSchema,
    'proofs.jsonl': fileDigestSchema,
    'keys.json': fileDigestSchema,
    'summary.html': fileDigestSchema,
  }),
  chains: z.array(manifestChainSchema),
});
export type Manifest = z.infer<typeof manifestSchema>;

/** One line of proofs.jsonl: the RFC 9162 inclusion proof of a record in the checkpoint's tree. */
export const proofLineSchema = z.strictObject({
  id: z.string(),
  ledgerIndex: countSchema,
  leafHash: sha256B64Schema,
  path: z.array(sha256B64Schema),
});
export type ProofLine = z.infer<typeof proofLineSchema>;

export const reportKeyJwkSchema = ed25519PublicJwkSchema.extend({ kid: z.string().min(1) }).strict();
export const bareEd25519JwkSchema = ed25519PublicJwkSchema.strict();

export const keyHistoryEntrySchema = z.strictObject({
  fromSeq: seqSchema,
  kid: sha256B64Schema,
  publicJwk: bareEd25519JwkSchema,
  addedAt: isoInstantSchema,
  reason: z.enum(['enrolled', 'rotated']),
});
export type KeyHistoryEntry = z.infer<typeof keyHistoryEntrySchema>;

export const keysAgentSchema = z.strictObject({
  agent: agentIdSchema,
  epoch: epochSchema,
  enrolledAt: isoInstantSchema,
  revokedAt: isoInstantSchema.nullable(),
  revokedIndex: countSchema.nullable(),
  supersededBy: epochSchema.nullable(),
  keys: z.array(keyHistoryEntrySchema).min(1),
});
export type KeysAgent = z.infer<typeof keysAgentSchema>;

export const keysFileSchema = z.strictObject({
  collector: z.strictObject({
    origin: z.string().min(1),
    /** C2SP signed-note verifier key of the log key: "<origin>+<key ID>+<base64 key>". */
    logKey: z.string().min(1),
    /** The receipt/report key (the JWKS entry of GET /api/v1/keys). */
    reportKey: reportKeyJwkSchema,
  }),
  agents: z.array(keysAgentSchema),
});
export type KeysFile = z.infer<typeof keysFileSchema>;

/** Body of a `telemetry.dropped` record (kind `agent`). */
export const telemetryDroppedBodySchema = z.strictObject({
  dropped: countSchema,
  firstAt: isoInstantSchema,
  lastAt: isoInstantSchema,
  reason: z.string(),
  byType: z.record(z.string(), countSchema),
});
export type TelemetryDroppedBody = z.infer<typeof telemetryDroppedBodySchema>;

/** True if `agent` matches `glob` (`*` any run of characters, `?` exactly one). */
export function agentMatchesGlob(agent: string, glob: string): boolean {
  const pattern = glob.replace(/[*?]|[^*?]+/g, (part) => (part === '*' ? '.*' : part === '?' ? '.' : part.replace(/[.+^${}()|[\]\\-]/g, '\\$&')));
  return new RegExp(`^${pattern}$`, 's').test(agent);
}

/** True if `at` (an ISO instant) is in [from, to). Compares instants, not strings. */
export function atInRange(at: string, filter: Pick<ReportFilter, 'from' | 'to'>): boolean {
  const instant = Date.parse(at);
  return instant >= Date.parse(filter.from) && instant < Date.parse(filter.to);
}

/** True if the record belongs in a bundle of `filter` (the ledger-index bound is the caller's). */
export function recordMatchesFilter(record: { agent: string; kind: RecordKind | string; type: string; at: string }, filter: ReportFilter): boolean {
  return (
    atInRange(record.at, filter) &&
    (filter.agent === null || agentMatchesGlob(record.agent, filter.agent)) &&
    (filter.kind === null || record.kind === filter.kind) &&
    (filter.type === null || record.type === filter.type)
  );
}
