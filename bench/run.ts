/**
 * `npm run bench`: every benchmark in one run, speed targets as ratios against limits measured
 * in the same run on the same machine (never as timed tests), one table on stdout, and the
 * machine-readable results in bench/results/latest.json (and the table as latest.md).
 *
 *   node bench/run.ts [--quick] [--no-profile] [--partial-drain] [--only NAME,NAME…]
 *
 * --quick       small sizes, to check that the benchmarks work (figures are not meaningful)
 * --no-profile  skip the second, CPU-profiled collector run (the "where the time goes" table)
 * --partial-drain  agent-memory drains only the first 10^5 of its 10^6 backlog (most of its
 *                  time; a peak that grows with the work done then goes unseen)
 * --only        run only these benchmarks (default: all): ingest (collector ingest, one real
 *               agent, Merkle ledger, stage costs, profile), ingest-postgres and ingest-postgres-2
 *               (the ingest on PostgreSQL with one and with two replicas), storage (bytes on disk
 *               per record, SQLite and PostgreSQL), catch-up, agent-memory, rsyslog,
 *               export-verify, export-loop (the collector's event loop and /healthz during an export)
 *
 * PostgreSQL: the server named by SAKSHYA_BENCH_POSTGRES_URL (else SAKSHYA_TEST_POSTGRES_URL), an
 * administrator URL, or else a private cluster the run makes with initdb and removes at the end
 * (bench/lib/postgres-server.ts); without initdb the PostgreSQL parts say they were skipped.
 *
 * The run first waits (up to 45 s) for the machine to be quiet, and reports how much CPU
 * other processes took during the timed ingest, so disturbed figures are visible as such; if
 * the ingest was disturbed (or the machine's speed drifted across it), it is measured once more
 * and the cleaner of the two attempts is kept.
 * Each benchmark's part of the run (its rows, notes and JSON details) is in bench/sections/.
 * Everything runs on 127.0.0.1 in temp directories; child processes and directories are
 * removed at the end, on failure and on Ctrl-C. Exit code 0 unless a benchmark broke: a missed
 * target is reported in the table, not as a failure.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { waitForQuietMachine } from './lib/busy-machine.ts';
import { Cleanup } from './lib/cleanup.ts';
import { formatMarkdownTable, formatTable, judge, writeJson } from './lib/report.ts';
import { benchSizes } from './lib/sizes.ts';
import { nowMs } from './lib/stats.ts';
import { agentMemorySection } from './sections/agent-memory.ts';
import { catchUpSection } from './sections/catch-up.ts';
import { exportLoopSection } from './sections/export-loop.ts';
import { exportVerifySection } from './sections/export-verify.ts';
import { ingestPostgresSection } from './sections/ingest-postgres.ts';
import { ingestSection } from './sections/ingest.ts';
import { rsyslogSection } from './sections/rsyslog.ts';
import type { RunContext, Section, SectionRunner } from './sections/section.ts';
import { storageSection } from './sections/storage.ts';
import { benchPostgres, type PostgresAvailability } from './lib/postgres-server.ts';

const BENCH_NAMES = ['ingest', 'ingest-postgres', 'ingest-postgres-2', 'storage', 'catch-up', 'agent-memory', 'rsyslog', 'export-verify', 'export-loop'] as const;
type BenchName = (typeof BENCH_NAMES)[number];
const USAGE = `usage: node bench/run.ts [--quick] [--no-profile] [--partial-drain] [--only ${BENCH_NAMES.join(',')}]`;

function parseArgs(argv: readonly string[]): { quick: boolean; profile: boolean; partialDrain: boolean; only: BenchName[] } {
  const flags = new Set<string>();
  let only: BenchName[] = [...BENCH_NAMES];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--only' || arg.startsWith('--only=')) {
      const list = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      const names = (list ?? '').split(',').map((name) => name.trim()).filter(Boolean);
      const unknown = names.filter((name) => !(BENCH_NAMES as readonly string[]).includes(name));
      if (names.length === 0 || unknown.length > 0) {
        process.stderr.write(`bench: --only takes a comma-separated list of ${BENCH_NAMES.join(', ')}${unknown.length ? ` (unknown: ${unknown.join(', ')})` : ''}\n${USAGE}\n`);
        process.exit(2);
      }
      // Run order stays the canonical one: later benchmarks reuse earlier results (verify rate, records).
      only = BENCH_NAMES.filter((name) => names.includes(name));
    } else if (arg === '--quick' || arg === '--no-profile' || arg === '--partial-drain') {
      flags.add(arg);
    } else {
      process.stderr.write(`bench: unknown option ${arg}\n${USAGE}\n`);
      process.exit(2);
    }
  }
  return { quick: flags.has('--quick'), profile: !flags.has('--no-profile'), partialDrain: flags.has('--partial-drain'), only };
}
const { quick, profile, partialDrain, only: selected } = parseArgs(process.argv.slice(2));
const sizes = benchSizes({ quick, partialDrain });

const RESULTS_JSON = fileURLToPath(new URL('./results/latest.json', import.meta.url));
const RESULTS_MD = fileURLToPath(new URL('./results/latest.md', import.meta.url));

const cleanup = new Cleanup();
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    process.stderr.write(`\nbench: ${signal}: cleaning up\n`);
    void cleanup.close().finally(() => process.exit(130));
  });
}

let postgres: Promise<PostgresAvailability> | undefined;
const context: RunContext = { sizes, quick, profile, cleanup, postgres: () => (postgres ??= benchPostgres(cleanup)), earlier: {} };

/** In run order: later sections compare with what earlier ones measured (verify rate, records). */
const SECTIONS: { [name in BenchName]: SectionRunner } = {
  ingest: ingestSection,
  'ingest-postgres': ingestPostgresSection(1),
  'ingest-postgres-2': ingestPostgresSection(2),
  storage: storageSection,
  'catch-up': catchUpSection,
  'agent-memory': agentMemorySection,
  rsyslog: rsyslogSection,
  'export-verify': exportVerifySection,
  'export-loop': exportLoopSection,
};

async function main(): Promise<void> {
  const runStarted = nowMs();
  const date = new Date().toISOString();
  const busyBefore = await waitForQuietMachine();

  const sections: { name: BenchName; section: Section }[] = [];
  for (const name of selected) {
    if (name !== selected[0]) await waitForQuietMachine();
    const section = await SECTIONS[name](context);
    sections.push({ name, section });
    // Each benchmark's rows as soon as it is done: a long or interrupted run still shows them.
    if (selected.length > 1) process.stderr.write(`${formatTable(section.rows.map(judge))}\n`);
  }
  const rows = sections.flatMap(({ section }) => section.rows);
  const judged = rows.map(judge);

  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
  const disturbed = sections.some(({ section }) => section.disturbed === true);
  const out: string[] = [];
  out.push(`Sakshya benchmarks — ${date}${selected.length < BENCH_NAMES.length ? ` (--only ${selected.join(',')})` : ''}`);
  out.push(`${machine.cpu}, ${machine.cores} cores, ${machine.memoryGb} GiB, Node ${machine.node}, ${machine.platform}${quick ? '  (--quick: sizes too small for real figures)' : ''}`);
  out.push('');
  out.push(formatTable(judged));
  for (const { section } of sections) {
    if (section.notes.length === 0) continue;
    out.push('');
    out.push(...section.notes);
  }
  out.push('');
  out.push(`Results: ${RESULTS_JSON} (${((nowMs() - runStarted) / 1000).toFixed(0)} s in all)`);
  process.stdout.write(out.join('\n') + '\n');

  writeJson(RESULTS_JSON, {
    date,
    quick,
    only: selected,
    machine,
    busyBeforeRun: busyBefore,
    disturbed,
    sizes,
    rows: judged,
    details: Object.fromEntries(sections.map(({ name, section }) => [name, { ...section.details, disturbed: section.disturbed ?? false }])),
    seconds: (nowMs() - runStarted) / 1000,
  });
  writeFileSync(RESULTS_MD, `Run of ${date} (${machine.cpu}, ${machine.cores} cores, Node ${machine.node})\n\n${formatMarkdownTable(judged)}\n`);
}

try {
  await main();
  await cleanup.close();
} catch (err) {
  if (!interrupted) {
    process.stderr.write(`\nbench: failed: ${(err as Error).stack ?? String(err)}\n`);
    await cleanup.close();
    process.exit(1);
  }
}
