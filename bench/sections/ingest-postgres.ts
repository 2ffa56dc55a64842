/**
 * The ingest on PostgreSQL (`ingest-postgres`: one replica; `ingest-postgres-2`: two replicas on
 * one database, the agents split between them): the same timed ingest as the `ingest` benchmark
 * (bench/collector-ingest.ts), each run between two verify-rate measurements, plus what only a
 * shared database has — the serialised integration cost per record (the write lock's hold time
 * from every replica's /metrics) and the CPU of each process that shares this machine's cores:
 * the replicas, the PostgreSQL server, the load generator.
 *
 * With two replicas each gets half the signature workers one replica has (the machine has the
 * same cores either way); what two replicas show here is the cost of sharing the lock between
 * processes, not more throughput: on one machine there are no more cores to add.
 */
import { availableParallelism } from 'node:os';
import { benchCollectorIngest } from '../collector-ingest.ts';
import { BUSY_MACHINE_SHARE, othersBusy } from '../lib/busy-machine.ts';
import { benchDatabase } from '../lib/postgres-server.ts';
import { formatCount, formatNumber, type Row } from '../lib/report.ts';
import { ingestRuns, type IngestRun } from './ingest-runs.ts';
import type { RunContext, Section, SectionRunner } from './section.ts';

const perRecordMicros = (seconds: number, records: number) => (seconds / records) * 1e6;

function runDetails(run: IngestRun) {
  const { timedBatches: _batches, windowMicros: _window, ...ingest } = run.ingest;
  return { ratio: run.ratio, disturbance: run.disturbance, verify: run.verify, ingest };
}

export function ingestPostgresSection(replicas: number): SectionRunner {
  return async (context: RunContext): Promise<Section> => {
    const { sizes, cleanup } = context;
    const key = replicas === 1 ? 'pg' : `pg${replicas}`;
    const available = await context.postgres();
    if (!available.server) {
      return {
        rows: [],
        notes: [`ingest on PostgreSQL (${replicas} replica${replicas > 1 ? 's' : ''}): skipped: ${available.skipped}`],
        details: { skipped: available.skipped },
      };
    }
    const server = available.server;
    // As many signature workers in all as one replica has: the replicas share this machine's cores.
    const workers = Math.max(1, Math.floor(availableParallelism() / replicas));
    const { chosen, runs } = await ingestRuns(context, {
      label: `collector ingest on PostgreSQL, ${replicas} replica${replicas > 1 ? 's' : ''}`,
      idPrefix: replicas === 1 ? 'BN-PA' : 'BN-PB',
      run: async (idPrefix) => {
        const database = await benchDatabase(server, cleanup);
        return benchCollectorIngest(
          {
            ...sizes.ingest,
            idPrefix,
            replicas,
            databaseCpu: server.cpuSeconds,
            collectorEnv: { SAKSHYA_COLLECTOR_DATABASE: database.url, SAKSHYA_VERIFY_WORKERS: String(workers) },
          },
          cleanup,
        );
      },
    });
    for (const run of runs) run.ingest.timedBatches = [];
    const { verify, ingest } = chosen;
    const { cpu, writeLock } = ingest;
    const label = `${replicas} replica${replicas > 1 ? 's' : ''}`;
    const serial = ingest.writeLockSerial;
    const sqlite = context.earlier.sqliteIngest;

    const rows: Row[] = [
      {
        key: `${key}.records_per_second`,
        metric: `ingest on PostgreSQL, ${label}, ${ingest.agents} agents × ${ingest.batchSize}-record batches`,
        value: ingest.recordsPerSecond,
        unit: 'records/s',
        reference: { label: 'Ed25519 verify, all cores', value: verify.allCores, unit: 'verifies/s' },
        ratio: ingest.recordsPerSecond / verify.allCores,
      },
    ];
    if (sqlite) {
      rows.push({
        key: `${key}.vs_sqlite`,
        metric: `ingest on PostgreSQL (${label}) vs on SQLite, ratios to the verify rate`,
        value: ingest.recordsPerSecond / verify.allCores,
        unit: '× verify',
        reference: { label: 'SQLite ingest ÷ verify rate, same run', value: sqlite.ratio, unit: '× verify' },
        ratio: ingest.recordsPerSecond / verify.allCores / sqlite.ratio,
      });
    }
    rows.push(
      { key: `${key}.latency_p50_ms`, metric: `PostgreSQL (${label}): batch latency p50`, value: ingest.batchLatencyMs.p50, unit: 'ms' },
      { key: `${key}.latency_p95_ms`, metric: `PostgreSQL (${label}): batch latency p95`, value: ingest.batchLatencyMs.p95, unit: 'ms' },
      { key: `${key}.latency_p99_ms`, metric: `PostgreSQL (${label}): batch latency p99`, value: ingest.batchLatencyMs.p99, unit: 'ms' },
      {
        key: `${key}.write_lock_us_per_record`,
        metric: `PostgreSQL (${label}): write lock held per record, under the timed load`,
        value: writeLock.heldMicrosPerRecord,
        unit: 'µs',
        ...(sqlite ? { reference: { label: 'on SQLite, same run', value: sqlite.writeLockMicrosPerRecord, unit: 'µs' }, ratio: writeLock.heldMicrosPerRecord / sqlite.writeLockMicrosPerRecord } : {}),
      },
    );
    if (serial) {
      rows.push(
        {
          key: `${key}.write_lock_serial_us_per_record`,
          metric: `PostgreSQL (${label}): write lock held per record, one batch at a time (nothing else running)`,
          value: serial.heldMicrosPerRecord,
          unit: 'µs',
          ...(sqlite?.serialWriteLockMicrosPerRecord !== undefined
            ? { reference: { label: 'on SQLite, same run', value: sqlite.serialWriteLockMicrosPerRecord, unit: 'µs' }, ratio: serial.heldMicrosPerRecord / sqlite.serialWriteLockMicrosPerRecord }
            : {}),
        },
        {
          key: `${key}.integration_ceiling`,
          metric: `PostgreSQL (${label}): integration ceiling, 1e6 ÷ µs held per record one batch at a time`,
          value: 1e6 / serial.heldMicrosPerRecord,
          unit: 'records/s',
          reference: { label: 'ingest measured', value: ingest.recordsPerSecond, unit: 'records/s' },
          ratio: 1e6 / serial.heldMicrosPerRecord / ingest.recordsPerSecond,
        },
      );
    }
    rows.push(
      { key: `${key}.write_lock_busy_share`, metric: `PostgreSQL (${label}): share of the time the write lock was held`, value: writeLock.busyShare * 100, unit: '%' },
      { key: `${key}.write_lock_wait_ms`, metric: `PostgreSQL (${label}): lock wait per batch (mean)`, value: writeLock.waitMsPerTransaction, unit: 'ms' },
      {
        key: `${key}.collector_cpu_per_record_us`,
        metric: `PostgreSQL (${label}): collector CPU per record (all replicas)`,
        value: perRecordMicros(cpu.collectorTotal, ingest.records),
        unit: 'µs',
        reference: { label: 'one Ed25519 verify', value: 1e6 / verify.perCore, unit: 'µs' },
        ratio: cpu.collectorTotal / ingest.records / (1 / verify.perCore),
      },
    );
    if (cpu.database !== undefined) {
      rows.push({ key: `${key}.postgres_cpu_per_record_us`, metric: `PostgreSQL (${label}): PostgreSQL server CPU per record`, value: perRecordMicros(cpu.database, ingest.records), unit: 'µs' });
    }

    const disturbed = othersBusy(cpu) > BUSY_MACHINE_SHARE || verify.disturbed;
    const notes: string[] = [];
    notes.push(
      `PostgreSQL (${label}): ${server.version}, ${server.source}; ` +
        Object.entries(server.settings)
          .map(([name, value]) => `${name}=${value}`)
          .join(', ') +
        `; ${replicas > 1 ? `${replicas} collector processes with ${workers} signature worker${workers > 1 ? 's' : ''} each, agent i sending to replica i mod ${replicas}` : `one collector process with ${workers} signature workers`}.`,
    );
    if (runs.length > 1) {
      notes.push('Runs, each between two verify-rate measurements; the median undisturbed run is reported:');
      for (const [i, run] of runs.entries()) {
        notes.push(
          `  run ${i + 1}: ${run.ratio.toFixed(3)}× (${formatNumber(run.ingest.recordsPerSecond)} records/s against ${formatNumber(run.verify.allCores)} verifies/s, ` +
            `lock ${formatNumber(run.ingest.writeLock.heldMicrosPerRecord)} µs/record under load` +
            (run.ingest.writeLockSerial ? `, ${formatNumber(run.ingest.writeLockSerial.heldMicrosPerRecord)} alone` : '') +
            `${run.disturbance > 0 ? ', disturbed' : ''})${run === chosen ? ' ← reported' : ''}`,
        );
      }
    }
    notes.push(`CPU during the timed ingest on PostgreSQL (${label}; ${cpu.wallSeconds.toFixed(1)} s wall, ${cpu.cores} cores = ${(cpu.wallSeconds * cpu.cores).toFixed(1)} CPU-s available):`);
    const line = (seconds: number, what: string) =>
      `  ${seconds.toFixed(2).padStart(6)} CPU-s  ${formatNumber(perRecordMicros(seconds, ingest.records)).padStart(5)} µs/record  ${what}`;
    for (const [i, seconds] of cpu.collectorByProcess.entries()) notes.push(line(seconds, replicas > 1 ? `collector replica ${i + 1}` : 'collector'));
    for (const [group, seconds] of Object.entries(cpu.collector).sort((a, b) => b[1] - a[1])) {
      if (seconds > 0) notes.push(`      of which ${seconds.toFixed(2)} CPU-s ${group}`);
    }
    notes.push(cpu.database === undefined ? '       —  PostgreSQL server: not counted (its processes are not visible from here)' : line(cpu.database, 'PostgreSQL server (postmaster and its backends)'));
    notes.push(line(cpu.loadGenerator, 'load generator (this process)'));
    if (cpu.otherProcesses !== undefined) notes.push(`  ${cpu.otherProcesses.toFixed(2).padStart(6)} CPU-s  other processes on the machine${disturbed ? '  ← the machine was not quiet: figures are disturbed' : ''}`);
    notes.push(
      `Write lock (${label}): ${formatCount(writeLock.transactions)} write transactions held it ${writeLock.heldSeconds.toFixed(2)} s in all ` +
        `(${formatNumber(writeLock.heldMsPerTransaction)} ms per ${ingest.batchSize}-record batch, ${(writeLock.busyShare * 100).toFixed(0)} % of the wall time); ` +
        `they waited ${formatNumber(writeLock.waitMsPerTransaction)} ms per batch on average.` +
        (serial
          ? ` One batch at a time (${formatCount(serial.transactions)} batches of the first agent alone): ${formatNumber(serial.heldMsPerTransaction)} ms held per batch, ` +
            `${(serial.busyShare * 100).toFixed(0)} % of that phase's wall time (the rest: HTTP, signature checks, the receipt's way back).`
          : '') +
        (replicas > 1 ? ` Per replica: ${writeLock.perReplica.map((r, i) => `${i + 1}: ${formatCount(r.records)} records, ${r.heldSeconds.toFixed(2)} s held, ${r.waitedSeconds.toFixed(2)} s waited`).join('; ')}.` : ''),
    );

    return {
      rows,
      notes,
      disturbed,
      details: {
        replicas,
        workersPerReplica: workers,
        server: { version: server.version, source: server.source, settings: server.settings },
        reported: runDetails(chosen),
        runs: runs.map((run) => ({ ...runDetails(run), reported: run === chosen })),
      },
    };
  };
}
