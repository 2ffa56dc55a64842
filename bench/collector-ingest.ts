/**
 * Collector ingest, end to end: a real `sakshya-collector serve` process, K simulated agents
 * enrolled through the real CLI and API, and batches POSTed concurrently — one batch in flight
 * per agent, as the real agent sends — each with a fresh agent JWT.
 *
 * Before the timed phase: every record is signed and chained, every batch encoded and gzipped,
 * every JWT made, and one warm-up round sent (JIT, the verify worker pool, SQLite caches). The
 * timed phase then only writes prepared bytes to sockets and reads the answers. Each answer
 * MUST be 200 with a receipt that accepts the whole batch; after the timed phase every receipt
 * signature is verified with the pinned receipt key and the ledger size is checked with the CLI.
 *
 * With `replicas` > 1 (on a PostgreSQL database, `collectorEnv.SAKSHYA_COLLECTOR_DATABASE`), as
 * many `serve` processes share the database, the second and later with a copy of the first's
 * keys; agent i enrolls with and sends to replica i mod n, so the load is split evenly. Each
 * replica's /metrics is scraped before and after the timed phase for the write lock's figures
 * (bench/lib/write-lock.ts), and the CPU of every replica (and of the database server, if
 * `databaseCpu` counts it) is read from /proc.
 *
 * With `serialBatches`, the first agent then sends that many more batches one at a time, alone:
 * the write lock's hold time per record with the CPU otherwise idle (no signature checks running
 * beside the write), i.e. what a database on cores of its own would see; under the timed load
 * the lock holder shares the cores with every signature worker.
 */
import { verifyReceipt } from '../shared/receipt.ts';
import { API_PREFIX, type SignedReceipt } from '../shared/protocol.ts';
import type { CollectorProcess } from '../test/helpers/collector-process.ts';
import type { Cleanup } from './lib/cleanup.ts';
import { cpuBreakdown, cpuSnapshot, type CpuBreakdown } from './lib/cpu-accounting.ts';
import { enrollSimulatedAgent, ledgerStats, mapLimit, startBenchCollector, type BenchCollector } from './lib/collector.ts';
import { HttpClient, type HttpAnswer } from './lib/http-client.ts';
import { mean, nowMs, summarise, type LatencySummary } from './lib/stats.ts';
import { SimulatedAgent, simulatedAgentIds, type PreparedBatch } from './lib/workload.ts';
import { scrapeWriteLock, writeLockFigures, type WriteLockFigures } from './lib/write-lock.ts';

export interface IngestOptions {
  agents: number;
  batchSize: number;
  warmupBatchesPerAgent: number;
  timedBatchesPerAgent: number;
  /** Extra environment for the collector process (e.g. NODE_OPTIONS for a CPU profile). */
  collectorEnv?: NodeJS.ProcessEnv;
  /** Agent id prefix, so that runs in one process never reuse ids. */
  idPrefix?: string;
  /** Collector processes on the one database (default 1); more than one needs a PostgreSQL database in `collectorEnv`. */
  replicas?: number;
  /** CPU seconds the database server has used so far, if it can be counted. */
  databaseCpu?: () => number | undefined;
  /** Batches the first agent sends one at a time after the timed phase (the uncontended write lock). */
  serialBatches?: number;
}

export interface IngestResult {
  agents: number;
  batchSize: number;
  replicas: number;
  /** Records and batches acknowledged in the timed phase. */
  records: number;
  batches: number;
  seconds: number;
  recordsPerSecond: number;
  batchLatencyMs: LatencySummary;
  averageBodyBytes: number;
  averageRecordBytes: number;
  averageBatchJsonBytes: number;
  averageBatchGzipBytes: number;
  prepareSeconds: number;
  ledgerSize: number;
  /** The timed phase on the monotonic clock (µs), to cut a CPU profile of the collector to it. */
  windowMicros: { start: number; end: number };
  /** CPU seconds during the timed phase: collector threads (per replica too), database server, load generator, whole machine. */
  cpu: CpuBreakdown;
  /** The single writer's lock during the timed phase, from the replicas' /metrics. */
  writeLock: WriteLockFigures;
  /** The same while one agent sends `serialBatches` batches one at a time, alone (undefined without them). */
  writeLockSerial: WriteLockFigures | undefined;
  /** The timed batches, for the bare-SQLite baseline (not written to JSON). */
  timedBatches: PreparedBatch[];
}

interface AgentPlan {
  agent: SimulatedAgent;
  collector: BenchCollector;
  warmup: PreparedBatch[];
  timed: PreparedBatch[];
  /** Sent after the timed phase, one at a time (the first agent only). */
  serial: PreparedBatch[];
  tokens: string[];
}

/** Whether the collector still runs, and its last log lines: what a failed request needs. */
function describeCollector(collector: CollectorProcess): string {
  const { exitCode, signalCode } = collector.child;
  const state = exitCode === null && signalCode === null ? 'the collector is still running' : `the collector exited (code ${exitCode}, signal ${signalCode})`;
  return `${state}; its last log lines:\n${collector.logs.slice(-10).join('\n')}`;
}

function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export async function benchCollectorIngest(options: IngestOptions, cleanup: Cleanup): Promise<IngestResult> {
  const replicas: BenchCollector[] = [await startBenchCollector(cleanup, options.collectorEnv)];
  for (let i = 1; i < (options.replicas ?? 1); i++) replicas.push(await startBenchCollector(cleanup, options.collectorEnv, replicas[0]!.dir));
  const collector = replicas[0]!;
  const agents = simulatedAgentIds(options.agents, options.idPrefix).map((id) => new SimulatedAgent(id));
  const replicaOf = (agent: SimulatedAgent) => replicas[agents.indexOf(agent) % replicas.length]!;
  const enrollClient = new HttpClient(2);
  try {
    // Two at a time: each enrollment runs the CLI, a Node process of its own, on a 2-core machine.
    await mapLimit(agents, 2, (agent) => enrollSimulatedAgent(replicaOf(agent), enrollClient, agent));
  } finally {
    enrollClient.close();
  }

  const prepareStart = nowMs();
  const perAgent = options.warmupBatchesPerAgent + options.timedBatchesPerAgent;
  const plans: AgentPlan[] = [];
  for (const agent of agents) {
    const count = perAgent + (agent === agents[0] ? (options.serialBatches ?? 0) : 0);
    const batches = Array.from({ length: count }, (_, b) => agent.nextBatch(options.batchSize, (count - b - 1) * options.batchSize));
    const tokens = await Promise.all(batches.map(() => agent.token(collector.origin)));
    plans.push({
      agent,
      collector: replicaOf(agent),
      warmup: batches.slice(0, options.warmupBatchesPerAgent),
      timed: batches.slice(options.warmupBatchesPerAgent, perAgent),
      serial: batches.slice(perAgent),
      tokens,
    });
  }
  const prepareSeconds = (nowMs() - prepareStart) / 1000;

  // A fresh client after the preparation: no keep-alive socket that the server may have timed
  // out meanwhile (reusing one races with its close and can end in ECONNRESET).
  const client = new HttpClient(options.agents);
  cleanup.defer('close the HTTP client', () => client.close());
  const receipts: { batch: PreparedBatch; agent: SimulatedAgent; signed: SignedReceipt }[] = [];
  const send = async (plan: AgentPlan, batch: PreparedBatch, token: string): Promise<number> => {
    const started = nowMs();
    let answer: HttpAnswer;
    try {
      answer = await client.post(
        `${plan.collector.url}${API_PREFIX}/batches`,
        {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          'idempotency-key': batch.batchId,
        },
        batch.gzipped,
      );
    } catch (err) {
      throw new Error(`sending batch ${batch.batchId} of ${batch.agent} failed: ${(err as Error).message}; ${describeCollector(plan.collector)}`, { cause: err });
    }
    const latency = nowMs() - started;
    if (answer.status !== 200) throw new Error(`batch ${batch.batchId} of ${batch.agent} answered ${answer.status}: ${answer.text.slice(0, 500)}`);
    const signed = JSON.parse(answer.text) as SignedReceipt;
    const { receipt } = signed;
    if (receipt.accepted !== batch.records.length || receipt.duplicates !== 0 || receipt.highestSeq !== batch.lastSeq) {
      throw new Error(`batch ${batch.batchId} of ${batch.agent}: the receipt does not accept the whole batch: ${answer.text.slice(0, 500)}`);
    }
    receipts.push({ batch, agent: plan.agent, signed });
    return latency;
  };

  // Warm-up round, not timed.
  await Promise.all(plans.map(async (plan) => {
    for (const [i, batch] of plan.warmup.entries()) await send(plan, batch, plan.tokens[i]!);
  }));

  // Timed phase: every agent sends its batches one after another, all agents at once.
  const latencies: number[] = [];
  const pids = replicas.map((replica) => replica.child.pid);
  const metricsUrls = replicas.map((replica) => replica.metricsUrl);
  const lockBefore = await scrapeWriteLock(metricsUrls);
  const cpuBefore = cpuSnapshot(pids, options.databaseCpu);
  const windowStart = monotonicMicros();
  const started = nowMs();
  await Promise.all(plans.map(async (plan) => {
    for (const [i, batch] of plan.timed.entries()) latencies.push(await send(plan, batch, plan.tokens[options.warmupBatchesPerAgent + i]!));
  }));
  const seconds = (nowMs() - started) / 1000;
  const windowEnd = monotonicMicros();
  const cpu = cpuBreakdown(cpuBefore, cpuSnapshot(pids, options.databaseCpu));
  const writeLock = writeLockFigures(lockBefore, await scrapeWriteLock(metricsUrls), seconds);

  // One agent alone, one batch at a time: nothing else runs while the lock is held.
  let writeLockSerial: WriteLockFigures | undefined;
  const first = plans[0]!;
  if (first.serial.length > 0) {
    const serialBefore = await scrapeWriteLock(metricsUrls);
    const serialStarted = nowMs();
    for (const [i, batch] of first.serial.entries()) await send(first, batch, first.tokens[perAgent + i]!);
    writeLockSerial = writeLockFigures(serialBefore, await scrapeWriteLock(metricsUrls), (nowMs() - serialStarted) / 1000);
  }

  // Outside the timed phase: every receipt verifies with the key the agent pinned, and the
  // ledger holds every record exactly once.
  for (const { agent, signed } of receipts) await verifyReceipt(signed, agent.receiptKey);
  const stats = await ledgerStats(collector);
  const sent = (agents.length * perAgent + first.serial.length) * options.batchSize;
  if (stats.size < sent) throw new Error(`the ledger holds ${stats.size} entries, fewer than the ${sent} records acknowledged`);

  for (const [i, replica] of replicas.entries()) {
    const exitCode = await replica.stop('SIGTERM');
    if (exitCode !== 0) throw new Error(`the collector${replicas.length > 1 ? ` (replica ${i + 1})` : ''} exited with code ${exitCode} on SIGTERM`);
  }

  // In the order the collector saw them, roughly: round by round, agent by agent.
  const timedBatches = Array.from({ length: options.timedBatchesPerAgent }, (_, b) => plans.map((plan) => plan.timed[b]!)).flat();
  const allRecords = timedBatches.flatMap((batch) => batch.records);
  const records = allRecords.length;
  return {
    agents: options.agents,
    batchSize: options.batchSize,
    replicas: replicas.length,
    records,
    batches: timedBatches.length,
    seconds,
    recordsPerSecond: records / seconds,
    batchLatencyMs: summarise(latencies),
    averageBodyBytes: mean(allRecords.map((record) => record.bodyBytes)),
    averageRecordBytes: mean(allRecords.map((record) => Buffer.byteLength(record.canonical, 'utf8'))),
    averageBatchJsonBytes: mean(timedBatches.map((batch) => batch.jsonBytes)),
    averageBatchGzipBytes: mean(timedBatches.map((batch) => batch.gzipped.length)),
    prepareSeconds,
    ledgerSize: stats.size,
    windowMicros: { start: windowStart, end: windowEnd },
    cpu,
    writeLock,
    writeLockSerial,
    timedBatches,
  };
}
