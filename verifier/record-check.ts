/**
 * The per-record checks of a bundle (spec check 4), as a pure function over a chunk of lines:
 * it runs in a worker thread (record-worker.ts) or, for small bundles, inline. For each pair of
 * lines (records.jsonl, proofs.jsonl) it checks:
 * - the record line is a record v1 whose RFC 8785 form is exactly the line's bytes, its `kid` is
 *   the key keys.json says was valid at its (agent, epoch, seq) — the key with the highest
 *   `fromSeq` ≤ seq — and its Ed25519 signature verifies with that key: the re-check every
 *   verifier shares (shared/record-check.ts, shared/key-history.ts);
 * - a key.rotated record names a valid new key (shared/key-history.ts `applyKeyRotation`, over
 *   the keys keys.json gives its epoch up to its seq);
 * - it matches the manifest's filter;
 * - the proof line is canonical, names the same id, carries the RFC 9162 leaf hash of the record
 *   line's bytes, and its inclusion path leads to the checkpoint's root at its ledger index.
 *
 * Everything that needs order across records (ledger indexes ascending, chain links, gaps) is
 * the main thread's job (chain-tracker.ts); each record's summary carries what it needs.
 *
 * Lines are passed as bytes, not strings, because the leaf hash and the canonical check are over
 * the exact bytes in the file: a decoded string would hide invalid UTF-8.
 */
import { canonicalBytes } from '../shared/canonical-json.ts';
import { fromBase64Url } from '../shared/crypto.ts';
import { applyKeyRotation, KeyHistory, KeyRotationError } from '../shared/key-history.ts';
import { isKeyRotationRecord } from '../shared/key-rotation.ts';
import { leafHash, verifyInclusion } from '../shared/merkle.ts';
import { describeZodError } from '../shared/protocol.ts';
import { checkStoredRecord } from '../shared/record-check.ts';
import {
  BUNDLE_FILES,
  proofLineSchema,
  recordMatchesFilter,
  TELEMETRY_DROPPED,
  telemetryDroppedBodySchema,
  type ReportFilter,
} from '../shared/report/bundle-format.ts';
import type { BundleProblem } from './problems.ts';

/** One key period of one chain, as plain data (it crosses to worker threads). */
export interface KeyPeriodData {
  epoch: number;
  fromSeq: number;
  kid: string;
  x: string;
}

/** What every chunk is checked against; the same for the whole bundle. */
export interface RecordCheckContext {
  /** Key periods per agent id, from keys.json. */
  keys: { [agent: string]: KeyPeriodData[] };
  checkpointSize: number;
  /** Root hash of the checkpoint, base64url. */
  checkpointRoot: string;
  filter: ReportFilter;
}

export interface RecordChunk {
  /** Line number (1-based) of the chunk's first line, in both files. */
  firstLine: number;
  /** records.jsonl lines, each with its `\n` (the last may lack it: `recordsLastUnterminated`). */
  records: Uint8Array;
  /** proofs.jsonl lines, the same count (or fewer, at the end of a short proofs file). */
  proofs: Uint8Array;
  count: number;
}

/** What the main thread needs of each record for the checks across records. */
export interface RecordSummary {
  line: number;
  /** False when the line is not a readable record: the cross-record checks skip it. */
  parsed: boolean;
  id?: string;
  agent?: string;
  epoch?: number;
  seq?: number;
  prev?: string;
  kind?: string;
  /** base64url sha256 of the record line: the `prev` of the next record of its chain. */
  hash?: string;
  /** From the proof line, when it is readable. */
  ledgerIndex?: number;
  /** For telemetry.dropped records. */
  dropped?: { dropped: number; firstAt: string; lastAt: string };
  /** For key.rotated records: the kid it names. */
  rotatedTo?: string;
  /** Number of problems found in this record (they are in the chunk result). */
  problems: number;
}

export interface ChunkResult {
  records: RecordSummary[];
  problems: BundleProblem[];
}

interface PreparedContext {
  histories: Map<string, KeyHistory>;
  size: number;
  root: Buffer;
  filter: ReportFilter;
}

const prepared = new WeakMap<RecordCheckContext, PreparedContext>();

/** Builds KeyObjects once per context, not once per record: parsing a key costs more than a verify. */
function prepare(context: RecordCheckContext): PreparedContext {
  let ready = prepared.get(context);
  if (ready) return ready;
  const histories = new Map<string, KeyHistory>();
  for (const [agent, periods] of Object.entries(context.keys)) {
    const history = new KeyHistory();
    for (const period of periods) history.add(period.epoch, period.fromSeq, { kty: 'OKP', crv: 'Ed25519', x: period.x });
    histories.set(agent, history);
  }
  ready = { histories, size: context.checkpointSize, root: fromBase64Url(context.checkpointRoot), filter: context.filter };
  prepared.set(context, ready);
  return ready;
}

const NEWLINE = 0x0a;

/** Splits a buffer of `\n`-terminated lines; the terminators are not part of the lines. */
function splitLines(bytes: Uint8Array, count: number): Buffer[] {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lines: Buffer[] = [];
  let start = 0;
  while (lines.length < count && start < buffer.length) {
    let end = buffer.indexOf(NEWLINE, start);
    if (end < 0) end = buffer.length;
    lines.push(buffer.subarray(start, end));
    start = end + 1;
  }
  return lines;
}

function parseJson(bytes: Buffer): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, value: JSON.parse(bytes.toString('utf8')) };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

function isCanonical(value: unknown, bytes: Buffer): boolean {
  try {
    return canonicalBytes(value).equals(bytes);
  } catch {
    return false;
  }
}

export function checkRecordChunk(context: RecordCheckContext, chunk: RecordChunk): ChunkResult {
  const ready = prepare(context);
  const recordLines = splitLines(chunk.records, chunk.count);
  const proofLines = splitLines(chunk.proofs, chunk.count);
  const summaries: RecordSummary[] = [];
  const problems: BundleProblem[] = [];
  for (let i = 0; i < recordLines.length; i++) {
    const summary = checkOne(ready, chunk.firstLine + i, recordLines[i]!, proofLines[i], problems);
    summaries.push(summary);
  }
  return { records: summaries, problems };
}

function checkOne(ready: PreparedContext, line: number, bytes: Buffer, proofBytes: Buffer | undefined, problems: BundleProblem[]): RecordSummary {
  const summary: RecordSummary = { line, parsed: false, problems: 0 };
  const report = (problem: BundleProblem): void => {
    summary.problems++;
    problems.push(problem);
  };
  const RECORDS = BUNDLE_FILES.records;

  const checked = checkStoredRecord({
    text: bytes,
    expect: (record) => ({ key: ready.histories.get(record.agent)?.keyFor(record.epoch, record.seq) ?? null }),
  });
  const { record, findings } = checked;
  const notJson = findings.find((finding) => finding.code === 'not_json');
  if (notJson) {
    report({ check: 'record.unreadable', file: RECORDS, line, message: `the line is not JSON: ${notJson.reason}` });
    return summary;
  }
  if (!record) {
    const id = (checked.json as { id?: unknown } | null)?.id;
    const notRecord = findings.find((finding) => finding.code === 'not_record');
    report({
      check: 'record.invalid',
      file: RECORDS,
      line,
      ...(typeof id === 'string' ? { id } : {}),
      message: `not a valid record v1: ${notRecord ? describeZodError(notRecord.error) : ''}`,
    });
    return summary;
  }
  const where = { file: RECORDS, line, id: record.id, agent: record.agent, epoch: record.epoch, seq: record.seq };
  Object.assign(summary, {
    parsed: true,
    id: record.id,
    agent: record.agent,
    epoch: record.epoch,
    seq: record.seq,
    prev: record.prev,
    kind: record.kind,
    hash: checked.hash,
  });

  for (const finding of findings) {
    switch (finding.code) {
      case 'not_canonical':
        report({ ...where, check: 'record.not_canonical', message: 'the line is not the RFC 8785 (JCS) form of the record, so it is not the stored record byte for byte' });
        break;
      case 'no_key':
        report({ ...where, check: 'record.no_key', message: `keys.json has no key for ${record.agent} epoch ${record.epoch} at seq ${record.seq}` });
        break;
      case 'kid':
        report({ ...where, check: 'record.kid_mismatch', expected: finding.expected, found: finding.found, message: 'the record names a different key than keys.json says was valid at its seq' });
        break;
      case 'signature':
        report({ ...where, check: 'record.bad_signature', expected: finding.kid, message: `the signature does not verify with the agent key valid at seq ${record.seq}` });
        break;
      default:
        break; // not asked for: no stored hash, columns or prev (chain-tracker.ts links records)
    }
  }

  if (!recordMatchesFilter(record, ready.filter)) {
    report({ ...where, check: 'record.outside_filter', message: `the record (at ${record.at}, kind ${record.kind}, type ${record.type}) does not match the manifest's filter` });
  }

  if (record.kind === TELEMETRY_DROPPED.kind && record.type === TELEMETRY_DROPPED.type) {
    const body = telemetryDroppedBodySchema.safeParse(record.body);
    if (body.success) summary.dropped = { dropped: body.data.dropped, firstAt: body.data.firstAt, lastAt: body.data.lastAt };
    else report({ ...where, check: 'record.dropped_body', message: `telemetry.dropped body: ${describeZodError(body.error)}` });
  }
  if (isKeyRotationRecord(record)) {
    // The rule the collector and the agent apply (ADR 0006), over the keys keys.json gives the
    // epoch up to this seq; that keys.json then names the new key is chain-tracker.ts's check.
    const before = (ready.histories.get(record.agent)?.keys(record.epoch) ?? []).filter((key) => key.fromSeq <= record.seq);
    try {
      summary.rotatedTo = applyKeyRotation(before, record).at(-1)!.kid;
    } catch (err) {
      if (!(err instanceof KeyRotationError)) throw err;
      report({ ...where, check: 'record.bad_rotation', message: err.message });
    }
  }

  checkProof(ready, where, bytes, proofBytes, summary, report);
  return summary;
}

function checkProof(
  ready: PreparedContext,
  where: { line: number; id: string; agent: string; epoch: number; seq: number },
  recordBytes: Buffer,
  proofBytes: Buffer | undefined,
  summary: RecordSummary,
  report: (problem: BundleProblem) => void,
): void {
  const PROOFS = BUNDLE_FILES.proofs;
  const at = { ...where, file: PROOFS };
  if (proofBytes === undefined) return; // the missing line is reported once, by the reader
  const json = parseJson(proofBytes);
  if (!json.ok) {
    report({ ...at, check: 'proof.unreadable', message: `the line is not JSON: ${json.reason}` });
    return;
  }
  const parsed = proofLineSchema.safeParse(json.value);
  if (!parsed.success) {
    report({ ...at, check: 'proof.invalid', message: `not a valid proof line: ${describeZodError(parsed.error)}` });
    return;
  }
  const proof = parsed.data;
  summary.ledgerIndex = proof.ledgerIndex;
  if (!isCanonical(json.value, proofBytes)) {
    report({ ...at, check: 'proof.not_canonical', message: 'the line is not the RFC 8785 (JCS) form of the proof' });
  }
  if (proof.id !== where.id) {
    report({ ...at, check: 'proof.id_mismatch', expected: where.id, found: proof.id, message: 'the proof line is for a different record than the record line with the same number' });
  }
  const leaf = leafHash(recordBytes);
  if (!leaf.equals(fromBase64Url(proof.leafHash))) {
    report({ ...at, check: 'proof.leaf_mismatch', expected: leaf.toString('base64url'), found: proof.leafHash, message: "the proof's leaf hash is not the RFC 9162 leaf hash of the record line" });
  }
  if (proof.ledgerIndex >= ready.size) {
    report({ ...at, check: 'proof.index_beyond_checkpoint', expected: `< ${ready.size}`, found: proof.ledgerIndex, message: 'the ledger index is not in the tree of the checkpoint' });
    return;
  }
  try {
    // Against the leaf of the record's own bytes: a proof of some other leaf proves nothing here.
    verifyInclusion(leaf, proof.ledgerIndex, ready.size, proof.path.map(fromBase64Url), ready.root);
  } catch (err) {
    report({ ...at, check: 'proof.inclusion_failed', message: `the record is not proven to be in the checkpoint's tree at ledger index ${proof.ledgerIndex}: ${(err as Error).message}` });
  }
}

