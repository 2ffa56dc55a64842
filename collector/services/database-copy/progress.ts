/**
 * Progress of `db copy`, table by table: on a terminal a `cli-progress` bar (rows done, rate,
 * ETA), otherwise (a pipe, a log file) one pino line every few seconds, as report exports do
 * (services/report/progress.ts). Quiet: nothing.
 */
import cliProgress from 'cli-progress';
import type { Logger } from '../../../shared/logger.ts';

export interface CopyProgress {
  /** A new stage ("copy records", "check records") of `total` rows. */
  start(stage: string, total: number): void;
  update(done: number): void;
  stop(): void;
}

export const COPY_PROGRESS_LOG_INTERVAL_MS = 5000;

export const silentCopyProgress: CopyProgress = { start() {}, update() {}, stop() {} };

/** A bar on stderr when it is a terminal, log lines otherwise. */
export function copyProgressReporter(options: { logger: Logger; tty?: boolean; now?: () => number; intervalMs?: number }): CopyProgress {
  return (options.tty ?? process.stderr.isTTY === true)
    ? new BarProgress()
    : new LogProgress(options.logger, options.now ?? Date.now, options.intervalMs ?? COPY_PROGRESS_LOG_INTERVAL_MS);
}

class BarProgress implements CopyProgress {
  #bar: cliProgress.SingleBar | undefined;

  start(stage: string, total: number): void {
    this.stop();
    this.#bar = new cliProgress.SingleBar(
      { format: `${stage.padEnd(24)} {bar} {percentage}% | {value}/{total} rows | {rate}/s | ETA {eta_formatted}`, stream: process.stderr, etaBuffer: 50, fps: 5 },
      cliProgress.Presets.shades_classic,
    );
    this.#started = Date.now();
    this.#bar.start(Math.max(total, 1), 0, { rate: 0 });
  }

  #started = 0;

  update(done: number): void {
    const seconds = (Date.now() - this.#started) / 1000;
    this.#bar?.update(done, { rate: seconds > 0 ? Math.round(done / seconds) : 0 });
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = undefined;
  }
}

class LogProgress implements CopyProgress {
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

  update(done: number): void {
    const now = this.#now();
    if (now - this.#lastLog < this.#intervalMs) return;
    this.#lastLog = now;
    const seconds = (now - this.#started) / 1000;
    const perSecond = seconds > 0 ? done / seconds : 0;
    this.#logger.info(
      { stage: this.#stage, rowsDone: done, rowsTotal: this.#total, rowsPerSecond: Math.round(perSecond), etaSeconds: perSecond > 0 ? Math.round((this.#total - done) / perSecond) : null },
      'db copy progress',
    );
  }

  stop(): void {}
}
