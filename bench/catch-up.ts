/**
 * Catch-up after a day-long outage: one office's day of records buffered by a real agent while
 * the collector is unreachable, then drained over a slow link.
 *
 *   sakshya-agent run ──► fault proxy (bandwidth cap, each direction) ──► sakshya-collector serve
 *
 * 1. A real collector, the fault proxy (test/helpers/fault-proxy.ts) in front of it, and a real
 *    agent initialised through the proxy (`sakshya-agent init` against the proxy's URL).
 * 2. The proxy is pointed at a closed port (connections refused: the collector is unreachable)
 *    and `sakshya-agent run` starts; the day's records are POSTed to its local API with their
 *    `at` times, each answered 201 only after its commit. The agent keeps failing to sync.
 * 3. The link comes back capped (the proxy points at the collector again, with the bandwidth
 *    cap), and the clock runs until the agent's status says nothing is pending — the agent's own
 *    retry delay (≤ 1 s with the test harness's backoff) is part of the measured time.
 *
 * Bytes on the wire are the proxy's counts of TCP payload both ways during the drain (no TCP/IP
 * headers). The link's limit time is the bytes of the busier direction (agent → collector) ÷ the
 * cap: each direction of the proxy is paced separately, like a full-duplex leased line.
 */
import Database from 'better-sqlite3';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fetchAgentStatus, initAgent } from '../test/helpers/agent-process.ts';
import { startFaultProxy } from '../test/helpers/fault-proxy.ts';
import { startAgentRun } from './lib/agent.ts';
import type { Cleanup } from './lib/cleanup.ts';
import { issueEnrollmentToken, ledgerStats, mapLimit, startBenchCollector } from './lib/collector.ts';
import { HttpClient } from './lib/http-client.ts';
import { officeDay, type OfficeDayOptions } from './lib/office-day.ts';
import { nowMs } from './lib/stats.ts';

export interface CatchUpOptions extends OfficeDayOptions {
  /** The link's cap in bytes per second, each direction (256 kbit/s = 32,000). */
  bytesPerSecond: number;
  /** Concurrent local callers while the outbox fills. */
  writers: number;
  /** Give up (and fail the benchmark) if the drain takes longer. */
  timeoutMs: number;
}

export interface CatchUpResult {
  records: number;
  auditRecords: number;
  telemetryRecords: number;
  /** Canonical JSON of the signed records as stored in the outbox (what one record weighs raw). */
  rawJsonBytes: number;
  rawBytesPerRecord: number;
  fillSeconds: number;
  drainSeconds: number;
  recordsPerSecond: number;
  bytesPerSecond: number;
  bytesToCollector: number;
  bytesToAgent: number;
  wireBytesPerRecord: number;
  /** bytesToCollector ÷ cap: how long the link needs at the very least. */
  limitSeconds: number;
  connections: number;
  /** The outbox's records in seq order, for a comparison that ships the same JSON lines. */
  canonicalLines: string[];
}

const AGENT_ID = 'BN-OFFICE-001';

/** A port on 127.0.0.1 where nothing listens: connections to it are refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function benchCatchUp(options: CatchUpOptions, cleanup: Cleanup): Promise<CatchUpResult> {
  const collector = await startBenchCollector(cleanup);
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: collector.port } });
  cleanup.defer('close the fault proxy', () => proxy.close());

  const token = await issueEnrollmentToken(collector, AGENT_ID);
  const dir = join(cleanup.tempDir('sakshya-bench-catchup-'), 'agent');
  await initAgent({ collectorUrl: proxy.url, agentId: AGENT_ID, token, dir });

  // The outage: every connection through the proxy is refused from now on.
  proxy.setTarget({ host: '127.0.0.1', port: await closedPort() });
  const agent = await startAgentRun(cleanup, dir, {});

  const day = officeDay(AGENT_ID, options);
  const client = new HttpClient(options.writers);
  cleanup.defer('close the local API client', () => client.close());
  const url = `http://127.0.0.1:${agent.port}/v1/records`;
  const headers = { authorization: `Bearer ${agent.localToken}`, 'content-type': 'application/json' };
  const fillStart = nowMs();
  await mapLimit(day, options.writers, async (record) => {
    const answer = await client.post(url, headers, JSON.stringify(record));
    if (answer.status !== 201) throw new Error(`the agent's local API answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  });
  const fillSeconds = (nowMs() - fillStart) / 1000;
  client.close();

  const buffered = await fetchAgentStatus<{ pending: number }>(agent);
  if (buffered.pending !== day.length) throw new Error(`expected ${day.length} records pending during the outage, found ${buffered.pending}`);

  // What the agent stores: one canonical JSON text per signed record (read-only, beside the agent).
  const outbox = new Database(join(dir, 'outbox.db'), { readonly: true, fileMustExist: true });
  let canonicalLines: string[];
  try {
    canonicalLines = (outbox.prepare('SELECT canonical FROM records ORDER BY epoch, seq').pluck().all() as string[]);
  } finally {
    outbox.close();
  }
  if (canonicalLines.length !== day.length) throw new Error(`the outbox holds ${canonicalLines.length} records, expected ${day.length}`);
  const rawJsonBytes = canonicalLines.reduce((sum, line) => sum + Buffer.byteLength(line, 'utf8'), 0);

  // The link comes back, capped.
  proxy.setFaults({ bandwidth: { bytesPerSecond: options.bytesPerSecond } });
  const before = proxy.stats();
  const drainStart = nowMs();
  proxy.setTarget({ host: '127.0.0.1', port: collector.port });
  for (;;) {
    const status = await fetchAgentStatus<{ pending: number }>(agent);
    if (status.pending === 0) break;
    if (nowMs() - drainStart > options.timeoutMs) throw new Error(`catch-up: ${status.pending} records still pending after ${options.timeoutMs / 1000} s`);
    await sleep(100);
  }
  const drainSeconds = (nowMs() - drainStart) / 1000;
  const after = proxy.stats();

  const stopped = await agent.stop();
  if (stopped !== 0) throw new Error(`sakshya-agent run exited with code ${stopped} on SIGTERM`);
  const stats = await ledgerStats(collector);
  if (stats.size < day.length) throw new Error(`the ledger holds ${stats.size} entries, fewer than the ${day.length} records drained`);
  await proxy.close();
  await collector.stop('SIGTERM');

  const bytesToCollector = after.bytesToServer - before.bytesToServer;
  const bytesToAgent = after.bytesToClient - before.bytesToClient;
  const telemetryRecords = day.filter((record) => record.kind === 'telemetry').length;
  return {
    records: day.length,
    auditRecords: day.length - telemetryRecords,
    telemetryRecords,
    rawJsonBytes,
    rawBytesPerRecord: rawJsonBytes / day.length,
    fillSeconds,
    drainSeconds,
    recordsPerSecond: day.length / drainSeconds,
    bytesPerSecond: options.bytesPerSecond,
    bytesToCollector,
    bytesToAgent,
    wireBytesPerRecord: (bytesToCollector + bytesToAgent) / day.length,
    limitSeconds: bytesToCollector / options.bytesPerSecond,
    connections: after.connections - before.connections,
    canonicalLines,
  };
}
