/**
 * One report export in a worker thread (export-pool.ts): `exportReport` against its own
 * read-only snapshot of the database, then, for an HTTP job, the bundle's tar.gz. Everything an
 * export costs — parsing and flattening every record, proofs, CSV, hashing, gzip — runs here,
 * so the collector's event loop keeps answering requests however large or hostile the records.
 *
 * The task arrives by structured clone: plain data, the report key as a KeyObject (cloneable
 * between threads) and a MessagePort for progress. Errors come back as data (a thrown error
 * loses its class and fields on the way), and the pool turns them back into errors.
 */
import type { KeyObject } from 'node:crypto';
import { statSync } from 'node:fs';
import { setPriority } from 'node:os';
import type { MessagePort } from 'node:worker_threads';
import { ProblemError, type ProblemCode } from '../../../shared/problem.ts';
import { ALL_BUNDLE_FILES, type ReportFilter } from '../../../shared/report/bundle-format.ts';
import type { CollectorPublicKeys } from '../../keys.ts';
import { openReportSnapshot, type DatabaseConnection } from '../../store/open-store.ts';
import { StoreIntegrityError, StoreUnavailableError } from '../../store/store.ts';
import { DiskFloor } from './disk-floor.ts';
import { exportReport, type ExportResult } from './export-report.ts';
import type { ProgressReporter } from './progress.ts';
import { writeDeterministicTarGz } from './tar-gz.ts';

export interface ExportTask {
  /** The collector's database; the worker opens its own read-only snapshot of it. */
  database: DatabaseConnection;
  origin: string;
  reportKey: { kid: string; privateKey: KeyObject };
  publicKeys: CollectorPublicKeys;
  filter: ReportFilter;
  checkpointSize: number;
  /** An existing, empty directory: the bundle's files. */
  dir: string;
  /** Where to write the bundle's tar.gz (HTTP jobs), or null. */
  tarGzPath: string | null;
  minFreeBytes: number;
  /** How the disk floor's message names the place (an HTTP caller is not told server paths). */
  floorLabel: string;
  progress: MessagePort;
}

export type ProgressMessage = { op: 'start'; stage: string; total: number } | { op: 'update'; done: number; records: number } | { op: 'end' };

export type TransportedError =
  | { kind: 'problem'; code: ProblemCode; detail: string; extras: { [key: string]: unknown } }
  | { kind: 'integrity'; message: string }
  | { kind: 'unavailable'; reason: string; message: string }
  | { kind: 'error'; name: string; message: string; stack: string | undefined; code: string | undefined };

export type ExportOutcome = { ok: true; result: ExportResult; bundleBytes: number | null } | { ok: false; error: TransportedError };

/**
 * The worker thread's nice value: an export is background work, and on a small, busy server the
 * thread answering requests must win the CPU. Only on Linux, where the nice value is per thread
 * (elsewhere it would lower the whole collector).
 */
export const EXPORT_WORKER_NICE = 10;
if (process.platform === 'linux') {
  try {
    setPriority(EXPORT_WORKER_NICE);
  } catch {
    // Refused (a sandbox): the export runs at the normal priority.
  }
}

/** Progress updates sent at most this often (the last of a stage always): the event loop has better things to do. */
const PROGRESS_INTERVAL_MS = 200;

function portProgress(port: MessagePort): ProgressReporter {
  let total = 0;
  let last = 0;
  const post = (message: ProgressMessage) => port.postMessage(message);
  return {
    start(stage, stageTotal) {
      total = stageTotal;
      last = 0;
      post({ op: 'start', stage, total });
    },
    update(done, records) {
      const now = Date.now();
      if (done < total && now - last < PROGRESS_INTERVAL_MS) return;
      last = now;
      post({ op: 'update', done, records });
    },
    stop() {},
  };
}

export function transport(err: unknown): TransportedError {
  if (err instanceof ProblemError) return { kind: 'problem', code: err.code, detail: err.message, extras: err.extras };
  if (err instanceof StoreIntegrityError) return { kind: 'integrity', message: err.message };
  if (err instanceof StoreUnavailableError) return { kind: 'unavailable', reason: err.reason, message: err.message };
  const error = err instanceof Error ? err : new Error(String(err));
  const code = (error as NodeJS.ErrnoException).code;
  return { kind: 'error', name: error.name, message: error.message, stack: error.stack, code: typeof code === 'string' ? code : undefined };
}

export default async function runExport(task: ExportTask): Promise<ExportOutcome> {
  try {
    const result = await exportReport(
      { store: { openReport: (size) => openReportSnapshot(task.database, size) }, origin: task.origin, reportKey: task.reportKey, publicKeys: task.publicKeys },
      {
        filter: task.filter,
        checkpointSize: task.checkpointSize,
        dir: task.dir,
        progress: portProgress(task.progress),
        diskFloor: { floor: new DiskFloor(task.minFreeBytes), label: task.floorLabel },
      },
    );
    let bundleBytes: number | null = null;
    if (task.tarGzPath !== null) {
      await new DiskFloor(task.minFreeBytes).check(task.tarGzPath, task.floorLabel);
      await writeDeterministicTarGz(task.dir, ALL_BUNDLE_FILES, task.tarGzPath);
      bundleBytes = statSync(task.tarGzPath).size;
    }
    return { ok: true, result, bundleBytes };
  } catch (err) {
    return { ok: false, error: transport(err) };
  } finally {
    task.progress.postMessage({ op: 'end' } satisfies ProgressMessage);
    task.progress.close();
  }
}
