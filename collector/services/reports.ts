/**
 * Report export (issue 5): writes a `sakshya-report/2` bundle (docs/report-bundle.md,
 * shared/report/bundle-format.ts) for a filter, against one checkpoint of the ledger.
 *
 * Public entry points
 * - `exportReport(deps, { filter, checkpointSize, dir })` writes the bundle's files into an
 *   existing empty directory and returns the manifest and its sha256. It records nothing: it is
 *   the pure export, the one the benchmark (bench/) calls. Its result is a function of (filter,
 *   checkpoint, ledger) only, so the same request gives byte-identical files every time.
 * - `ReportService.exportToDirectory` (CLI) and `ReportService.start` (HTTP jobs) wrap it: a
 *   temporary directory next to the target, renamed into place only when complete, and a
 *   `report.exported` record in the COLLECTOR chain (who, filter, checkpoint size, manifest hash).
 *
 * Invariants
 * - Flat memory: records are streamed once from one read-only snapshot of the store, in ledger
 *   order, into records.jsonl and proofs.jsonl, each parsed and flattened once, its CSV cells
 *   spooled to a temporary file (report/csv-spool.ts) that becomes records.csv once the columns
 *   are known; what is kept per record is
 *   O(1) per chain (seq bounds and counters), plus the manifest's gap and dropped lists, the
 *   set of body paths (the CSV columns) and a count per day. Inclusion proofs come from an
 *   AscendingInclusionProver (O(log n) memory): consecutive leaves share most of their path,
 *   so a proof costs about two stored-subtree reads.
 * - Every file is hashed while it is written; manifest.json lists them; manifest.jws signs the
 *   exact bytes of manifest.json with the collector's report (receipt) key.
 * - The snapshot sees only ledger entries below the checkpoint's size, and key history,
 *   revocations and gaps are derived from that tree (see ReportSource), so appends made during
 *   or after the export change nothing in it.
 *
 * On-disk layout (HTTP jobs): `<collector dir>/reports/<id>/sakshya-report/<files>` and
 * `<collector dir>/reports/<id>/bundle.tar.gz`, written under `reports/<id>.partial/` first.
 *
 * Crash behaviour: a crash mid-export leaves only a `*.partial*` directory (never a complete-
 * looking bundle) and, for a job, a `running` row: at the next start `recoverInterrupted` marks
 * such jobs failed and removes their directories. The `report.exported` record is appended only
 * after the bundle is complete (for a job: in the transaction that marks it done), so the
 * COLLECTOR chain never claims an export that does not exist.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { CompactSign } from 'jose';
import { canonicalBytes, canonicalJson } from '../../shared/canonical-json.ts';
import { publicJwkOf, toBase64Url, type SigningKey } from '../../shared/crypto.ts';
import { newId } from '../../shared/ids.ts';
import type { Logger } from '../../shared/logger.ts';
import { AscendingInclusionProver } from '../../shared/merkle.ts';
import { packageVersion } from '../../shared/package-version.ts';
import { ProblemError, problemBody } from '../../shared/problem.ts';
import type { RecordKind } from '../../shared/record.ts';
import {
  ALL_BUNDLE_FILES,
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
} from '../../shared/report/bundle-format.ts';
import { revocationOfRecord, type LedgerRevocation } from '../../shared/collector-acts.ts';
import type { CollectorPublicKeys } from '../keys.ts';
import { StoreIntegrityError, type CollectorStore, type ReportJob, type ReportSource, type SeqRange } from '../store/store.ts';
import type { Actor, HumanPrincipal } from './access.ts';
import { actorOf } from './access.ts';
import type { CollectorChain } from './collector-chain.ts';
import { HashedFileWriter, writeHashedFile } from './report/hashed-file.ts';
import { CSV_SPOOL_FILE, CsvSpoolWriter, spooledCsvRows } from './report/csv-spool.ts';
import { bodyColumns, csvHeader, csvRows, fixedCells, flattenBody } from './report/records-csv.ts';
import { progressReporter, silentProgress, type ProgressReporter } from './report/progress.ts';
import { renderSummaryHtml } from './report/summary-html.ts';
import { TAR_ROOT, writeDeterministicTarGz } from './report/tar-gz.ts';
import type { ReportRequest } from './report/filter-input.ts';

export const REPORT_EXPORTED_TYPE = 'report.exported';
export const REPORTS_DIR_NAME = 'reports';
export const BUNDLE_TAR_GZ = 'bundle.tar.gz';
/** Rows between progress updates and event-loop yields (a server keeps answering during an export). */
const YIELD_EVERY_ROWS = 512;
/** CSV rows stringified per csv-stringify call. */
const CSV_ROWS_PER_CHUNK = 512;

export interface ReportExportDeps {
  store: CollectorStore;
  origin: string;
  /** The report (receipt) key: signs manifest.jws. */
  reportKey: SigningKey;
  publicKeys: CollectorPublicKeys;
  logger: Logger;
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
  request: { filter: ReportFilter; checkpointSize: number; dir: string; progress?: ProgressReporter },
): Promise<ExportResult> {
  const { filter, checkpointSize, dir } = request;
  const progress = request.progress ?? silentProgress;
  const source = await deps.store.openReport(checkpointSize);
  if (!source) throw new ProblemError('request.invalid', `there is no checkpoint of size ${checkpointSize}`, { checkpointSize });
  const spool = new CsvSpoolWriter(join(dir, CSV_SPOOL_FILE));
  try {
    const files: Partial<Record<keyof Manifest['files'], FileDigest>> = {};
    const pass = await writeRecordsAndProofs(source, filter, dir, spool, progress);
    files['records.jsonl'] = pass.records;
    files['proofs.jsonl'] = pass.proofs;
    files.checkpoint = await writeHashedFile(join(dir, BUNDLE_FILES.checkpoint), source.checkpoint.note);

    const chains = await describeChains(source, filter, pass.chains);
    const keys = await keysFile(source, deps.publicKeys, chains);
    files['keys.json'] = await writeHashedFile(join(dir, BUNDLE_FILES.keys), canonicalBytes(keys));
    files['records.csv'] = await writeCsv(spool, dir, pass.count, source.checkpoint.size, pass.records.bytes > 0 ? progress : silentProgress);

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
}

/**
 * The one pass over the store: records.jsonl and proofs.jsonl, every record's CSV cells into the
 * spool, and everything the manifest needs. Each record is parsed and flattened once.
 */
async function writeRecordsAndProofs(source: ReportSource, filter: ReportFilter, dir: string, spool: CsvSpoolWriter, progress: ProgressReporter): Promise<RecordsPass> {
  const size = source.checkpoint.size;
  const records = new HashedFileWriter(join(dir, BUNDLE_FILES.records));
  const proofs = new HashedFileWriter(join(dir, BUNDLE_FILES.proofs));
  const prover = new AscendingInclusionProver(size);
  const chains = new Map<string, ChainState>();
  const perDay = new Map<string, number>();
  const byKind: { [K in RecordKind]: number } = { audit: 0, telemetry: 0, agent: 0 };
  let count = 0;
  let rows = 0;
  progress.start('records', size);
  try {
    for await (const row of source.records(filter)) {
      if (++rows % YIELD_EVERY_ROWS === 0) {
        progress.update(row.ledgerIndex + 1, count);
        await yieldToEventLoop();
      }
      if (!recordMatchesFilter(row, filter)) continue;
      count++;
      byKind[row.kind]++;
      const day = row.at.slice(0, 10);
      perDay.set(day, (perDay.get(day) ?? 0) + 1);
      const body = (JSON.parse(row.canonical) as { body: { [key: string]: unknown } }).body;
      await spool.add(fixedCells(row), flattenBody(body));

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
    return { records: await records.close(), proofs: await proofs.close(), count, byKind, chains, perDay };
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

/** records.csv from the spool, now that the body columns are known. */
async function writeCsv(spool: CsvSpoolWriter, dir: string, total: number, ledgerSize: number, progress: ProgressReporter): Promise<FileDigest> {
  const csv = new HashedFileWriter(join(dir, BUNDLE_FILES.csv));
  const columns = bodyColumns(spool.bodyPaths);
  let pending: string[][] = [];
  let count = 0;
  progress.start('csv', ledgerSize);
  try {
    await csv.write(csvHeader(columns));
    for await (const cells of spooledCsvRows(spool.path, spool.bodyPaths, columns)) {
      pending.push(cells);
      if (++count % CSV_ROWS_PER_CHUNK === 0) {
        await csv.write(csvRows(pending));
        pending = [];
        progress.update(Number(cells[0]) + 1, count); // cells[0]: the ledger index, the unit progress counts in
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

// ---------------------------------------------------------------------------------------------
// Recorded exports: CLI into a directory, HTTP as jobs.

export interface ReportServiceOptions extends ReportExportDeps {
  chain: CollectorChain;
  /** The collector's data directory; job bundles live in `<dir>/reports/<id>/`. */
  collectorDir: string;
  now: () => Date;
}

/** A job as the HTTP API shows it. */
export interface ReportJobView {
  id: string;
  status: ReportJob['status'];
  filter: ReportFilter;
  checkpointSize: number;
  createdAt: string;
  finishedAt: string | null;
  counts?: Manifest['counts'];
  manifestSha256?: string;
  bundleBytes?: number;
  problem?: unknown;
}

export class ReportService {
  readonly #deps: ReportServiceOptions;
  /** The one export job this process runs at a time (see start). */
  #running: Promise<void> | undefined;

  constructor(options: ReportServiceOptions) {
    this.#deps = options;
  }

  get reportsDir(): string {
    return join(this.#deps.collectorDir, REPORTS_DIR_NAME);
  }

  /** The size a request names, or the latest checkpoint's; rejects with `request.invalid` if no such checkpoint is stored. */
  async resolveCheckpointSize(requested: number | undefined): Promise<number> {
    const latest = await this.#deps.store.latestCheckpoint();
    const latestSize = latest?.size ?? 0;
    if (requested === undefined) return latestSize;
    if (requested > latestSize) throw new ProblemError('request.invalid', `checkpoint size ${requested} is beyond the latest checkpoint (size ${latestSize})`, { latestSize });
    if (!(await this.#deps.store.checkpointOfSize(requested))) throw new ProblemError('request.invalid', `there is no checkpoint of size ${requested}`, { latestSize });
    return requested;
  }

  /**
   * CLI export: writes the bundle to `outDir` (absent or an empty directory) through a temporary
   * directory next to it, renamed into place when complete, then records the export.
   */
  async exportToDirectory(request: ReportRequest, outDir: string, actor: Actor, progress?: ProgressReporter): Promise<ExportResult & { checkpointSize: number }> {
    if (existsSync(outDir) && (!statSync(outDir).isDirectory() || readdirSync(outDir).length > 0)) {
      throw new ProblemError('request.invalid', `${outDir} exists and is not an empty directory; give a new or empty --out directory`);
    }
    const checkpointSize = await this.resolveCheckpointSize(request.checkpointSize);
    const parent = dirname(outDir);
    mkdirSync(parent, { recursive: true });
    const temp = join(parent, `.${basename(outDir)}.partial-${randomBytes(6).toString('hex')}`);
    mkdirSync(temp, { mode: 0o755 });
    let result: ExportResult;
    try {
      result = await exportReport(this.#deps, { filter: request.filter, checkpointSize, dir: temp, progress });
      if (existsSync(outDir)) rmdirSync(outDir); // empty, checked above
      renameSync(temp, outDir);
    } catch (err) {
      rmSync(temp, { recursive: true, force: true });
      throw err;
    }
    await this.#deps.store.write((tx) => this.#deps.chain.append(tx, REPORT_EXPORTED_TYPE, exportedBody(actor, request.filter, checkpointSize, result.manifestSha256)));
    return { ...result, checkpointSize };
  }

  /**
   * Marks jobs left `running` by a previous process failed and removes their partial files.
   * MUST run at server start, before `start` is called.
   */
  async recoverInterrupted(): Promise<string[]> {
    const finishedAt = this.#deps.now().toISOString();
    const problem = problemBody('internal.error', 'the collector restarted while this export was running; start it again');
    const ids = await this.#deps.store.write((tx) => tx.failRunningReportJobs({ status: 'failed', finishedAt, problemJson: JSON.stringify(problem) }));
    for (const id of ids) this.#removeJobFiles(id);
    if (ids.length > 0) this.#deps.logger.warn({ jobs: ids }, 'report exports interrupted by a restart were marked failed');
    return ids;
  }

  /**
   * Starts an export job for `principal` and resolves as soon as it is recorded as running.
   * One export runs at a time per process: another start meanwhile is refused with 429
   * `report.busy` (Retry-After), because an export is long, I/O-heavy work on a small server.
   */
  async start(request: ReportRequest, principal: HumanPrincipal): Promise<ReportJobView> {
    if (this.#running) throw new ProblemError('report.busy', 'another report export is running; one runs at a time', {}, 30);
    const checkpointSize = await this.resolveCheckpointSize(request.checkpointSize);
    if (this.#running) throw new ProblemError('report.busy', 'another report export is running; one runs at a time', {}, 30);
    const job: ReportJob = {
      id: newId(),
      status: 'running',
      owner: principal.tokenId,
      actor: actorOf(principal),
      filterJson: canonicalJson(request.filter),
      checkpointSize,
      createdAt: this.#deps.now().toISOString(),
      finishedAt: null,
      countsJson: null,
      manifestSha256: null,
      bundleBytes: null,
      problemJson: null,
    };
    // Claim the slot before the first await so two concurrent starts cannot both pass.
    let release!: () => void;
    this.#running = new Promise<void>((resolve) => (release = resolve));
    try {
      await this.#deps.store.write((tx) => tx.putReportJob(job));
    } catch (err) {
      this.#running = undefined;
      release();
      throw err;
    }
    void this.#run(job, request.filter).finally(() => {
      this.#running = undefined;
      release();
    });
    return viewOf(job);
  }

  /** Resolves when the running job (if any) has ended; for tests and shutdown. */
  async idle(): Promise<void> {
    await this.#running;
  }

  async #run(job: ReportJob, filter: ReportFilter): Promise<void> {
    const log = this.#deps.logger.child({ reportJob: job.id });
    const partial = join(this.reportsDir, `${job.id}.partial`);
    try {
      const bundleDir = join(partial, TAR_ROOT);
      mkdirSync(bundleDir, { recursive: true, mode: 0o700 });
      const started = Date.now();
      const result = await exportReport(this.#deps, { filter, checkpointSize: job.checkpointSize, dir: bundleDir, progress: progressFor(log) });
      const tarPath = join(partial, BUNDLE_TAR_GZ);
      await writeDeterministicTarGz(bundleDir, ALL_BUNDLE_FILES, tarPath);
      const bundleBytes = statSync(tarPath).size;
      renameSync(partial, join(this.reportsDir, job.id));
      await this.#deps.store.write(async (tx) => {
        const finishedAt = this.#deps.now().toISOString();
        const ended = await tx.finishReportJob(job.id, {
          status: 'done',
          finishedAt,
          countsJson: JSON.stringify(result.manifest.counts),
          manifestSha256: result.manifestSha256,
          bundleBytes,
        });
        if (!ended) throw new Error(`report job ${job.id} is no longer running`);
        await this.#deps.chain.append(tx, REPORT_EXPORTED_TYPE, exportedBody(job.actor, filter, job.checkpointSize, result.manifestSha256));
      });
      log.info({ records: result.manifest.counts.records, bundleBytes, ms: Date.now() - started }, 'report export done');
    } catch (err) {
      log.error({ err }, 'report export failed');
      this.#removeJobFiles(job.id);
      const problem = err instanceof ProblemError ? err.toBody() : problemBody('internal.error', 'the export failed; the collector log has the cause');
      try {
        await this.#deps.store.write((tx) => tx.finishReportJob(job.id, { status: 'failed', finishedAt: this.#deps.now().toISOString(), problemJson: JSON.stringify(problem) }));
      } catch (markErr) {
        log.error({ err: markErr }, 'could not mark the report job failed; the next start will');
      }
    }
  }

  #removeJobFiles(id: string): void {
    for (const path of [join(this.reportsDir, `${id}.partial`), join(this.reportsDir, id)]) rmSync(path, { recursive: true, force: true });
  }

  /** The job, if `principal` started it; `resource.not_found` otherwise (another auditor's job is not revealed). */
  async status(id: string, principal: HumanPrincipal): Promise<ReportJobView> {
    return viewOf(await this.#ownedJob(id, principal));
  }

  /** The finished bundle's tar.gz; `report.not_ready` while running or after a failure. */
  async bundle(id: string, principal: HumanPrincipal): Promise<{ path: string; bytes: number; fileName: string }> {
    const job = await this.#ownedJob(id, principal);
    if (job.status !== 'done') throw new ProblemError('report.not_ready', `report ${id} is ${job.status}`, { status: job.status });
    const path = join(this.reportsDir, id, BUNDLE_TAR_GZ);
    if (!existsSync(path)) throw new ProblemError('resource.not_found', `the bundle of report ${id} is no longer on the collector`);
    return { path, bytes: statSync(path).size, fileName: `sakshya-report-${job.checkpointSize}-${id}.tar.gz` };
  }

  async #ownedJob(id: string, principal: HumanPrincipal): Promise<ReportJob> {
    const job = await this.#deps.store.findReportJob(id);
    if (!job || job.owner !== principal.tokenId) throw new ProblemError('resource.not_found', `there is no report ${id} of yours`);
    return job;
  }
}

/** The body of the `report.exported` record: who, what and the manifest's hash. Never a secret. */
export function exportedBody(actor: Actor, filter: ReportFilter, checkpointSize: number, manifestSha256: string): { [key: string]: unknown } {
  return { by: actor, filter, checkpointSize, manifestSha256 };
}

function viewOf(job: ReportJob): ReportJobView {
  const view: ReportJobView = {
    id: job.id,
    status: job.status,
    filter: JSON.parse(job.filterJson) as ReportFilter,
    checkpointSize: job.checkpointSize,
    createdAt: job.createdAt,
    finishedAt: job.finishedAt,
  };
  if (job.status === 'done') {
    view.counts = JSON.parse(job.countsJson!) as Manifest['counts'];
    view.manifestSha256 = job.manifestSha256!;
    view.bundleBytes = job.bundleBytes!;
  }
  if (job.status === 'failed') view.problem = JSON.parse(job.problemJson!);
  return view;
}

/** Server jobs log progress lines: there is no terminal. */
function progressFor(logger: Logger): ProgressReporter {
  return progressReporter({ logger, tty: false });
}
