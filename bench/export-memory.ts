/**
 * Report export at scale (an export of a million records must run in flat memory): fills a
 * real collector data directory with N signed, chained records, then runs `exportReport` in a
 * CHILD process, which reports its own peak RSS (VmHWM from /proc/self/status, the kernel's
 * high-water mark) and the export's wall time.
 *
 *   node bench/export-memory.ts [--sizes 10000,100000,1000000] [--data DIR] [--heap MIB] [--keep]
 *
 * - `--data DIR` keeps one filled collector directory per size under DIR (`n<N>/`) and reuses it
 *   on the next run: filling 10^6 records costs minutes (one Ed25519 signature each), the export
 *   being measured does not change it (exportReport records nothing).
 * - `--heap MIB` runs the child with `--max-old-space-size=MIB` (shows whether a peak is
 *   retention or only a lazy collector).
 * - `--keep` leaves the bundles (`<data>/n<N>/bundle-*`) for sakshya-verify.
 *
 * The fill goes through the collector's own code: `createContainer` (keys, COLLECTOR chain,
 * genesis), agents created with their enrolled key, and `LedgerService.append` per batch, which
 * writes records, Merkle subtrees and a signed checkpoint in one transaction, as ingest does.
 * Records are the benchmark workload's (bench/lib/workload.ts): signed by each simulated agent,
 * 4 audit to 1 telemetry, ~1 KiB canonical each, spread over 30 days.
 *
 * For bench/run.ts: `measureExport(records, cleanup)` fills a temporary directory and returns
 * the figures (and the bundle directory, for a verify benchmark).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCollectorConfig } from '../collector/config.ts';
import { createContainer } from '../collector/container.ts';
import { exportReport } from '../collector/services/report/export-report.ts';
import { defaultDatabaseUrl, openStore } from '../collector/store/open-store.ts';
import type { PreparedRecord as LedgerRecord } from '../collector/services/ledger.ts';
import { createLogger } from '../shared/logger.ts';
import type { SignedRecord } from '../shared/record.ts';
import type { ReportFilter } from '../shared/report/bundle-format.ts';
import { Cleanup } from './lib/cleanup.ts';
import { SimulatedAgent, simulatedAgentIds } from './lib/workload.ts';

const SELF = fileURLToPath(import.meta.url);
const ORIGIN = 'bench.sakshya.local/collector';
const AGENTS = 20;
const BATCH = 500;
const FIRST_AT = Date.parse('2026-11-01T00:00:00.000Z');
const SPAN_MS = 30 * 86_400_000;
/** Every record of the fill is in this range. */
export const EXPORT_FILTER: ReportFilter = { from: '2026-11-01T00:00:00.000Z', to: '2026-12-01T00:00:00.000Z', agent: null, kind: null, type: null };
/** A file in a filled directory saying how many workload records it holds (so a reuse is checked). */
const FILLED_MARK = 'bench-export-records';

export interface ExportFigures {
  records: number;
  /** Ledger size of the exported checkpoint (the workload's records plus the COLLECTOR chain's). */
  checkpointSize: number;
  seconds: number;
  recordsPerSecond: number;
  /** CPU time (user + system) of the exporting process: steadier than wall time on a shared machine. */
  cpuSeconds: number;
  /** Resident set of the child just before the export (node, modules, open store), MiB. */
  rssBeforeMiB: number;
  /** Peak resident set of the exporting process (VmHWM), MiB. */
  peakRssMiB: number;
  /** V8 heap in use after the export, MiB. */
  heapUsedMiB: number;
  bundleBytes: number;
  manifestSha256: string;
  /** The bundle, if kept. */
  bundleDir?: string;
}

function silentLogger() {
  return createLogger('bench-export', 'silent');
}

function collectorEnv(dir: string): NodeJS.ProcessEnv {
  return { SAKSHYA_COLLECTOR_DIR: dir, SAKSHYA_COLLECTOR_ORIGIN: ORIGIN, SAKSHYA_VERIFY_WORKERS: '1' };
}

/**
 * Fills the collector directory `dir` (created if absent) with `records` workload records of
 * AGENTS agents, in batches of BATCH taking turns, as the ledger receives them. Returns seconds.
 */
export async function fillLedger(dir: string, records: number): Promise<number> {
  const started = performance.now();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const container = await createContainer(loadCollectorConfig(collectorEnv(dir)), { mode: 'bootstrap', logger: silentLogger() });
  try {
    const { store, ledger } = container;
    const agents = simulatedAgentIds(AGENTS, 'BN-EXP').map((id) => new SimulatedAgent(id));
    await store.write(async (tx) => {
      for (const agent of agents) {
        await tx.createAgentEpoch({ agent: agent.id, epoch: 1, publicJwk: agent.key.publicJwk, kid: agent.key.kid, enrolledAt: new Date(FIRST_AT).toISOString() });
      }
    });
    let written = 0;
    for (let turn = 0; written < records; turn = (turn + 1) % agents.length) {
      const agent = agents[turn]!;
      const count = Math.min(BATCH, records - written);
      const batch: LedgerRecord[] = [];
      for (let i = 0; i < count; i++) {
        const prepared = agent.nextRecord(new Date(FIRST_AT + Math.floor(((written + i) * SPAN_MS) / records)));
        batch.push({ record: JSON.parse(prepared.canonical) as SignedRecord, canonical: prepared.canonical, recordHash: prepared.recordHash, leafHash: prepared.leafHash });
      }
      const first = batch[0]!.record;
      const head = { highestSeq: first.seq - 1, highestHash: first.seq === 1 ? null : first.prev };
      const receivedAt = batch[count - 1]!.record.at;
      await store.write((tx) => ledger.append(tx, { agent: agent.id, epoch: 1, head }, batch, receivedAt));
      written += count;
    }
  } finally {
    await container.close();
  }
  writeMark(dir, records);
  return (performance.now() - started) / 1000;
}

function writeMark(dir: string, records: number): void {
  // Written last: a fill interrupted midway is not mistaken for a complete one.
  writeFileSync(join(dir, FILLED_MARK), String(records));
}

/** A directory filled by an earlier version of the code gets this version's migrations (cheap, and the records stay). */
async function migrateReused(dir: string): Promise<void> {
  const store = openStore({ url: defaultDatabaseUrl(dir) });
  try {
    await store.migrate();
  } finally {
    await store.close();
  }
}

function isFilled(dir: string, records: number): boolean {
  const mark = join(dir, FILLED_MARK);
  return existsSync(mark) && readFileSync(mark, 'utf8').trim() === String(records);
}

/**
 * Runs the export of the latest checkpoint of collector dir `dir` into `out` (a new directory)
 * in a child process and returns what it measured. `heapMiB` caps the child's old space.
 */
export function measureExportInChild(dir: string, out: string, options: { heapMiB?: number } = {}): Promise<Omit<ExportFigures, 'bundleDir'>> {
  const execArgv = options.heapMiB ? [`--max-old-space-size=${options.heapMiB}`] : [];
  return new Promise((resolvePromise, reject) => {
    execFile(process.execPath, [...execArgv, SELF, '--child', dir, out], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`the export child failed: ${err.message}\n${stderr}`));
        return;
      }
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolvePromise(JSON.parse(line) as Omit<ExportFigures, 'bundleDir'>);
      } catch {
        reject(new Error(`the export child printed no result: ${stdout}\n${stderr}`));
      }
    });
  });
}

/** The child: one export, timed, then its own VmHWM. */
async function childMain(dir: string, out: string): Promise<void> {
  const container = await createContainer(loadCollectorConfig(collectorEnv(dir)), { mode: 'existing', logger: silentLogger() });
  try {
    const checkpoint = await container.store.latestCheckpoint();
    if (!checkpoint) throw new Error(`${dir} has no checkpoint`);
    mkdirSync(out, { recursive: false });
    const deps = { store: container.store, origin: container.config.origin, reportKey: container.keys.receipt, publicKeys: container.publicKeys, logger: container.logger };
    const rssBeforeMiB = procStatusKiB('VmRSS') / 1024;
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const result = await exportReport(deps, { filter: EXPORT_FILTER, checkpointSize: checkpoint.size, dir: out });
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const figures: Omit<ExportFigures, 'bundleDir'> = {
      records: result.manifest.counts.records,
      checkpointSize: checkpoint.size,
      seconds,
      recordsPerSecond: result.manifest.counts.records / seconds,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      rssBeforeMiB,
      peakRssMiB: procStatusKiB('VmHWM') / 1024,
      heapUsedMiB: process.memoryUsage().heapUsed / 1048576,
      bundleBytes: readdirSync(out).reduce((sum, name) => sum + statSync(join(out, name)).size, 0),
      manifestSha256: result.manifestSha256,
    };
    process.stdout.write(`${JSON.stringify(figures)}\n`);
  } finally {
    await container.close();
  }
}

/** A memory figure of this process from /proc/self/status (VmHWM: peak resident set; VmRSS: now). */
function procStatusKiB(field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!match) throw new Error(`no ${field} in /proc/self/status (Linux only)`);
  return Number(match[1]);
}

/**
 * For bench/run.ts: fills a temporary collector with `records` records, exports it in a child
 * and returns the figures; the bundle stays (for a verify run) until `cleanup` closes.
 */
export async function measureExport(records: number, cleanup: Cleanup, options: { heapMiB?: number } = {}): Promise<ExportFigures & { fillSeconds: number }> {
  const root = cleanup.tempDir('sakshya-bench-export-');
  const dir = join(root, 'collector');
  const fillSeconds = await fillLedger(dir, records);
  const bundleDir = join(root, 'bundle');
  const figures = await measureExportInChild(dir, bundleDir, options);
  return { ...figures, bundleDir, fillSeconds };
}

function parseArgs(argv: string[]): { sizes: number[]; data?: string; heapMiB?: number; keep: boolean } {
  const args: { sizes: number[]; data?: string; heapMiB?: number; keep: boolean } = { sizes: [10_000, 100_000, 1_000_000], keep: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--sizes') args.sizes = value().split(',').map((s) => Number(s.replace(/_/g, '')));
    else if (arg === '--data') args.data = resolve(value());
    else if (arg === '--heap') args.heapMiB = Number(value());
    else if (arg === '--keep') args.keep = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  if (args.sizes.some((n) => !Number.isSafeInteger(n) || n < 1)) throw new Error('--sizes takes positive integers, e.g. 10000,100000');
  return args;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const cleanup = new Cleanup();
  const stop = () => void cleanup.close().then(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const data = args.data ?? cleanup.tempDir('sakshya-bench-export-');
    const rows: ExportFigures[] = [];
    for (const records of args.sizes) {
      const dir = join(data, `n${records}`);
      if (isFilled(dir, records)) {
        await migrateReused(dir);
      } else {
        rmSync(dir, { recursive: true, force: true });
        process.stderr.write(`filling ${records} records into ${dir} …\n`);
        const seconds = await fillLedger(dir, records);
        process.stderr.write(`  filled in ${seconds.toFixed(1)} s (${Math.round(records / seconds)} records/s)\n`);
      }
      const out = join(dir, `bundle-${Date.now()}`);
      const figures = await measureExportInChild(dir, out, { heapMiB: args.heapMiB });
      if (!args.keep) rmSync(out, { recursive: true, force: true });
      rows.push({ ...figures, ...(args.keep ? { bundleDir: out } : {}) });
      process.stderr.write(`  exported ${records}: ${figures.seconds.toFixed(1)} s, peak RSS ${figures.peakRssMiB.toFixed(0)} MiB\n`);
    }
    printTable(rows, args.heapMiB);
  } finally {
    await cleanup.close();
  }
}

function printTable(rows: readonly ExportFigures[], heapMiB: number | undefined): void {
  const heap = heapMiB ? ` (child --max-old-space-size=${heapMiB})` : '';
  process.stdout.write(`report export${heap}\n`);
  process.stdout.write('records    seconds  records/s  CPU s  RSS before  VmHWM MiB  heap MiB  bundle MiB  manifest sha256\n');
  for (const r of rows) {
    process.stdout.write(
      `${String(r.records).padStart(7)}  ${r.seconds.toFixed(1).padStart(9)}  ${Math.round(r.recordsPerSecond).toString().padStart(9)}  ${r.cpuSeconds.toFixed(1).padStart(5)}  ${r.rssBeforeMiB.toFixed(0).padStart(10)}  ${r.peakRssMiB.toFixed(0).padStart(9)}  ${r.heapUsedMiB.toFixed(0).padStart(8)}  ${(r.bundleBytes / 1048576).toFixed(0).padStart(10)}  ${r.manifestSha256.slice(0, 16)}\n`,
    );
  }
  for (let i = 1; i < rows.length; i++) {
    const ratio = rows[i]!.peakRssMiB / rows[i - 1]!.peakRssMiB;
    process.stdout.write(`VmHWM ${rows[i]!.records} / ${rows[i - 1]!.records} = ${ratio.toFixed(2)}\n`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === SELF) {
  const [mode, dir, out] = process.argv.slice(2);
  const run = mode === '--child' ? childMain(dir!, out!) : main();
  run.catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
