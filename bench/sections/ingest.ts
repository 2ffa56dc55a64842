/**
 * The ingest section: collector ingest end to end (the reported run of several, bench/sections/
 * ingest-runs.ts), one real agent, the Merkle ledger in the collector's store against the bare
 * SQLite insert loop, the stage costs on one thread and, unless `--no-profile`, where a
 * CPU-profiled collector spends its time.
 */
import { execFile } from 'node:child_process';
import { cpSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { benchCollectorIngest, type IngestResult } from '../collector-ingest.ts';
import type { StageCostResult, StageOptions } from '../ingest-stages.ts';
import { prepareLedger } from '../ledger-merkle.ts';
import { BUSY_MACHINE_SHARE, othersBusy } from '../lib/busy-machine.ts';
import { summariseProfiles, type ThreadProfile } from '../lib/cpu-profile.ts';
import { phase } from '../lib/phase.ts';
import { formatNumber, type Row } from '../lib/report.ts';
import { timeRoundsInTurn } from '../lib/rounds.ts';
import { benchRealAgent } from '../real-agent.ts';
import { prepareSqliteInsertBaseline } from '../sqlite-insert-baseline.ts';
import { ingestRuns, type IngestRun } from './ingest-runs.ts';
import type { RunContext, Section } from './section.ts';
import { DRIFT_LIMIT } from './verify-reference.ts';

function ingestDetails(result: IngestResult) {
  const { timedBatches: _batches, windowMicros: _window, ...details } = result;
  return details;
}

const perRecordMicros = (seconds: number, records: number) => (seconds / records) * 1e6;

function profileTable(threads: readonly ThreadProfile[], records: number): string {
  const lines: string[] = [];
  for (const thread of threads) {
    lines.push(`  ${thread.thread} thread: ${formatNumber(thread.windowMs)} ms of wall time sampled in the timed window`);
    for (const { stage, ms } of thread.stages) {
      if (ms < thread.windowMs * 0.005) continue;
      const share = ((100 * ms) / thread.windowMs).toFixed(1).padStart(5);
      lines.push(`    ${share} %  ${formatNumber(ms).padStart(7)} ms  ${formatNumber((ms * 1000) / records).padStart(6)} µs/record (wall)  ${stage}`);
    }
  }
  return lines.join('\n');
}

function stageTable(result: StageCostResult, measuredMicros: number): string {
  const lines = ['Ingest stage costs on one core, no contention (collector code, µs of CPU per record):'];
  for (const where of ['main thread', 'batch-check worker'] as const) {
    for (const stage of result.stages.filter((s) => s.where === where)) {
      const label = stage.comparison ? `    for comparison: ${stage.stage}` : stage.partOf ? `    of which ${stage.stage}` : `${where}: ${stage.stage}`;
      lines.push(`  ${formatNumber(stage.micros).padStart(6)} µs  ${label}`);
    }
  }
  lines.push(
    `  ${formatNumber(result.totalMicros).padStart(6)} µs  sum of the stages (main ${formatNumber(result.mainMicros)}, workers ${formatNumber(result.workerMicros)}); ` +
      `measured in the real run: ${formatNumber(measuredMicros)} µs (the rest: HTTP, express, logging, GC, pool scheduling, contention)`,
  );
  return lines.join('\n');
}

/** bench/ingest-stages.ts in a Node process of its own: a clean heap, as in the collector. */
async function ingestStagesInFreshProcess(options: StageOptions): Promise<StageCostResult> {
  const script = fileURLToPath(new URL('../ingest-stages.ts', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script, JSON.stringify(options)], { timeout: 120_000 });
  return JSON.parse(stdout) as StageCostResult;
}

/** Collector ingest, one real agent, the Merkle ledger on SQLite, stage costs, the profile. */
export async function ingestSection(context: RunContext): Promise<Section> {
  const { sizes, quick, profile, cleanup } = context;
  const { chosen, runs } = await ingestRuns(context);
  const { verify, ingest } = chosen;
  const agent = await phase('one real agent (local API, sync --once)', () => benchRealAgent(sizes.realAgent, cleanup));
  const leaves = ingest.records;
  const ledger = await phase(`Merkle trees of ${formatNumber(sizes.ledger.smallTree)} and ${formatNumber(sizes.ledger.bigTree)} leaves on SQLite, inclusion proofs`, () =>
    prepareLedger({ ...sizes.ledger, appendLeaves: leaves, appendOnBigTree: leaves }, cleanup),
  );
  const storage = await phase('bare SQLite inserts and Merkle appends, taking turns', async () => {
    const inserts = await prepareSqliteInsertBaseline(ingest.timedBatches, cleanup);
    const [baseline, append, appendOnBigTree] = await timeRoundsInTurn([inserts, ledger.appendFromEmpty, ledger.appendOnBigTree]);
    return { baseline: baseline!, append: append!, appendOnBigTree: appendOnBigTree! };
  });
  const { baseline, append, appendOnBigTree } = storage;
  const { proofs } = ledger;

  const stages = await phase('ingest stage costs, one thread (fresh process)', () =>
    ingestStagesInFreshProcess({
      batches: quick ? 2 : 4,
      batchSize: sizes.ingest.batchSize,
      sqliteRowsPerSecond: baseline.perSecond,
      merkleLeavesPerSecond: append.perSecond,
    }),
  );

  let profiled: { ingest: ReturnType<typeof ingestDetails>; threads: ThreadProfile[] } | undefined;
  if (profile) {
    profiled = await phase('collector ingest again, CPU-profiled (where the time goes)', async () => {
      const dir = cleanup.tempDir('sakshya-bench-profile-');
      const nodeOptions = [process.env.NODE_OPTIONS, '--cpu-prof', '--cpu-prof-interval=2000', `--cpu-prof-dir=${dir}`].filter(Boolean).join(' ');
      const run = await benchCollectorIngest({ ...sizes.profiledIngest, idPrefix: 'BN-PRF', collectorEnv: { NODE_OPTIONS: nodeOptions } }, cleanup);
      // BENCH_KEEP_PROFILES=<dir> keeps the .cpuprofile files (one per thread) for a closer look.
      if (process.env.BENCH_KEEP_PROFILES) cpSync(dir, process.env.BENCH_KEEP_PROFILES, { recursive: true });
      return { ingest: ingestDetails(run), threads: summariseProfiles(dir, run.windowMicros.start, run.windowMicros.end) };
    });
  }

  const cpu = ingest.cpu;
  const verifyWhen = verify.used === 'both' ? ' (mean, before + after ingest)' : ` (${verify.used} ingest)`;
  const rows: Row[] = [
    { key: 'verify.per_core', metric: `Ed25519 verify, 1 core${verifyWhen}`, value: verify.perCore, unit: 'verifies/s' },
    { key: 'verify.all_cores', metric: `Ed25519 verify, all ${verify.cores} cores${verifyWhen}`, value: verify.allCores, unit: 'verifies/s' },
    {
      key: 'ingest.records_per_second',
      metric: `collector ingest, ${ingest.agents} agents × ${ingest.batchSize}-record batches`,
      value: ingest.recordsPerSecond,
      unit: 'records/s',
      reference: { label: 'Ed25519 verify, all cores', value: verify.allCores, unit: 'verifies/s' },
      ratio: ingest.recordsPerSecond / verify.allCores,
      target: { op: '>=', value: 0.5 },
    },
    {
      key: 'ingest.vs_sqlite',
      metric: 'collector ingest vs bare SQLite inserts',
      value: ingest.recordsPerSecond,
      unit: 'records/s',
      reference: { label: 'bare insert loop', value: baseline.perSecond, unit: 'rows/s' },
      ratio: ingest.recordsPerSecond / baseline.perSecond,
    },
    { key: 'ingest.latency_p50_ms', metric: 'batch latency p50', value: ingest.batchLatencyMs.p50, unit: 'ms' },
    { key: 'ingest.latency_p95_ms', metric: 'batch latency p95', value: ingest.batchLatencyMs.p95, unit: 'ms' },
    { key: 'ingest.latency_p99_ms', metric: 'batch latency p99', value: ingest.batchLatencyMs.p99, unit: 'ms' },
    {
      key: 'ingest.write_lock_us_per_record',
      metric: 'write lock held per record (serialised integration)',
      value: ingest.writeLock.heldMicrosPerRecord,
      unit: 'µs',
    },
    { key: 'ingest.write_lock_wait_ms', metric: 'write lock wait per batch (mean)', value: ingest.writeLock.waitMsPerTransaction, unit: 'ms' },
    ...(ingest.writeLockSerial
      ? [
          {
            key: 'ingest.write_lock_serial_us_per_record',
            metric: 'write lock held per record, one batch at a time (nothing else running)',
            value: ingest.writeLockSerial.heldMicrosPerRecord,
            unit: 'µs',
          },
        ]
      : []),
    {
      key: 'ingest.collector_cpu_per_record_us',
      metric: 'collector CPU per record (all threads)',
      value: perRecordMicros(cpu.collectorTotal, ingest.records),
      unit: 'µs',
      reference: { label: 'one Ed25519 verify', value: 1e6 / verify.perCore, unit: 'µs' },
      ratio: cpu.collectorTotal / ingest.records / (1 / verify.perCore),
    },
    { key: 'sqlite.rows_per_second', metric: `bare SQLite insert, ${sizes.ingest.batchSize} rows/transaction`, value: baseline.perSecond, unit: 'rows/s' },
    {
      key: 'agent.local_api_records_per_second',
      metric: `real agent: local API writes (${agent.writers} callers)`,
      value: agent.localApiRecordsPerSecond,
      unit: 'records/s',
    },
    {
      key: 'agent.sync_records_per_second',
      metric: `real agent: sync --once of ${agent.records} records`,
      value: agent.syncRecordsPerSecond,
      unit: 'records/s',
      reference: { label: `collector ingest, ${ingest.agents} agents`, value: ingest.recordsPerSecond, unit: 'records/s' },
      ratio: agent.syncRecordsPerSecond / ingest.recordsPerSecond,
    },
    {
      key: 'ledger.append_leaves_per_second',
      metric: `Merkle append + root, ${sizes.ledger.batchSize} leaves/transaction`,
      value: append.perSecond,
      unit: 'leaves/s',
      reference: { label: 'bare insert loop', value: baseline.perSecond, unit: 'rows/s' },
      ratio: append.perSecond / baseline.perSecond,
      target: { op: '>=', value: 0.5 },
    },
    {
      key: 'ledger.append_at_big_tree',
      metric: `Merkle append on a ${formatNumber(proofs.big.size)}-leaf tree`,
      value: appendOnBigTree.perSecond,
      unit: 'leaves/s',
      reference: { label: 'append from empty', value: append.perSecond, unit: 'leaves/s' },
      ratio: appendOnBigTree.perSecond / append.perSecond,
      target: { op: '>=', value: 0.5 },
    },
    {
      key: 'ledger.proof_p50_small_ms',
      metric: `inclusion proof p50, ${formatNumber(proofs.small.size)} leaves`,
      value: proofs.small.latencyMs.p50,
      unit: 'ms',
    },
    {
      key: 'ledger.proof_p50_big_ms',
      metric: `inclusion proof p50, ${formatNumber(proofs.big.size)} leaves`,
      value: proofs.big.latencyMs.p50,
      unit: 'ms',
      reference: { label: `p50 at ${formatNumber(proofs.small.size)} leaves`, value: proofs.small.latencyMs.p50, unit: 'ms' },
      ratio: proofs.big.latencyMs.p50 / proofs.small.latencyMs.p50,
      target: { op: '<=', value: 3 },
    },
    {
      key: 'ledger.proof_reads_big',
      metric: `subtree reads per proof, ${formatNumber(proofs.big.size)} leaves`,
      value: proofs.big.readsPerProof,
      unit: 'reads',
      reference: { label: `at ${formatNumber(proofs.small.size)} leaves`, value: proofs.small.readsPerProof, unit: 'reads' },
      ratio: proofs.big.readsPerProof / proofs.small.readsPerProof,
    },
  ];
  context.earlier.verifyRate = { perCore: verify.perCore, allCores: verify.allCores, cores: verify.cores };
  context.earlier.sqliteIngest = {
    recordsPerSecond: ingest.recordsPerSecond,
    ratio: chosen.ratio,
    writeLockMicrosPerRecord: ingest.writeLock.heldMicrosPerRecord,
    serialWriteLockMicrosPerRecord: ingest.writeLockSerial?.heldMicrosPerRecord,
  };
  const disturbed = othersBusy(cpu) > BUSY_MACHINE_SHARE || verify.disturbed;

  const drifted = Math.abs(verify.drift) > DRIFT_LIMIT;
  const out: string[] = [];
  if (verify.used !== 'both') {
    const excluded = verify.used === 'before' ? verify.after : verify.before;
    out.push(
      `Note: other processes took ${(excluded.othersBusy * 100).toFixed(0)} % of the CPU while the verify rate was measured ` +
        `${verify.used === 'before' ? 'after' : 'before'} the ingest; the reference uses only the measurement ${verify.used} it.`,
    );
  }
  if (drifted) {
    out.push(
      `Note: the all-cores verify rate moved ${(verify.drift * 100).toFixed(0)} % between before and after the ingest ` +
        `(${formatNumber(verify.before.allCores)} → ${formatNumber(verify.after.allCores)}/s): the machine's speed drifted, ratios are approximate.`,
    );
  }
  if (runs.length > 1) {
    const describe = (run: IngestRun) =>
      `${run.ratio.toFixed(3)}× (${formatNumber(run.ingest.recordsPerSecond)} records/s against ${formatNumber(run.verify.allCores)} verifies/s, ` +
      `${formatNumber(perRecordMicros(run.ingest.cpu.collectorTotal, run.ingest.records))} µs CPU/record${run.disturbance > 0 ? ', disturbed' : ''})${run === chosen ? ' ← reported' : ''}`;
    out.push(`Ingest runs, each between two verify-rate measurements; the median undisturbed run is reported:`);
    for (const [i, run] of runs.entries()) out.push(`  run ${i + 1}: ${describe(run)}`);
  }
  out.push('');
  out.push(
    `Collector CPU during the timed ingest (${cpu.wallSeconds.toFixed(1)} s wall, ${cpu.cores} cores = ${(cpu.wallSeconds * cpu.cores).toFixed(1)} CPU-s available):`,
  );
  for (const [group, seconds] of Object.entries(cpu.collector).sort((a, b) => b[1] - a[1])) {
    if (seconds === 0) continue;
    out.push(`  ${seconds.toFixed(2).padStart(6)} CPU-s  ${formatNumber(perRecordMicros(seconds, ingest.records)).padStart(5)} µs/record  ${group}`);
  }
  out.push(`  ${cpu.loadGenerator.toFixed(2).padStart(6)} CPU-s  ${formatNumber(perRecordMicros(cpu.loadGenerator, ingest.records)).padStart(5)} µs/record  load generator (this process)`);
  if (cpu.otherProcesses !== undefined) out.push(`  ${cpu.otherProcesses.toFixed(2).padStart(6)} CPU-s  other processes on the machine${disturbed ? '  ← the machine was not quiet: figures are disturbed' : ''}`);
  if (agent.note) out.push(`Note (real agent): ${agent.note}`);
  out.push('');
  out.push(stageTable(stages, perRecordMicros(cpu.collectorTotal, ingest.records)));
  if (profiled) {
    out.push('');
    out.push(`Where the time goes (separate CPU-profiled run, ${formatNumber(profiled.ingest.recordsPerSecond)} records/s under the profiler; wall-clock samples per thread):`);
    out.push(profileTable(profiled.threads, profiled.ingest.records));
  }
  return {
    rows,
    notes: out,
    disturbed,
    details: {
      verifyDrifted: drifted,
      verify,
      ingest: ingestDetails(ingest),
      ingestRuns: runs.map((run) => ({
        ratio: run.ratio,
        recordsPerSecond: run.ingest.recordsPerSecond,
        verifyAllCores: run.verify.allCores,
        collectorCpuPerRecordUs: perRecordMicros(run.ingest.cpu.collectorTotal, run.ingest.records),
        disturbance: run.disturbance,
        reported: run === chosen,
      })),
      sqliteBaseline: baseline,
      merkleAppend: { fromEmpty: append, onBigTree: appendOnBigTree },
      realAgent: agent,
      proofs,
      stages,
      profile: profiled,
    },
  };
}
