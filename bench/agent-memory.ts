/**
 * Agent memory while draining a large backlog: the design promises that the agent's memory stays
 * flat however large the backlog. For each backlog size:
 *
 * 1. `sakshya-agent init` against a real collector on loopback (no cap);
 * 2. the outbox filled in this process through the agent's own outbox API
 *    (`SqliteOutbox.append` with the agent's `AgentKeyring`: real signed, chained records, the
 *    same code path as the local API) while no agent process runs. For speed the fill commits
 *    10,000 appends per transaction with `synchronous = OFF` on this connection only: durability
 *    of the fill is not what is measured, and the agent reopens the file with its own pragmas;
 * 3. `sakshya-agent run` started by executing the bin, as an operator does (so the V8 flags of
 *    its shebang line apply); the clock runs from its "listening" line until its status says
 *    nothing is pending (or, with `drainLimit`, that many records are acknowledged); then its
 *    `VmHWM` (the kernel's peak resident set) is read from /proc/<pid>/status, with the process
 *    still alive.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentKeyring } from '../agent/keys.ts';
import { outboxPath, SqliteOutbox } from '../agent/outbox/sqlite-outbox.ts';
import { fetchAgentStatus, initAgent } from '../test/helpers/agent-process.ts';
import { startAgentRun } from './lib/agent.ts';
import type { Cleanup } from './lib/cleanup.ts';
import { issueEnrollmentToken, ledgerStats, startBenchCollector } from './lib/collector.ts';
import { readProcessMemory } from './lib/proc-memory.ts';
import { nowMs } from './lib/stats.ts';
import { recordContent } from './lib/workload.ts';

export interface AgentMemoryOptions {
  /** Backlog sizes to drain, smallest first. */
  backlogs: number[];
  /**
   * Stop each drain once this many records are acknowledged (default: the whole backlog). The
   * rest stays pending in the outbox, which is still that large while the agent works.
   */
  drainLimit?: number;
  timeoutMs: number;
}

export interface BacklogDrain {
  records: number;
  /** Records acknowledged before the agent was stopped (all of them, unless limited). */
  drained: number;
  fillSeconds: number;
  fillRecordsPerSecond: number;
  outboxBytes: number;
  drainSeconds: number;
  drainRecordsPerSecond: number;
  /** VmHWM right after start-up (before the drain got far) and at the end of the drain. */
  startPeakBytes: number | undefined;
  /**
   * VmHWM when the first MID_DRAIN_RECORDS were acknowledged (undefined for smaller backlogs):
   * against the final peak it shows whether memory still grows once the drain is under way.
   */
  midDrainPeakBytes: number | undefined;
  peakRssBytes: number | undefined;
  endRssBytes: number | undefined;
}

/** Where the mid-drain peak is read: well past start-up, a tenth of a 10^6 backlog. */
export const MID_DRAIN_RECORDS = 100_000;

const FILL_TRANSACTION = 10_000;
/**
 * The agent's default buffer cap (512 MiB soft, 1 GiB hard) holds about 650,000 records of this
 * workload's ~820 bytes before it refuses telemetry: a backlog of 10^6 needs a larger cap, given
 * to the fill and to the agent alike (SAKSHYA_AGENT_SOFT_CAP_BYTES / _HARD_CAP_BYTES).
 */
const CAP = { softBytes: 4 * 1024 ** 3, hardBytes: 8 * 1024 ** 3 };
const CAP_ENV = { SAKSHYA_AGENT_SOFT_CAP_BYTES: String(CAP.softBytes), SAKSHYA_AGENT_HARD_CAP_BYTES: String(CAP.hardBytes) };

/** Fills an initialised agent's outbox with `records` signed, chained records. */
function fillOutbox(dir: string, agentId: string, records: number): number {
  const outbox = SqliteOutbox.open(outboxPath(dir), { cap: CAP });
  try {
    outbox.db.pragma('synchronous = OFF');
    const keyring = new AgentKeyring(dir);
    const start = Date.now() - 86_400_000;
    for (let done = 0; done < records; ) {
      const upTo = Math.min(records, done + FILL_TRANSACTION);
      outbox.db.transaction(() => {
        for (let n = done + 1; n <= upTo; n++) {
          const now = new Date(start + n * 50);
          outbox.append(recordContent(agentId, n, now.toISOString()), keyring, now);
        }
      })();
      done = upTo;
    }
    outbox.db.pragma('wal_checkpoint(TRUNCATE)');
    return (outbox.db.prepare('SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()').pluck().get() as number) ?? 0;
  } finally {
    outbox.close();
  }
}

export async function benchAgentMemory(options: AgentMemoryOptions, cleanup: Cleanup, progress: (line: string) => void = () => {}): Promise<BacklogDrain[]> {
  const collector = await startBenchCollector(cleanup);
  const drains: BacklogDrain[] = [];
  let expectedLedger = 0;
  for (const [i, records] of options.backlogs.entries()) {
    const agentId = `BN-MEM-${String(i + 1).padStart(3, '0')}`;
    const token = await issueEnrollmentToken(collector, agentId);
    const dir = join(cleanup.tempDir('sakshya-bench-memory-'), 'agent');
    await initAgent({ collectorUrl: collector.url, agentId, token, dir });

    const fillStart = nowMs();
    const outboxBytes = fillOutbox(dir, agentId, records);
    const fillSeconds = (nowMs() - fillStart) / 1000;
    progress(`filled ${records} in ${fillSeconds.toFixed(0)} s`);

    const agent = await startAgentRun(cleanup, dir, CAP_ENV);
    const pid = agent.child.pid!;
    const startPeakBytes = readProcessMemory(pid)?.peakBytes;
    const target = Math.min(records, options.drainLimit ?? records);
    const drainStart = nowMs();
    let drained = 0;
    let midDrainPeakBytes: number | undefined;
    for (;;) {
      const status = await fetchAgentStatus<{ pending: number }>(agent);
      drained = records - status.pending;
      if (midDrainPeakBytes === undefined && records > MID_DRAIN_RECORDS && drained >= MID_DRAIN_RECORDS) midDrainPeakBytes = readProcessMemory(pid)?.peakBytes;
      if (drained >= target) break;
      if (nowMs() - drainStart > options.timeoutMs) throw new Error(`agent memory: ${status.pending} of ${records} records still pending after ${options.timeoutMs / 1000} s`);
      await sleep(250);
    }
    const drainSeconds = (nowMs() - drainStart) / 1000;
    const memory = readProcessMemory(pid);
    const stopped = await agent.stop();
    if (stopped !== 0) throw new Error(`sakshya-agent run exited with code ${stopped} on SIGTERM`);
    progress(`drained ${drained} of ${records} in ${drainSeconds.toFixed(0)} s`);

    expectedLedger += drained;
    const stats = await ledgerStats(collector);
    if (stats.size < expectedLedger) throw new Error(`the ledger holds ${stats.size} entries, fewer than the ${expectedLedger} records drained`);
    drains.push({
      records,
      fillSeconds,
      fillRecordsPerSecond: records / fillSeconds,
      outboxBytes,
      drainSeconds,
      drained,
      drainRecordsPerSecond: drained / drainSeconds,
      startPeakBytes,
      midDrainPeakBytes,
      peakRssBytes: memory?.peakBytes,
      endRssBytes: memory?.rssBytes,
    });
  }
  await collector.stop('SIGTERM');
  return drains;
}
