/**
 * Recorded report exports: the CLI's into a directory, the HTTP API's as jobs. Both
 * run `exportReport` (report/export-report.ts) in a worker thread (report/export-pool.ts) into
 * a temporary directory next to the target, renamed into place only when complete, then append
 * a `report.exported` record to the COLLECTOR chain (who, filter, checkpoint size, manifest hash).
 *
 * Limits (docs/operations-collector.md): one export at a time (429 `report.busy`); none that would start
 * below the disk floor, SAKSHYA_REPORT_MIN_FREE_BYTES (507 `report.storage_full`, nothing
 * created), and a running one stops if it reaches the floor; job bundles are deleted
 * SAKSHYA_REPORT_RETENTION after they were made (report/retention.ts, 410 `report.expired`).
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
import cron, { type ScheduledTask } from 'node-cron';
import type { ReportJobView } from '../../shared/api-schemas.ts';
import { canonicalJson } from '../../shared/canonical-json.ts';
import { newId } from '../../shared/ids.ts';
import type { Logger } from '../../shared/logger.ts';
import { ProblemError, problemBody } from '../../shared/problem.ts';
import type { Manifest, ReportFilter } from '../../shared/report/bundle-format.ts';
import type { CollectorStore, ReportJob } from '../store/store.ts';
import type { Actor, HumanPrincipal } from './access.ts';
import { actorOf } from './access.ts';
import type { CollectorChain } from './collector-chain.ts';
import { DiskFloor } from './report/disk-floor.ts';
import type { ReportExportPool } from './report/export-pool.ts';
import type { ExportResult } from './report/export-report.ts';
import { progressReporter, type ProgressReporter } from './report/progress.ts';
import { REPORT_SWEEP_CRON, sweepReports, type SweepResult } from './report/retention.ts';
import { TAR_ROOT } from './report/tar-gz.ts';
import type { ReportRequest } from './report/filter-input.ts';

export const REPORT_EXPORTED_TYPE = 'report.exported';
export const REPORTS_DIR_NAME = 'reports';
export const BUNDLE_TAR_GZ = 'bundle.tar.gz';

export interface ReportServiceOptions {
  store: CollectorStore;
  chain: CollectorChain;
  /** Runs the exports (in a worker thread). */
  exporter: Pick<ReportExportPool, 'run' | 'close'>;
  /** The collector's data directory; job bundles live in `<dir>/reports/<id>/`. */
  collectorDir: string;
  /** SAKSHYA_REPORT_RETENTION: how long a job's bundle is kept after it finished. */
  retentionMs: number;
  /** SAKSHYA_REPORT_MIN_FREE_BYTES: the free space no export takes the disk below. */
  minFreeBytes: number;
  /** SAKSHYA_COLLECTOR_REPLICA: this process's name among replicas; its jobs' bundles are on its disk. */
  replica: string;
  logger: Logger;
  now: () => Date;
}

/** How a disk-floor problem names the reports directory to an HTTP caller (who is not told server paths). */
const REPORTS_FLOOR_LABEL = "the collector's reports directory";

/** A job as the HTTP API shows it (its schema: shared/api-schemas.ts). */
export type { ReportJobView };

export class ReportService {
  readonly #deps: ReportServiceOptions;
  readonly #floor: DiskFloor;
  /** The one export job this process runs at a time (see start). */
  #running: Promise<void> | undefined;
  #sweeps: ScheduledTask | undefined;

  constructor(options: ReportServiceOptions) {
    this.#deps = options;
    this.#floor = new DiskFloor(options.minFreeBytes);
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
    await this.#floor.check(parent, parent);
    mkdirSync(parent, { recursive: true });
    const temp = join(parent, `.${basename(outDir)}.partial-${randomBytes(6).toString('hex')}`);
    mkdirSync(temp, { mode: 0o755 });
    let result: ExportResult;
    try {
      result = await this.#deps.exporter.run({ filter: request.filter, checkpointSize, dir: temp, floorLabel: parent }, progress);
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
    const ids = await this.#deps.store.write((tx) => tx.failRunningReportJobs({ status: 'failed', finishedAt, problemJson: JSON.stringify(problem) }, this.#deps.replica));
    for (const id of ids) this.#removeJobFiles(id);
    if (ids.length > 0) this.#deps.logger.warn({ jobs: ids }, 'report exports interrupted by a restart were marked failed');
    return ids;
  }

  /**
   * Deletes the bundles of jobs that finished more than the retention period ago, and what
   * crashes left in `reports/` (report/retention.ts). The server runs it at start and every
   * few minutes (`scheduleSweeps`).
   */
  async sweep(): Promise<SweepResult> {
    return sweepReports({ store: this.#deps.store, reportsDir: this.reportsDir, retentionMs: this.#deps.retentionMs, now: this.#deps.now, logger: this.#deps.logger });
  }

  /** Runs `sweep` on REPORT_SWEEP_CRON until `close`. For the server only: it owns `reports/`. */
  scheduleSweeps(): void {
    this.#sweeps ??= cron.schedule(
      REPORT_SWEEP_CRON,
      async () => {
        try {
          await this.sweep();
        } catch (err) {
          this.#deps.logger.error({ err }, 'the report retention sweep failed; the next one tries again');
        }
      },
      { name: 'report-retention', noOverlap: true },
    );
  }

  /** Stops the sweeps and the export worker; a running export is abandoned (its job fails at the next start). */
  async close(): Promise<void> {
    await this.#sweeps?.stop();
    this.#sweeps = undefined;
    await this.#deps.exporter.close();
  }

  /**
   * Starts an export job for `principal` and resolves as soon as it is recorded as running.
   * One export runs at a time per process: another start meanwhile is refused with 429
   * `report.busy` (Retry-After), because an export is long, I/O-heavy work on a small server.
   * Below the disk floor it is refused with 507 `report.storage_full`, and nothing is created.
   */
  async start(request: ReportRequest, principal: HumanPrincipal): Promise<ReportJobView> {
    if (this.#running) throw new ProblemError('report.busy', 'another report export is running; one runs at a time', {}, 30);
    const checkpointSize = await this.resolveCheckpointSize(request.checkpointSize);
    await this.#floor.check(this.reportsDir, REPORTS_FLOOR_LABEL);
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
      expiredAt: null,
      replica: this.#deps.replica,
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
      const tarGzPath = join(partial, BUNDLE_TAR_GZ);
      const result = await this.#deps.exporter.run({ filter, checkpointSize: job.checkpointSize, dir: bundleDir, tarGzPath, floorLabel: REPORTS_FLOOR_LABEL }, progressFor(log));
      const bundleBytes = result.bundleBytes ?? statSync(tarGzPath).size;
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

  /** The finished bundle's tar.gz; `report.not_ready` while running or after a failure, `report.expired` once deleted. */
  async bundle(id: string, principal: HumanPrincipal): Promise<{ path: string; bytes: number; fileName: string }> {
    const job = await this.#ownedJob(id, principal);
    if (job.status === 'expired') {
      throw new ProblemError('report.expired', `the bundle of report ${id} was deleted at ${job.expiredAt}, after the collector's retention period; export it again`, { expiredAt: job.expiredAt });
    }
    if (job.status !== 'done') throw new ProblemError('report.not_ready', `report ${id} is ${job.status}`, { status: job.status });
    const path = join(this.reportsDir, id, BUNDLE_TAR_GZ);
    if (!existsSync(path)) {
      // Another replica made it and keeps it on its own disk (replicas share the job, not the
      // file, unless their reports/ directories are one shared volume).
      if (job.replica !== null && job.replica !== this.#deps.replica) {
        throw new ProblemError('report.elsewhere', `the bundle of report ${id} is kept by collector replica ${job.replica}; fetch it from that replica`, { replica: job.replica });
      }
      throw new ProblemError('resource.not_found', `the bundle of report ${id} is no longer on the collector`);
    }
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
  if (job.status === 'done' || job.status === 'expired') {
    view.counts = JSON.parse(job.countsJson!) as Manifest['counts'];
    view.manifestSha256 = job.manifestSha256!;
    view.bundleBytes = job.bundleBytes!;
  }
  if (job.status === 'expired') view.expiredAt = job.expiredAt!;
  if (job.status === 'failed') view.problem = JSON.parse(job.problemJson!);
  return view;
}

/** Server jobs log progress lines: there is no terminal. */
function progressFor(logger: Logger): ProgressReporter {
  return progressReporter({ logger, tty: false });
}
