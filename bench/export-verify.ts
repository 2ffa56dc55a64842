/**
 * Export and verify a report bundle (issue 5).
 *
 * 1. A real collector; K simulated agents (bench/lib/workload.ts: real keys, signed and chained
 *    records, enrolled through the CLI and the API) send N records in gzipped batches of 500 —
 *    the real ingest path fills the ledger, every receipt must accept the whole batch.
 * 2. The collector's public keys are fetched from `GET /api/v1/keys` (what an auditor pins out of
 *    band), and the server is stopped so the two commands below have the machine to themselves.
 * 3. `sakshya-collector report export --from … --to … --out DIR --json` in a child process: the
 *    whole range, every record of the ledger. Time and peak RSS (VmHWM) of the process.
 * 4. `sakshya-verify DIR --collector-key keys.json --json` in a child process (its default worker
 *    pool: one thread per core): time, peak RSS, and the verdict, which must be `ok`.
 *
 * Both times include process start-up (≈ 0.3 s each), as an auditor would see them.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { API_PREFIX } from '../shared/protocol.ts';
import { COLLECTOR_BIN } from '../test/helpers/collector-process.ts';
import { VERIFY_BIN } from '../test/helpers/verifier-process.ts';
import type { Cleanup } from './lib/cleanup.ts';
import { enrollSimulatedAgent, ledgerStats, mapLimit, startBenchCollector } from './lib/collector.ts';
import { HttpClient } from './lib/http-client.ts';
import { runSampled, type SampledRun } from './lib/sampled-child.ts';
import { nowMs } from './lib/stats.ts';
import { SimulatedAgent, simulatedAgentIds } from './lib/workload.ts';

export interface ExportVerifyOptions {
  records: number;
  agents: number;
  batchSize: number;
  timeoutMs: number;
}

export interface CommandFigures {
  seconds: number;
  recordsPerSecond: number;
  peakRssBytes: number | undefined;
}

export interface ExportVerifyResult {
  /** Records sent by the simulated agents. */
  recordsSent: number;
  fillSeconds: number;
  /** Records in the bundle (the agents' and the collector's own chain). */
  bundleRecords: number;
  export: CommandFigures;
  verify: CommandFigures & { threads: string };
}

/** The environment of a child command: this process's, without SAKSHYA_* settings, plus `env`. */
function childEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SAKSHYA_')) base[name] = value;
  return { ...base, ...env };
}

function figures(run: SampledRun, records: number): CommandFigures {
  return { seconds: run.seconds, recordsPerSecond: records / run.seconds, peakRssBytes: run.peakRssBytes };
}

export async function benchExportVerify(options: ExportVerifyOptions, cleanup: Cleanup): Promise<ExportVerifyResult> {
  const collector = await startBenchCollector(cleanup);
  const agents = simulatedAgentIds(options.agents, 'BN-EXP').map((id) => new SimulatedAgent(id));
  const client = new HttpClient(options.agents);
  cleanup.defer('close the HTTP client', () => client.close());
  await mapLimit(agents, 2, (agent) => enrollSimulatedAgent(collector, client, agent));

  // The real ingest path: each agent signs and sends its batches one after another.
  const perAgent = Math.ceil(options.records / options.agents);
  const fillStart = nowMs();
  await Promise.all(
    agents.map(async (agent) => {
      for (let sent = 0; sent < perAgent; ) {
        const size = Math.min(options.batchSize, perAgent - sent);
        const batch = agent.nextBatch(size, perAgent - sent - size);
        const answer = await client.post(
          `${collector.url}${API_PREFIX}/batches`,
          {
            authorization: `Bearer ${await agent.token(collector.origin)}`,
            'content-type': 'application/json',
            'content-encoding': 'gzip',
            'idempotency-key': batch.batchId,
          },
          batch.gzipped,
        );
        if (answer.status !== 200) throw new Error(`export bench: batch of ${agent.id} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
        const { receipt } = JSON.parse(answer.text) as { receipt: { accepted: number } };
        if (receipt.accepted !== size) throw new Error(`export bench: batch of ${agent.id} accepted ${receipt.accepted} of ${size}`);
        sent += size;
      }
    }),
  );
  const fillSeconds = (nowMs() - fillStart) / 1000;
  const recordsSent = perAgent * options.agents;

  const work = cleanup.tempDir('sakshya-bench-export-');
  const keysFile = join(work, 'collector-keys.json');
  const keys = await fetch(`${collector.url}${API_PREFIX}/keys`);
  if (keys.status !== 200) throw new Error(`GET ${API_PREFIX}/keys answered ${keys.status}`);
  writeFileSync(keysFile, await keys.text());
  client.close();
  const stopped = await collector.stop('SIGTERM');
  if (stopped !== 0) throw new Error(`the collector exited with code ${stopped} on SIGTERM`);
  const stats = await ledgerStats(collector);
  if (stats.size < recordsSent) throw new Error(`the ledger holds ${stats.size} entries, fewer than the ${recordsSent} records acknowledged`);

  // The whole ledger's range: from yesterday to tomorrow (UTC dates).
  const day = 86_400_000;
  const from = new Date(Date.now() - day).toISOString().slice(0, 10);
  const to = new Date(Date.now() + 2 * day).toISOString().slice(0, 10);
  const bundle = join(work, 'bundle');
  const exported = await runSampled(
    process.execPath,
    [COLLECTOR_BIN, 'report', 'export', '--from', from, '--to', to, '--out', bundle, '--json'],
    childEnv({ SAKSHYA_COLLECTOR_DIR: collector.dir, SAKSHYA_COLLECTOR_ORIGIN: collector.origin, SAKSHYA_LOG_LEVEL: 'warn' }),
    cleanup,
    options.timeoutMs,
  );
  if (exported.code !== 0) throw new Error(`report export failed (${exported.code}): ${exported.stderr.slice(-2000)}`);
  const summary = JSON.parse(exported.stdout) as { counts: { records: number } };
  const bundleRecords = summary.counts.records;
  if (bundleRecords < recordsSent) throw new Error(`the bundle holds ${bundleRecords} records, fewer than the ${recordsSent} sent`);

  const verified = await runSampled(process.execPath, [VERIFY_BIN, bundle, '--collector-key', keysFile, '--json'], childEnv({}), cleanup, options.timeoutMs);
  let verdict: { ok?: boolean; records?: unknown } = {};
  try {
    verdict = JSON.parse(verified.stdout) as typeof verdict;
  } catch {
    // reported below with the exit code
  }
  if (verified.code !== 0 || verdict.ok !== true) {
    throw new Error(`sakshya-verify did not accept the bundle (exit ${verified.code}): ${verified.stdout.slice(0, 1000)} ${verified.stderr.slice(-1000)}`);
  }
  return {
    recordsSent,
    fillSeconds,
    bundleRecords,
    export: figures(exported, bundleRecords),
    verify: { ...figures(verified, bundleRecords), threads: 'default (one per core)' },
  };
}
