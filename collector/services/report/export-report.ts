/**
 * The report export: writes a `sakshya-report/2` bundle (docs/report-bundle.md,
 * shared/report/bundle-format.ts) for a filter, against one checkpoint of the ledger.
 *
 * `exportReport(deps, { filter, checkpointSize, dir })` writes the bundle's files into an
 * existing empty directory and returns the manifest and its sha256. It records nothing: it is
 * the pure export, the one the benchmark (bench/) calls; ReportService (services/reports.ts)
 * wraps it in a temporary directory and the `report.exported` record. Its result is a function
 * of (filter, checkpoint, ledger) only, so the same request gives byte-identical files every time.
 *
 * Invariants
 * - Flat memory, whatever the records hold: records are streamed once from one read-only
 *   snapshot of the store, in ledger order, into records.jsonl and proofs.jsonl, each parsed
 *   once; its fixed CSV cells and body text are spooled to a temporary file
 *   (report/csv-spool.ts) that becomes records.csv once the field columns are chosen. What is
 *   kept is O(1) per chain (seq bounds and counters), the manifest's gap and dropped lists, a
 *   count per day and a bounded count of body fields (records-csv.ts: at most FIELD_CANDIDATES
 *   pointers of bounded length, however many distinct fields the bodies carry). Inclusion
 *   proofs come from an AscendingInclusionProver (O(log n) memory): consecutive leaves share
 *   most of their path, so a proof costs about two stored-subtree reads.
 * - Every file is hashed while it is written; manifest.json lists them; manifest.jws signs the
 *   exact bytes of manifest.json with the collector's report (receipt) key.
 * - The snapshot sees only ledger entries below the checkpoint's size, and key history,
 *   revocations and gaps are derived from that tree (see ReportSource), so appends made during
 *   or after the export change nothing in it.
 */
import { revocationOfRecord, type LedgerRevocation } from '../../../shared/collector-acts.ts';
import { join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { CompactSign } from 'jose';
import { canonicalBytes, canonicalJson, canonicalJsonOfParsed } from '../../../shared/canonical-json.ts';
import { publicJwkOf, toBase64Url, type SigningKey } from '../../../shared/crypto.ts';
import { AscendingInclusionProver } from '../../../shared/merkle.ts';
import { packageVersion } from '../../../shared/package-version.ts';
import { ProblemError } from '../../../shared/problem.ts';
import type { RecordKind } from '../../../shared/record.ts';
import {
  atInRange,
  BUNDLE_FILES,
  BUNDLE_FORMAT,
  GAP_REASONS,
  GENERATOR_NAME,
  MANIFEST_JWS_TYP,
  recordMatchesFilter,
  TELEMETRY_DROPPED,
  telemetryDroppedBodySchema,
  type DroppedEntry,
  type FileDigest,
  type Gap,
  type GapReason,
  type KeysFile,
  type Manifest,
  type ManifestChain,
  type ReportFilter,
} from '../../../shared/report/bundle-format.ts';
import type { CollectorPublicKeys } from '../../keys.ts';
import { StoreIntegrityError, type CollectorStore, type ReportSource, type SeqRange } from '../../store/store.ts';
import type { DiskFloor } from './disk-floor.ts';
import { HashedFileWriter, writeHashedFile } from './hashed-file.ts';
import { CSV_SPOOL_FILE, CsvSpoolWriter, spooledRows } from './csv-spool.ts';
import { CsvRowBuilder, csvHeader, csvRows, FieldColumnChooser, fixedCells } from './records-csv.ts';
import { silentProgress, type ProgressReporter } from './progress.ts';
import { renderSummaryHtml } from './summary-html.ts';

/** Rows between progress updates and event-loop yields (a server keeps answering during an export). */
const YIELD_EVERY_ROWS = 512;
/** CSV rows stringified per csv-stringify call, unless CSV_CHUNK_CHARS come first. */
const CSV_ROWS_PER_CHUNK = 512;
/** Body text per csv-stringify call: a chunk of 64 KiB bodies stays a few MiB, not 512 of them. */
const CSV_CHUNK_CHARS = 1 << 20;

export interface ReportExportDeps {
  store: Pick<CollectorStore, 'openReport'>;
  origin: string;
  /** The report (receipt) key: signs manifest.jws. */
  reportKey: Pick<SigningKey, 'kid' | 'privateKey'>;
  publicKeys: CollectorPublicKeys;
}

export interface ExportRequest {
  filter: ReportFilter;
  checkpointSize: number;
  /** An existing, empty directory. */
  dir: string;
  progress?: ProgressReporter;
  /**
   * Checked at the start, every YIELD_EVERY_ROWS records, before records.csv and every CSV chunk:
   * below it the export stops with 507 `report.storage_full` (the caller removes its files).
   */
  diskFloor?: { floor: DiskFloor; label: string };
}

export interface ExportResult {
  manifest: Manifest;
  /** hex sha256 of manifest.json. */
  manifestSha256: string;
}

/** Per (agent, epoch), what the streaming pass keeps. */
interface ChainState {
  agent: string;
  epoch: number;
  firstSeq: number;
  lastSeq: number;
  records: number;
  /** Seq ranges between bundle records that are not in the bundle, ascending. */
  holes: SeqRange[];
  dropped: DroppedEntry[];
}

function chainKey(agent: string, epoch: number): string {
  return `${agent}\u0000${epoch}`;
}

/**
 * Writes the bundle of `filter` against the stored checkpoint of `checkpointSize` leaves into
 * `dir` (which MUST exist and be empty). Rejects with ProblemError `request.invalid` if no
 * checkpoint of that size is stored. Records nothing in the COLLECTOR chain (callers do).
 * Used by ReportService and by the export benchmark.
 */
export async function exportReport(
  deps: ReportExportDeps,
  request: ExportRequest,
): Promise<ExportResult> {
  const { filter, checkpointSize, dir } = request;
  const progress = request.progress ?? silentProgress;
  const floor = request.diskFloor;
  const checkRoom = floor ? () => floor.floor.check(dir, floor.label) : async () => {};
  const source = await deps.store.openReport(checkpointSize);
  if (!source) throw new ProblemError('request.invalid', `there is no checkpoint of size ${checkpointSize}`, { checkpointSize });
  const spool = new CsvSpoolWriter(join(dir, CSV_SPOOL_FILE));
  try {
    const files: Partial<Record<keyof Manifest['files'], FileDigest>> = {};
    await checkRoom();
    const pass = await writeRecordsAndProofs(source, filter, dir, spool, progress, checkRoom);
    files['records.jsonl'] = pass.records;
    files['proofs.jsonl'] = pass.proofs;
    files.checkpoint = await writeHashedFile(join(dir, BUNDLE_FILES.checkpoint), source.checkpoint.note);

    const chains = await describeChains(source, filter, pass.chains);
    const keys = await keysFile(source, deps.publicKeys, chains);
    files['keys.json'] = await writeHashedFile(join(dir, BUNDLE_FILES.keys), canonicalBytes(keys));
    await checkRoom();
    files['records.csv'] = await writeCsv(spool, pass.fieldColumns, dir, pass.count, source.checkpoint.size, pass.records.bytes > 0 ? progress : silentProgress, checkRoom);

    const manifestWithoutFiles: Omit<Manifest, 'files'> = {
      format: BUNDLE_FORMAT,
      generator: { name: GENERATOR_NAME, version: packageVersion() },
      origin: deps.origin,
      filter,
      checkpoint: { size: source.checkpoint.size, root: toBase64Url(source.checkpoint.root) },
      counts: { records: pass.count, byKind: pass.byKind, chains: chains.length },
      chains,
    };
    files['summary.html'] = await writeHashedFile(join(dir, BUNDLE_FILES.summary), renderSummaryHtml({ manifest: manifestWithoutFiles, perDay: pass.perDay }));

    const manifest: Manifest = { ...manifestWithoutFiles, files: files as Manifest['files'] };
    const manifestBytes = canonicalBytes(manifest);
    const manifestDigest = await writeHashedFile(join(dir, BUNDLE_FILES.manifest), manifestBytes);
    const jws = await new CompactSign(manifestBytes)
      .setProtectedHeader({ alg: 'EdDSA', kid: deps.reportKey.kid, typ: MANIFEST_JWS_TYP })
      .sign(deps.reportKey.privateKey);
    await writeHashedFile(join(dir, BUNDLE_FILES.manifestJws), jws);
    return { manifest, manifestSha256: manifestDigest.sha256 };
  } finally {
    progress.stop();
    spool.discard();
    await source.close();
  }
}

interface RecordsPass {
  records: FileDigest;
  proofs: FileDigest;
  count: number;
  byKind: { [K in RecordKind]: number };
  chains: Map<string, ChainState>;
  perDay: Map<string, number>;
  /** records.csv's field columns, chosen from the bodies seen. */
  fieldColumns: string[];
}

/**
 * The one pass over the store: records.jsonl and proofs.jsonl, every record's CSV cells into the
 * spool, and everything the manifest needs. Each record is parsed once.
 */
async function writeRecordsAndProofs(
  source: ReportSource,
  filter: ReportFilter,
  dir: string,
  spool: CsvSpoolWriter,
  progress: ProgressReporter,
  checkRoom: () => Promise<void>,
): Promise<RecordsPass> {
  const size = source.checkpoint.size;
  const records = new HashedFileWriter(join(dir, BUNDLE_FILES.records));
  const proofs = new HashedFileWriter(join(dir, BUNDLE_FILES.proofs));
  const prover = new AscendingInclusionProver(size);
  const chains = new Map<string, ChainState>();
  const perDay = new Map<string, number>();
  const byKind: { [K in RecordKind]: number } = { audit: 0, telemetry: 0, agent: 0 };
  const fields = new FieldColumnChooser();
  let count = 0;
  let rows = 0;
  progress.start('records', size);
  try {
    const query = { from: filter.from, to: filter.to, agentPrefix: globPrefix(filter.agent), kind: filter.kind, type: filter.type };
    for await (const row of source.records(query)) {
      if (++rows % YIELD_EVERY_ROWS === 0) {
        progress.update(row.ledgerIndex + 1, count);
        await checkRoom();
        await yieldToEventLoop();
      }
      if (!recordMatchesFilter(row, filter)) continue;
      count++;
      byKind[row.kind]++;
      const day = row.at.slice(0, 10);
      perDay.set(day, (perDay.get(day) ?? 0) + 1);
      const body = (JSON.parse(row.canonical) as { body: { [key: string]: unknown } }).body;
      fields.add(body);
      await spool.add(fixedCells(row), canonicalJsonOfParsed(body));

      const key = chainKey(row.agent, row.epoch);
      let chain = chains.get(key);
      if (!chain) {
        chain = { agent: row.agent, epoch: row.epoch, firstSeq: row.seq, lastSeq: row.seq, records: 0, holes: [], dropped: [] };
        chains.set(key, chain);
      } else {
        // A chain enters the ledger in seq order, so its records arrive here in ascending seq.
        if (row.seq <= chain.lastSeq) throw new StoreIntegrityError(`${row.agent} epoch ${row.epoch} seq ${row.seq} is in the ledger after seq ${chain.lastSeq}`);
        if (row.seq > chain.lastSeq + 1) chain.holes.push({ from: chain.lastSeq + 1, to: row.seq - 1 });
        chain.lastSeq = row.seq;
      }
      chain.records++;
      if (row.kind === TELEMETRY_DROPPED.kind && row.type === TELEMETRY_DROPPED.type) {
        const summary = telemetryDroppedBodySchema.safeParse(body);
        if (summary.success) chain.dropped.push({ seq: row.seq, id: row.id, dropped: summary.data.dropped, firstAt: summary.data.firstAt, lastAt: summary.data.lastAt });
      }

      const path = await proveNext(prover, row.ledgerIndex, row.leafHash, source);
      await records.write(`${row.canonical}\n`);
      await proofs.write(
        `${canonicalJson({ id: row.id, ledgerIndex: row.ledgerIndex, leafHash: toBase64Url(row.leafHash), path: path.map(toBase64Url) })}\n`,
      );
    }
    progress.update(size, count);
    await spool.close();
    return { records: await records.close(), proofs: await proofs.close(), count, byKind, chains, perDay, fieldColumns: fields.columns() };
  } catch (err) {
    records.destroy();
    proofs.destroy();
    throw err;
  }
}

/** The inclusion proof of the next exported leaf: fetches the few subtrees the prover lacks in one read. */
async function proveNext(prover: AscendingInclusionProver, index: number, leafHash: Buffer, source: ReportSource): Promise<Buffer[]> {
  const wanted = prover.missing(index);
  const hashes = wanted.length > 0 ? await source.readSubtrees(wanted) : [];
  let next = 0;
  return prover.proof(
    index,
    (level, at) => {
      const ref = wanted[next];
      const hash = hashes[next++];
      if (!ref || ref.level !== level || ref.index !== at) throw new Error(`proof read node (${level}, ${at}) it did not plan`);
      if (!hash) throw new StoreIntegrityError(`Merkle subtree (level ${level}, index ${at}) is missing from the store`);
      return hash;
    },
    leafHash,
  );
}

/**
 * The manifest's chains: sorted by agent then epoch, each hole classified by reading which seqs
 * the tree holds (a seq the tree has is outside the date range or excluded by kind/type; one it
 * lacks is not in the ledger), consecutive seqs with one reason merged.
 */
async function describeChains(source: ReportSource, filter: ReportFilter, states: Map<string, ChainState>): Promise<ManifestChain[]> {
  const revoked = new Map<string, LedgerRevocation>();
  for (const row of await source.revocationRecords()) {
    const revocation = revocationOfRecord(row.ledgerIndex, row.canonical);
    if (!revocation) throw new StoreIntegrityError(`the agent.revoked record at ledger index ${row.ledgerIndex} does not parse`);
    const key = chainKey(revocation.agent, revocation.epoch);
    if (!revoked.has(key)) revoked.set(key, revocation);
  }
  const sorted = [...states.values()].sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : a.epoch - b.epoch));
  const chains: ManifestChain[] = [];
  for (const state of sorted) {
    const gaps: Gap[] = [];
    const add = (from: number, to: number, reason: GapReason) => {
      const last = gaps[gaps.length - 1];
      if (last && last.reason === reason && last.to + 1 === from) last.to = to;
      else gaps.push({ from, to, reason });
    };
    for (const hole of state.holes) {
      let expected = hole.from;
      for await (const row of source.chainSeqs(state.agent, state.epoch, hole.from, hole.to)) {
        if (row.seq > expected) add(expected, row.seq - 1, GAP_REASONS.notInLedger);
        if (!atInRange(row.at, filter)) add(row.seq, row.seq, GAP_REASONS.outsideDateRange);
        else if ((filter.kind !== null && row.kind !== filter.kind) || (filter.type !== null && row.type !== filter.type)) add(row.seq, row.seq, GAP_REASONS.excludedByFilter);
        else throw new StoreIntegrityError(`${state.agent} epoch ${state.epoch} seq ${row.seq} matches the filter but the export did not read it`);
        expected = row.seq + 1;
      }
      if (expected <= hole.to) add(expected, hole.to, GAP_REASONS.notInLedger);
    }
    chains.push({
      agent: state.agent,
      epoch: state.epoch,
      firstSeq: state.firstSeq,
      lastSeq: state.lastSeq,
      records: state.records,
      gaps,
      dropped: state.dropped,
      ...revocationOf(revoked.get(chainKey(state.agent, state.epoch))),
    });
  }
  return chains;
}

function revocationOf(revoked: LedgerRevocation | undefined): Pick<ManifestChain, 'revokedAt' | 'revokedIndex' | 'supersededBy'> {
  return { revokedAt: revoked?.at ?? null, revokedIndex: revoked?.ledgerIndex ?? null, supersededBy: revoked?.supersededBy ?? null };
}

/** keys.json: the collector's public keys, and per chain its key history up to seq lastSeq + 1. */
async function keysFile(source: ReportSource, publicKeys: CollectorPublicKeys, chains: readonly ManifestChain[]): Promise<KeysFile> {
  const agents: KeysFile['agents'] = [];
  for (const chain of chains) {
    const epoch = await source.agentEpoch(chain.agent, chain.epoch);
    if (!epoch) throw new StoreIntegrityError(`${chain.agent} epoch ${chain.epoch} has records but no enrollment`);
    const keys = (await source.agentKeys(chain.agent, chain.epoch))
      .filter((key) => key.fromSeq <= chain.lastSeq + 1)
      .map((key) => ({ fromSeq: key.fromSeq, kid: key.kid, publicJwk: publicJwkOf(key.publicJwk), addedAt: key.addedAt, reason: key.reason }));
    agents.push({
      agent: chain.agent,
      epoch: chain.epoch,
      enrolledAt: epoch.enrolledAt,
      revokedAt: chain.revokedAt,
      revokedIndex: chain.revokedIndex,
      supersededBy: chain.supersededBy,
      keys,
    });
  }
  const reportKey = publicKeys.jwks.keys[0];
  if (!reportKey) throw new Error('the collector publishes no report key');
  return { collector: { origin: publicKeys.origin, logKey: publicKeys.logKey, reportKey }, agents };
}

/** records.csv from the spool, now that the field columns are chosen. */
async function writeCsv(
  spool: CsvSpoolWriter,
  fieldColumns: readonly string[],
  dir: string,
  total: number,
  ledgerSize: number,
  progress: ProgressReporter,
  checkRoom: () => Promise<void>,
): Promise<FileDigest> {
  const csv = new HashedFileWriter(join(dir, BUNDLE_FILES.csv));
  const rows = new CsvRowBuilder(fieldColumns);
  let pending: string[][] = [];
  let pendingChars = 0;
  let count = 0;
  progress.start('csv', ledgerSize);
  try {
    await csv.write(csvHeader(fieldColumns));
    for await (const { fixed, bodyText } of spooledRows(spool.path)) {
      pending.push(rows.cells(fixed, bodyText));
      pendingChars += bodyText.length;
      count++;
      if (pending.length >= CSV_ROWS_PER_CHUNK || pendingChars >= CSV_CHUNK_CHARS) {
        await csv.write(csvRows(pending));
        pending = [];
        pendingChars = 0;
        progress.update(Number(fixed[0]) + 1, count); // fixed[0]: the ledger index, the unit progress counts in
        await checkRoom();
        await yieldToEventLoop();
      }
    }
    if (pending.length > 0) await csv.write(csvRows(pending));
    if (count !== total) throw new Error(`the CSV spool held ${count} rows, the records pass wrote ${total}`);
    progress.update(ledgerSize, count);
    return await csv.close();
  } catch (err) {
    csv.destroy();
    throw err;
  }
}

/** The literal text an agent glob starts with (before its first `*` or `?`), for the store to narrow by. */
export function globPrefix(glob: string | null): string | null {
  if (glob === null) return null;
  const wildcard = glob.search(/[*?]/);
  const prefix = wildcard === -1 ? glob : glob.slice(0, wildcard);
  return prefix.length === 0 ? null : prefix;
}
