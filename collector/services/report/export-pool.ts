/**
 * Report exports off the event loop: one worker thread (piscina, export-worker.ts) runs each
 * export, started when an export begins and gone 30 s after the last one ends, so an idle
 * collector holds no export thread. The service runs one export at a time (429 `report.busy`);
 * the pool has one thread to match.
 *
 * The worker's heap is capped: the exporter's memory is bounded whatever the records hold
 * (export-report.ts), and if that ever failed, the worker — not the collector — would run out
 * of memory, and the job would fail with a 500 problem while the collector kept serving.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { SigningKey } from '../../../shared/crypto.ts';
import { ProblemError } from '../../../shared/problem.ts';
import type { ReportFilter } from '../../../shared/report/bundle-format.ts';
import type { CollectorPublicKeys } from '../../keys.ts';
import type { DatabaseConnection } from '../../store/open-store.ts';
import { StoreIntegrityError, StoreUnavailableError } from '../../store/store.ts';
import type { ExportResult } from './export-report.ts';
import type { ExportOutcome, ExportTask, ProgressMessage, TransportedError } from './export-worker.ts';
import { silentProgress, type ProgressReporter } from './progress.ts';

/** The worker file next to this one, with this file's extension (.ts from source, .js from dist/). */
const WORKER_URL = new URL(`./export-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
/**
 * Old-space cap of the export worker. An export's heap stays in the tens of MiB (docs/report-bundle.md);
 * the cap is a safety net far above that, not a tuning knob.
 */
export const EXPORT_WORKER_OLD_GENERATION_MB = 256;
/** As in the batch-check pool: a small young generation keeps the resident set down at little CPU cost. */
const EXPORT_WORKER_YOUNG_GENERATION_MB = 16;
const IDLE_TIMEOUT_MS = 30_000;

export interface ReportExportPoolOptions {
  database: DatabaseConnection;
  origin: string;
  reportKey: SigningKey;
  publicKeys: CollectorPublicKeys;
  /** SAKSHYA_REPORT_MIN_FREE_BYTES: checked while the export writes. */
  minFreeBytes: number;
}

export interface ExportJob {
  filter: ReportFilter;
  checkpointSize: number;
  /** An existing, empty directory. */
  dir: string;
  /** Also write the bundle as a tar.gz here (HTTP jobs). */
  tarGzPath?: string;
  /** How a disk-floor problem names the place. */
  floorLabel: string;
}

export class ReportExportPool {
  readonly #options: ReportExportPoolOptions;
  #pool: Piscina<ExportTask, ExportOutcome> | undefined;

  constructor(options: ReportExportPoolOptions) {
    this.#options = options;
  }

  /** Runs one export in the worker; rejects with the error the export met (a ProblemError for the caller's problems). */
  async run(job: ExportJob, progress: ProgressReporter = silentProgress): Promise<ExportResult & { bundleBytes: number | null }> {
    this.#pool ??= new Piscina<ExportTask, ExportOutcome>({
      filename: WORKER_URL.href,
      minThreads: 0,
      maxThreads: 1,
      idleTimeout: IDLE_TIMEOUT_MS,
      resourceLimits: { maxOldGenerationSizeMb: EXPORT_WORKER_OLD_GENERATION_MB, maxYoungGenerationSizeMb: EXPORT_WORKER_YOUNG_GENERATION_MB },
    });
    const { port1, port2 } = new MessageChannel();
    let ended!: () => void;
    const end = new Promise<void>((resolve) => (ended = resolve));
    port1.on('message', (message: ProgressMessage) => {
      if (message.op === 'start') progress.start(message.stage, message.total);
      else if (message.op === 'update') progress.update(message.done, message.records);
      else ended();
    });
    const { database, origin, reportKey, publicKeys, minFreeBytes } = this.#options;
    const task: ExportTask = {
      database,
      origin,
      reportKey: { kid: reportKey.kid, privateKey: reportKey.privateKey },
      publicKeys,
      filter: job.filter,
      checkpointSize: job.checkpointSize,
      dir: job.dir,
      tarGzPath: job.tarGzPath ?? null,
      minFreeBytes,
      floorLabel: job.floorLabel,
      progress: port2,
    };
    try {
      const outcome = await this.#pool.run(task, { transferList: [port2] });
      // The last progress messages travel on their own port: let them arrive before the caller moves on.
      await end;
      if (!outcome.ok) throw rebuild(outcome.error);
      return { ...outcome.result, bundleBytes: outcome.bundleBytes };
    } finally {
      port1.close();
      progress.stop();
    }
  }

  async close(): Promise<void> {
    await this.#pool?.destroy();
    this.#pool = undefined;
  }
}

/** The error the worker met, as the class it was (ProblemError, store errors) or a plain Error with its name, code and stack. */
function rebuild(error: TransportedError): Error {
  switch (error.kind) {
    case 'problem':
      return new ProblemError(error.code, error.detail, error.extras);
    case 'integrity':
      return new StoreIntegrityError(error.message);
    case 'unavailable':
      return new StoreUnavailableError(error.reason, error.message);
    case 'error': {
      const rebuilt = new Error(error.message) as NodeJS.ErrnoException;
      rebuilt.name = error.name;
      if (error.stack !== undefined) rebuilt.stack = error.stack;
      if (error.code !== undefined) rebuilt.code = error.code;
      return rebuilt;
    }
  }
}
