/**
 * The collector's event loop while a report export runs: does an export stall the
 * requests the collector serves meanwhile?
 *
 * 1. Fill a collector data directory with N signed, chained workload records
 *    (bench/export-memory.ts `fillLedger`).
 * 2. Start that collector (the real container and express app) in a CHILD process that watches
 *    its own event loop with `perf_hooks.monitorEventLoopDelay` (10 ms resolution, so an idle
 *    loop reads about 10 ms) and `performance.eventLoopUtilization`, between marks this process
 *    sends it.
 * 3. From this process, poll `GET /healthz` one request at a time, 10 ms apart, and time each
 *    answer, in three phases:
 *    - idle: nothing else runs (the baseline the other phases are compared with);
 *    - export: an auditor's `POST /api/v1/reports` of all N records, as it runs in production
 *      (worker thread, tar.gz included), polled until the job is done;
 *    - for comparison, the same export run by `exportReport` on the child's event loop itself
 *      (what the collector did before the worker thread), polled until it ends.
 *
 * Figures are ratios against the idle phase of the same run, never timed assertions. Targets:
 * the loop's delay p99 at most 2× and /healthz p99 at most 3× the idle collector's (the export's
 * work is on another thread; what is left is the machine's cores being shared).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { loadCollectorConfig } from '../collector/config.ts';
import { createContainer } from '../collector/container.ts';
import { createApp } from '../collector/app.ts';
import { exportReport } from '../collector/services/report/export-report.ts';
import { createLogger } from '../shared/logger.ts';
import { EXPORT_FILTER, fillLedger } from './export-memory.ts';
import type { Cleanup } from './lib/cleanup.ts';
import { HttpClient } from './lib/http-client.ts';
import { MiB } from './lib/proc-memory.ts';
import { formatNumber, type Row } from './lib/report.ts';
import { nowMs, summarise, type LatencySummary } from './lib/stats.ts';

const SELF = fileURLToPath(import.meta.url);
const ORIGIN = 'bench.sakshya.local/collector';
const POLL_INTERVAL_MS = 10;
const ELD_RESOLUTION_MS = 10;

export interface ExportLoopOptions {
  records: number;
  idleSeconds: number;
  timeoutMs: number;
}

/** What the child's event loop went through in one phase. */
export interface LoopFigures {
  /** Event-loop delay percentiles (ms), as monitorEventLoopDelay reports them. */
  delayMs: { p50: number; p99: number; max: number; mean: number; samples: number };
  /** Share of the phase the loop was busy (0…1). */
  utilization: number;
}

export interface PhaseResult {
  seconds: number;
  loop: LoopFigures;
  healthzMs: LatencySummary;
}

export interface ExportLoopResult {
  records: number;
  fillSeconds: number;
  idle: PhaseResult;
  worker: PhaseResult & { exportedRecords: number; bundleBytes: number };
  inline: PhaseResult & { exportedRecords: number };
}

type ToChild = { op: 'mark' } | { op: 'measure' } | { op: 'inline-export'; out: string } | { op: 'exit' };
type FromChild =
  | { op: 'ready'; url: string; token: string }
  | { op: 'marked' }
  | { op: 'measured'; loop: LoopFigures }
  | { op: 'inline-done'; records: number }
  | { op: 'failed'; error: string };

class ChildCollector {
  readonly child: ChildProcess;
  readonly #waiting: ((message: FromChild) => void)[] = [];

  constructor(child: ChildProcess) {
    this.child = child;
    child.on('message', (message: FromChild) => this.#waiting.shift()?.(message));
  }

  /** Sends `message` and resolves with the child's next message. */
  ask<T extends FromChild['op']>(message: ToChild, expect: T): Promise<Extract<FromChild, { op: T }>> {
    return new Promise((resolvePromise, reject) => {
      this.#waiting.push((answer) => {
        if (answer.op === expect) resolvePromise(answer as Extract<FromChild, { op: T }>);
        else reject(new Error(`export-loop child: expected ${expect}, got ${JSON.stringify(answer)}`));
      });
      this.child.send(message);
    });
  }

  next<T extends FromChild['op']>(expect: T): Promise<Extract<FromChild, { op: T }>> {
    return new Promise((resolvePromise, reject) => {
      this.#waiting.push((answer) => (answer.op === expect ? resolvePromise(answer as Extract<FromChild, { op: T }>) : reject(new Error(JSON.stringify(answer)))));
    });
  }
}

/** Polls /healthz one request at a time until `done()` is true; each answer's latency in ms. */
async function pollHealth(client: HttpClient, url: string, done: () => boolean): Promise<number[]> {
  const samples: number[] = [];
  while (!done()) {
    const started = nowMs();
    const answer = await client.get(`${url}/healthz`);
    if (answer.status !== 200) throw new Error(`/healthz answered ${answer.status}`);
    samples.push(nowMs() - started);
    await delay(POLL_INTERVAL_MS);
  }
  return samples;
}

async function phase(collector: ChildCollector, client: HttpClient, url: string, run: (isDone: () => boolean, setDone: () => void) => Promise<void>): Promise<PhaseResult> {
  await collector.ask({ op: 'mark' }, 'marked');
  let finished = false;
  const started = nowMs();
  const [samples] = await Promise.all([pollHealth(client, url, () => finished), run(() => finished, () => (finished = true))]);
  const seconds = (nowMs() - started) / 1000;
  const { loop } = await collector.ask({ op: 'measure' }, 'measured');
  return { seconds, loop, healthzMs: summarise(samples) };
}

export async function benchExportLoop(options: ExportLoopOptions, cleanup: Cleanup): Promise<ExportLoopResult> {
  const root = cleanup.tempDir('sakshya-bench-export-loop-');
  const dir = join(root, 'collector');
  const fillSeconds = await fillLedger(dir, options.records);
  const child = fork(SELF, ['--serve', dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanup.defer('stop the export-loop collector', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const collector = new ChildCollector(child);
  const { url, token } = await collector.next('ready');
  const client = new HttpClient(4);
  const deadline = Date.now() + options.timeoutMs;
  try {
    const idle = await phase(collector, client, url, async (_isDone, setDone) => {
      await delay(options.idleSeconds * 1000);
      setDone();
    });

    let exported = { records: 0, bundleBytes: 0 };
    const worker = await phase(collector, client, url, async (_isDone, setDone) => {
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const started = await client.post(`${url}/api/v1/reports`, headers, JSON.stringify({ from: EXPORT_FILTER.from, to: EXPORT_FILTER.to }));
      if (started.status !== 202) throw new Error(`POST /reports answered ${started.status}: ${started.text}`);
      const id = (JSON.parse(started.text) as { id: string }).id;
      for (;;) {
        await delay(250);
        const job = JSON.parse((await client.get(`${url}/api/v1/reports/${id}`, { authorization: `Bearer ${token}` })).text) as {
          status: string;
          counts?: { records: number };
          bundleBytes?: number;
          problem?: unknown;
        };
        if (job.status === 'done') {
          exported = { records: job.counts!.records, bundleBytes: job.bundleBytes! };
          break;
        }
        if (job.status !== 'running') throw new Error(`the export ended ${job.status}: ${JSON.stringify(job.problem)}`);
        if (Date.now() > deadline) throw new Error('the export did not finish in time');
      }
      setDone();
    });

    let inlineRecords = 0;
    const inline = await phase(collector, client, url, async (_isDone, setDone) => {
      inlineRecords = (await collector.ask({ op: 'inline-export', out: join(root, 'inline-bundle') }, 'inline-done')).records;
      setDone();
    });
    return {
      records: options.records,
      fillSeconds,
      idle,
      worker: { ...worker, exportedRecords: exported.records, bundleBytes: exported.bundleBytes },
      inline: { ...inline, exportedRecords: inlineRecords },
    };
  } finally {
    client.close();
    child.send({ op: 'exit' } satisfies ToChild);
  }
}

/** The rows and notes of bench/run.ts's table: ratios against the idle phase of the same run. */
export function exportLoopReport(result: ExportLoopResult): { rows: Row[]; notes: string[] } {
  const { idle, worker, inline } = result;
  const n = formatNumber(worker.exportedRecords);
  const idleDelay = { label: 'idle collector', value: idle.loop.delayMs.p99, unit: 'ms' };
  const idleHealth = (p: 'p50' | 'p99') => ({ label: 'idle collector', value: idle.healthzMs[p], unit: 'ms' });
  const rows: Row[] = [
    {
      key: 'export_loop.delay_p99_ms',
      metric: `event-loop delay p99 during an export of ${n} records (HTTP job)`,
      value: worker.loop.delayMs.p99,
      unit: 'ms',
      reference: idleDelay,
      ratio: worker.loop.delayMs.p99 / idle.loop.delayMs.p99,
      target: { op: '<=', value: 2 },
    },
    {
      key: 'export_loop.delay_max_ms',
      metric: 'event-loop delay max during the export',
      value: worker.loop.delayMs.max,
      unit: 'ms',
      reference: { label: 'idle collector', value: idle.loop.delayMs.max, unit: 'ms' },
      ratio: worker.loop.delayMs.max / idle.loop.delayMs.max,
    },
    {
      key: 'export_loop.healthz_p50_ms',
      metric: '/healthz latency p50 during the export',
      value: worker.healthzMs.p50,
      unit: 'ms',
      reference: idleHealth('p50'),
      ratio: worker.healthzMs.p50 / idle.healthzMs.p50,
    },
    {
      key: 'export_loop.healthz_p99_ms',
      metric: '/healthz latency p99 during the export',
      value: worker.healthzMs.p99,
      unit: 'ms',
      reference: idleHealth('p99'),
      ratio: worker.healthzMs.p99 / idle.healthzMs.p99,
      target: { op: '<=', value: 3 },
    },
    { key: 'export_loop.utilization', metric: 'event-loop utilization during the export', value: worker.loop.utilization * 100, unit: '%' },
    {
      key: 'export_loop.inline_delay_p99_ms',
      metric: '  for comparison: event-loop delay p99, the export on the event loop',
      value: inline.loop.delayMs.p99,
      unit: 'ms',
      reference: idleDelay,
      ratio: inline.loop.delayMs.p99 / idle.loop.delayMs.p99,
    },
    {
      key: 'export_loop.inline_healthz_p99_ms',
      metric: '  for comparison: /healthz p99, the export on the event loop',
      value: inline.healthzMs.p99,
      unit: 'ms',
      reference: idleHealth('p99'),
      ratio: inline.healthzMs.p99 / idle.healthzMs.p99,
    },
  ];
  const line = (name: string, p: PhaseResult) =>
    `${name} ${p.seconds.toFixed(1)} s: event-loop delay p50 ${formatNumber(p.loop.delayMs.p50)} / p99 ${formatNumber(p.loop.delayMs.p99)} / max ${formatNumber(p.loop.delayMs.max)} ms ` +
    `(${p.loop.delayMs.samples} samples), loop busy ${(p.loop.utilization * 100).toFixed(0)} %; /healthz p50 ${formatNumber(p.healthzMs.p50)} / p99 ${formatNumber(p.healthzMs.p99)} / max ${formatNumber(p.healthzMs.max)} ms (${p.healthzMs.count} polls)`;
  const notes = [
    `Export loop: ${formatNumber(result.records)} workload records filled in ${result.fillSeconds.toFixed(1)} s; the collector in a child process watches its own event loop ` +
      `(monitorEventLoopDelay, ${ELD_RESOLUTION_MS} ms resolution: an idle loop reads about ${ELD_RESOLUTION_MS} ms), this process polls /healthz every ${POLL_INTERVAL_MS} ms, ` +
      `one request at a time. The HTTP job exported ${n} records (${formatNumber(worker.bundleBytes / MiB)} MiB tar.gz).`,
    `  ${line('idle', idle)}`,
    `  ${line('export (worker thread)', worker)}`,
    `  ${line('export on the event loop', inline)}`,
  ];
  return { rows, notes };
}

const ms = (nanoseconds: number) => nanoseconds / 1e6;

/** The child: the collector on 127.0.0.1, watching its own event loop between marks. */
async function serveMain(dir: string): Promise<void> {
  const config = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: dir, SAKSHYA_COLLECTOR_ORIGIN: ORIGIN, SAKSHYA_VERIFY_WORKERS: '1', SAKSHYA_LOG_LEVEL: 'warn' }, { port: '0' });
  const logger = createLogger('collector', config.logLevel);
  const container = await createContainer(config, { mode: 'bootstrap', logger });
  const server: Server = createServer(createApp(container));
  await new Promise<void>((resolvePromise) => server.listen(0, '127.0.0.1', resolvePromise));
  const { token } = await container.apiTokens.issue('auditor', 'bench-export-loop', 3600, 'cli:bench');
  const histogram = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  let since: EventLoopUtilization = performance.eventLoopUtilization();
  const send = (message: FromChild) => process.send!(message);
  process.on('message', (message: ToChild) => {
    void (async () => {
      try {
        if (message.op === 'mark') {
          histogram.disable();
          histogram.reset();
          histogram.enable();
          since = performance.eventLoopUtilization();
          send({ op: 'marked' });
        } else if (message.op === 'measure') {
          histogram.disable();
          const loop: LoopFigures = {
            delayMs: { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max), mean: ms(histogram.mean), samples: histogram.count },
            utilization: performance.eventLoopUtilization(since).utilization,
          };
          send({ op: 'measured', loop });
        } else if (message.op === 'inline-export') {
          mkdirSync(message.out);
          const checkpoint = (await container.store.latestCheckpoint())!;
          const { manifest } = await exportReport(
            { store: container.store, origin: config.origin, reportKey: container.keys.receipt, publicKeys: container.publicKeys },
            { filter: EXPORT_FILTER, checkpointSize: checkpoint.size, dir: message.out },
          );
          send({ op: 'inline-done', records: manifest.counts.records });
        } else if (message.op === 'exit') {
          server.closeAllConnections();
          server.close();
          await container.close();
          process.exit(0);
        }
      } catch (err) {
        send({ op: 'failed', error: (err as Error).stack ?? String(err) });
      }
    })();
  });
  send({ op: 'ready', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token });
}

if (process.argv[1] && resolve(process.argv[1]) === SELF && process.argv[2] === '--serve') {
  serveMain(process.argv[3]!).catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
