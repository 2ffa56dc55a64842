/**
 * Whether `batchSchema` accepts a parsed batch — answered without building anything.
 *
 * Why: zod returns a validated copy, and on the collector that copy is made for every field of
 * every record of every batch; with its per-field bookkeeping it cost a batch-check worker
 * about a sixth as much CPU as the signature checks, most of it garbage to collect
 * (docs/perf/2026-11-benchmark-history.md). A batch an agent sends is nearly always valid, so
 * the worker asks this first and takes the parsed value as it is; only when this says no does it
 * run `batchSchema`, which stays the one authority on what is valid and says what is wrong.
 *
 * Contract: `acceptsBatch(x)` ⇒ `batchSchema.safeParse(x)` succeeds with data deep-equal to x.
 * The string formats are zod's own patterns, taken from the schemas; property tests
 * (test/unit/shared/batch-accept.test.ts) hold the two equal, both ways, on valid batches and on
 * every kind of damage.
 */
import { GENESIS_PREV, RECORD_KINDS, RECORD_TYPE_PATTERN, AGENT_ID_PATTERN } from './record.ts';
import { AGENT_VERSION_PATTERN, base64urlPattern, batchSchema, isoInstantSchema, isRecordBody, MAX_RECORDS_PER_BATCH, recordSchema, type Batch } from './protocol.ts';

function zodPattern(schema: { _zod: { pattern?: RegExp } }, name: string): RegExp {
  const pattern = schema._zod.pattern;
  if (!(pattern instanceof RegExp)) throw new Error(`zod no longer exposes the ${name} pattern: batch-accept.ts must be revisited`);
  return pattern;
}

const UUID = zodPattern(batchSchema.shape.batchId, 'uuid');
const UUID_V7 = zodPattern(recordSchema.shape.id, 'uuidv7');
const ISO_INSTANT = zodPattern(isoInstantSchema, 'iso datetime');
const SHA256_B64 = base64urlPattern(32);
const SIGNATURE_B64 = base64urlPattern(64);
const MAX_TYPE_LENGTH = 128;

const RECORD_KEYS = new Set(['v', 'id', 'agent', 'epoch', 'seq', 'prev', 'kind', 'type', 'at', 'body', 'kid', 'sig']);
const BATCH_KEYS = new Set(['batchId', 'agent', 'epoch', 'records', 'backlog', 'witness', 'agentVersion']);
const BACKLOG_KEYS = new Set(['pending', 'oldestAt']);
const WITNESS_KEYS = new Set(['size', 'root']);
const KINDS: ReadonlySet<unknown> = new Set(RECORD_KINDS);

type Plain = { [key: string]: unknown };

function isPlainObject(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Own enumerable keys all in `allowed`, and exactly `required` of them present (all of `allowed` minus optional ones). */
function hasOnlyKeys(object: Plain, allowed: ReadonlySet<string>, optional: readonly string[] = []): boolean {
  let count = 0;
  for (const key in object) {
    if (!Object.hasOwn(object, key) || !allowed.has(key)) return false;
    count++;
  }
  let present = count;
  for (const key of optional) if (Object.hasOwn(object, key)) present--;
  return present === allowed.size - optional.length;
}

function isString(value: unknown, pattern: RegExp): value is string {
  return typeof value === 'string' && pattern.test(value);
}

/** zod's `int()`: a safe integer; with the bounds of the schema. */
function isInteger(value: unknown, min: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min;
}

function acceptsRecord(record: unknown, agent: string, epoch: number, seq: number): boolean {
  if (!isPlainObject(record) || !hasOnlyKeys(record, RECORD_KEYS)) return false;
  return (
    record.v === 1 &&
    isString(record.id, UUID_V7) &&
    record.agent === agent &&
    record.epoch === epoch &&
    isInteger(record.seq, 1) &&
    record.seq === seq &&
    isString(record.prev, SHA256_B64) &&
    (seq !== 1 || record.prev === GENESIS_PREV) &&
    KINDS.has(record.kind) &&
    typeof record.type === 'string' &&
    record.type.length <= MAX_TYPE_LENGTH &&
    RECORD_TYPE_PATTERN.test(record.type) &&
    isString(record.at, ISO_INSTANT) &&
    isRecordBody(record.body) &&
    isString(record.kid, SHA256_B64) &&
    isString(record.sig, SIGNATURE_B64)
  );
}

/** True only if `batchSchema` accepts `value` and returns it unchanged; false: ask `batchSchema`. */
export function acceptsBatch(value: unknown): value is Batch {
  if (!isPlainObject(value) || !hasOnlyKeys(value, BATCH_KEYS, ['witness', 'agentVersion'])) return false;
  const { batchId, agent, epoch, records, backlog, witness, agentVersion } = value;
  if (!isString(batchId, UUID) || !isString(agent, AGENT_ID_PATTERN) || !isInteger(epoch, 1)) return false;
  if (!isPlainObject(backlog) || !hasOnlyKeys(backlog, BACKLOG_KEYS) || !isInteger(backlog.pending, 0)) return false;
  if (backlog.oldestAt !== null && !isString(backlog.oldestAt, ISO_INSTANT)) return false;
  if (witness !== undefined && (!isPlainObject(witness) || !hasOnlyKeys(witness, WITNESS_KEYS) || !isInteger(witness.size, 0) || !isString(witness.root, SHA256_B64))) {
    return false;
  }
  if (agentVersion !== undefined && !isString(agentVersion, AGENT_VERSION_PATTERN)) return false;
  if (!Array.isArray(records) || records.length < 1 || records.length > MAX_RECORDS_PER_BATCH) return false;
  const first = records[0] as Plain | undefined;
  if (!isPlainObject(first) || !isInteger(first.seq, 1)) return false;
  for (let i = 0; i < records.length; i++) {
    // Contiguous seqs from the first, each an integer ≥ 1 (the first is checked above).
    if (!acceptsRecord(records[i], agent, epoch, first.seq + i)) return false;
  }
  return true;
}
