/**
 * Progress of a long export: on a terminal a `cli-progress` bar (records done, rate, ETA);
 * otherwise (a server, a pipe, a log file) one pino line every few seconds. The work unit is
 * the ledger index scanned, out of the checkpoint's size: an export reads the ledger in index
 * order, so that fraction is an honest ETA even before the number of matching records is known.
 */
import cliProgress from 'cli-progress';
import type { Logger } from '../../../shared/logger.ts';

export interface ProgressReporter {
  /** A new stage (e.g. "records", "csv") of `total` units. */
  start(stage: string, total: number): void;
  /** `done` units of the current stage, `records` of them matched so far. */
  update(done: number, records: number): void;
  stop(): void;
}

export const PROGRESS_LOG_INTERVAL_MS = 5000;

/** A bar on stderr when it is a terminal, log lines otherwise. */
export function progressReporter(options: { logger: Logger; tty?: boolean; now?: () => number; intervalMs?: number }): ProgressReporter {
  return (options.tty ?? process.stderr.isTTY === true) ? new BarProgress() : new LogProgress(options.logger, options.now ?? Date.now, options.intervalMs ?? PROGRESS_LOG_INTERVAL_MS);
}

/** Reports nothing (tests, callers that report on their own). */
export const silentProgress: ProgressReporter = { start() {}, update() {}, stop() {} };

class BarProgress implements ProgressReporter {
  #bar: cliProgress.SingleBar | undefined;

  start(stage: string, total: number): void {
    this.stop();
    this.#bar = new cliProgress.SingleBar(
      {
        format: `${stage.padEnd(8)} {bar} {percentage}% | ledger {value}/{total} | {records} records | {rate}/s | ETA {eta_formatted}`,
        stream: process.stderr,
        etaBuffer: 50,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    this.#started = Date.now();
    this.#bar.start(Math.max(total, 1), 0, { records: 0, rate: 0 });
  }

  #started = 0;

  update(done: number, records: number): void {
    const seconds = (Date.now() - this.#started) / 1000;
    this.#bar?.update(done, { records, rate: seconds > 0 ? Math.round(records / seconds) : 0 });
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = undefined;
  }
}

class LogProgress implements ProgressReporter {
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #intervalMs: number;
  #stage = '';
  #total = 0;
  #started = 0;
  #lastLog = 0;

  constructor(logger: Logger, now: () => number, intervalMs: number) {
    this.#logger = logger;
    this.#now = now;
    this.#intervalMs = intervalMs;
  }

  start(stage: string, total: number): void {
    this.#stage = stage;
    this.#total = total;
    this.#started = this.#lastLog = this.#now();
  }

  update(done: number, records: number): void {
    const now = this.#now();
    if (now - this.#lastLog < this.#intervalMs) return;
    this.#lastLog = now;
    const seconds = (now - this.#started) / 1000;
    const perSecond = seconds > 0 ? done / seconds : 0;
    this.#logger.info(
      {
        stage: this.#stage,
        ledgerDone: done,
        ledgerTotal: this.#total,
        records,
        recordsPerSecond: seconds > 0 ? Math.round(records / seconds) : 0,
        etaSeconds: perSecond > 0 ? Math.round((this.#total - done) / perSecond) : null,
      },
      'report export progress',
    );
  }

  stop(): void {}
}
