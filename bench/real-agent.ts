/**
 * One real agent, end to end, through public interfaces only: a collector process, an
 * enrollment token from `sakshya-collector agents enroll`, `sakshya-agent init`, then
 *
 * 1. `sakshya-agent run` with its sync loop idle (an hour's poll interval, started before any
 *    record exists), and N records POSTed to its local API by a few concurrent callers: the
 *    rate at which the agent durably accepts records (201 only after COMMIT);
 * 2. the run process stopped, then `sakshya-agent sync --once` drains the N records to the
 *    collector: the rate of the agent's real sync path (read outbox, encode, gzip, POST, verify
 *    the receipt, mark acknowledged), one batch in flight, process start-up included.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { initAgent, runAgentCli } from '../test/helpers/agent-process.ts';
import { startAgentRun } from './lib/agent.ts';
import type { Cleanup } from './lib/cleanup.ts';
import { issueEnrollmentToken, ledgerStats, mapLimit, startBenchCollector } from './lib/collector.ts';
import { HttpClient } from './lib/http-client.ts';
import { nowMs } from './lib/stats.ts';
import { recordContent } from './lib/workload.ts';

export interface RealAgentOptions {
  records: number;
  /** Concurrent local callers while filling the outbox. */
  writers: number;
}

export interface RealAgentResult {
  records: number;
  writers: number;
  localApiSeconds: number;
  localApiRecordsPerSecond: number;
  syncSeconds: number;
  syncRecordsPerSecond: number;
  syncBatches: number;
  /** Wall time of `sakshya-agent status --json`: what process start-up alone costs. */
  cliStartSeconds: number;
  /** Anything unexpected the agent reported, for the reader of the results. */
  note?: string;
}

const AGENT_ID = 'BN-REAL-001';
/** The sync loop's idle poll while the outbox is filled: long enough never to fire. */
const IDLE_SYNC_INTERVAL_MS = '3600000';

export async function benchRealAgent(options: RealAgentOptions, cleanup: Cleanup): Promise<RealAgentResult> {
  const collector = await startBenchCollector(cleanup);
  const token = await issueEnrollmentToken(collector, AGENT_ID);
  const dir = join(cleanup.tempDir('sakshya-bench-agent-'), 'agent');
  const env = { SAKSHYA_LOG_LEVEL: 'info' };
  await initAgent({ collectorUrl: collector.url, agentId: AGENT_ID, token, dir, env });

  const agent = await startAgentRun(cleanup, dir, { ...env, SAKSHYA_AGENT_SYNC_INTERVAL_MS: IDLE_SYNC_INTERVAL_MS });
  // Let the sync loop take its first (idle) step before any record exists.
  await sleep(500);

  const client = new HttpClient(options.writers);
  cleanup.defer('close the local API client', () => client.close());
  const url = `http://127.0.0.1:${agent.port}/v1/records`;
  const headers = { authorization: `Bearer ${agent.localToken}`, 'content-type': 'application/json' };
  const payloads = Array.from({ length: options.records }, (_, i) => {
    const { kind, type, body } = recordContent(AGENT_ID, i + 1, new Date().toISOString());
    return JSON.stringify({ kind, type, body });
  });
  const localStart = nowMs();
  await mapLimit(payloads, options.writers, async (payload) => {
    const answer = await client.post(url, headers, payload);
    if (answer.status !== 201) throw new Error(`the agent's local API answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  });
  const localApiSeconds = (nowMs() - localStart) / 1000;

  const status = await client.get(`http://127.0.0.1:${agent.port}/v1/status`, { authorization: headers.authorization });
  const { pending } = JSON.parse(status.text) as { pending: number };
  if (pending !== options.records) throw new Error(`expected ${options.records} pending records before the sync, found ${pending}`);
  client.close();
  const stopped = await agent.stop();
  if (stopped !== 0) throw new Error(`sakshya-agent run exited with code ${stopped} on SIGTERM`);

  const cliStart = nowMs();
  const probe = await runAgentCli(['status', '--json'], { SAKSHYA_AGENT_DIR: dir, ...env });
  const cliStartSeconds = (nowMs() - cliStart) / 1000;
  if (probe.code !== 0) throw new Error(`sakshya-agent status failed: ${probe.stderr.trim()}`);

  const syncStart = nowMs();
  const sync = await runAgentCli(['sync', '--once'], { SAKSHYA_AGENT_DIR: dir, ...env }, { timeoutMs: 120_000 });
  const syncSeconds = (nowMs() - syncStart) / 1000;
  if (sync.code !== 0) throw new Error(`sakshya-agent sync --once failed (${sync.code}): ${sync.stderr.trim()}`);
  const drained = JSON.parse(sync.stdout) as { acknowledged: number; batches: number; pending: number };
  if (drained.acknowledged < options.records) {
    throw new Error(`sync --once acknowledged ${drained.acknowledged} of ${options.records} records`);
  }
  // Records the agent wrote into its own chain during the sync (a lifecycle or alarm record)
  // are not part of the measured drain, but they are worth knowing about.
  let note: string | undefined;
  if (drained.pending !== 0) {
    const after = await runAgentCli(['status', '--json'], { SAKSHYA_AGENT_DIR: dir, ...env });
    const status = JSON.parse(after.stdout || '{}') as { lastError?: unknown; witnessAlarm?: unknown };
    note =
      `after sync --once the agent had ${drained.pending} record(s) of its own pending (written during the sync); ` +
      `lastError: ${JSON.stringify(status.lastError ?? null)}, witnessAlarm: ${JSON.stringify(status.witnessAlarm ?? null)}`;
  }
  const stats = await ledgerStats(collector);
  if (stats.size < options.records) throw new Error(`the ledger holds ${stats.size} entries, fewer than ${options.records}`);
  await collector.stop('SIGTERM');

  return {
    records: options.records,
    writers: options.writers,
    localApiSeconds,
    localApiRecordsPerSecond: options.records / localApiSeconds,
    syncSeconds,
    syncRecordsPerSecond: options.records / syncSeconds,
    syncBatches: drained.batches,
    cliStartSeconds,
    ...(note === undefined ? {} : { note }),
  };
}
