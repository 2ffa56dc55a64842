/**
 * Retention of report bundles: `reports/` holds each HTTP job's bundle for
 * SAKSHYA_REPORT_RETENTION (default 7 days) after the job finished, then the sweep deletes it.
 * The server sweeps at start and on a node-cron schedule (REPORT_SWEEP_CRON).
 *
 * What `report_jobs` says afterwards:
 * - a `done` job whose retention has passed becomes `expired` (with `expired_at`) and keeps its
 *   row: GET /reports/<id> answers status "expired" and the bundle is 410 `report.expired`, not
 *   a 404 or a 500, so the auditor learns it existed and has to be exported again. (Who exported
 *   what is in the COLLECTOR chain for good, in the `report.exported` record.)
 * - a `failed` job whose retention has passed is deleted: it has no files.
 * - a directory under `reports/` of no `running` or `done` job is removed: what a crash between
 *   two steps, or an expiry, left behind.
 *
 * Crash behaviour: rows change first, in one transaction, and files go after; a crash between
 * leaves directories of expired jobs, which the next sweep removes as strays.
 */
import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../../shared/logger.ts';
import type { CollectorStore } from '../../store/store.ts';

/** Every 10 minutes: a sweep is one indexed query and a directory listing. */
export const REPORT_SWEEP_CRON = '*/10 * * * *';
const JOB_DIR = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\.partial)?$/;

export interface SweepResult {
  /** Jobs whose bundles were deleted now. */
  expired: string[];
  /** Failed jobs forgotten now. */
  forgotten: number;
  /** Directories removed (bundles of expired jobs and strays), by name. */
  removed: string[];
}

export async function sweepReports(deps: { store: CollectorStore; reportsDir: string; retentionMs: number; now: () => Date; logger: Logger }): Promise<SweepResult> {
  const now = deps.now();
  const cutoff = new Date(now.getTime() - deps.retentionMs).toISOString();
  const { expired, forgotten } = await deps.store.write(async (tx) => ({
    expired: await tx.expireReportJobs(cutoff, now.toISOString()),
    forgotten: await tx.forgetFailedReportJobs(cutoff),
  }));
  const removed: string[] = [];
  const names = existsSync(deps.reportsDir) ? readdirSync(deps.reportsDir) : [];
  for (const name of names) {
    const id = JOB_DIR.exec(name)?.[1];
    if (id === undefined) continue; // not ours: left alone
    const job = await deps.store.findReportJob(id);
    // A running job owns both its directories; a done job owns its bundle.
    if (job?.status === 'running' || (job?.status === 'done' && name === id)) continue;
    await rm(join(deps.reportsDir, name), { recursive: true, force: true });
    removed.push(name);
  }
  if (expired.length > 0 || forgotten > 0 || removed.length > 0) {
    deps.logger.info({ expired, forgotten, removed, retentionMs: deps.retentionMs }, 'report bundles past their retention deleted');
  }
  return { expired, forgotten, removed };
}
