/**
 * Scenario: the collector's disk stops taking writes while agents stream (here: the collector
 * process's file-size limit, RLIMIT_FSIZE, lowered under its open database — every write that
 * grows the WAL fails with an I/O error, as on a full or failing disk; reads still work). The
 * collector MUST answer 503 `service.unavailable` with Retry-After, send no receipt, acknowledge
 * nothing it did not store, and report not ready on /readyz; once the disk takes writes again,
 * the agents drain and the invariant holds.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { eventually, fetchAgentStatus } from '../helpers/agent-process.ts';
import { checkFleet, startFleet, startWriters, waitDrained, type Fleet } from '../helpers/fault-fleet.ts';
import { assertFaultInvariants } from '../helpers/ledger-invariants.ts';
import { recordScenarioOutcome } from '../helpers/reliability.ts';

const AGENTS = 3;
/** How long the disk stays broken once every agent has seen a 503. */
const BROKEN_MS = 4_000;

function limitFileSize(pid: number, limit: string): void {
  const result = spawnSync('prlimit', ['--pid', String(pid), `--fsize=${limit}:`], { encoding: 'utf8' });
  assert.equal(result.status, 0, `prlimit: ${result.stderr}`);
}

function ledgerSize(collectorDir: string): number {
  const db = new Database(join(collectorDir, 'collector.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT count(*) FROM records').pluck().get() as number;
  } finally {
    db.close();
  }
}

interface Status {
  pending: number;
  acked: number;
  lastError: { status?: number; code?: string } | null;
}

describe('fault: the collector disk failing mid-stream', function () {
  this.timeout(300_000);
  let fleet: Fleet | undefined;
  let limitedPid: number | undefined;

  afterEach(async () => {
    if (limitedPid !== undefined) limitFileSize(limitedPid, 'unlimited');
    limitedPid = undefined;
    await fleet?.close();
    fleet = undefined;
  });

  it('answers 503 with Retry-After and no receipt, is not ready, acknowledges nothing unstored, and drains once writable', async () => {
    fleet = await startFleet({ agents: AGENTS, prefix: 'AS-DSK' });
    const collector = fleet.collector;
    const writers = startWriters(fleet, { perAgent: 2, pauseMs: 10, scenario: 'collector-disk-failure' });
    await eventually('records reach the ledger', async () => (ledgerSize(collector.dir) > 100 ? true : undefined), 60_000);

    limitedPid = collector.child.pid!;
    limitFileSize(limitedPid, '4096');
    const statuses = () => Promise.all(fleet!.agents.map((agent) => fetchAgentStatus<Status>(agent.process!)));
    await eventually(
      'every agent is refused with 503 service.unavailable',
      async () => ((await statuses()).every((s) => s.lastError?.status === 503 && s.lastError.code === 'service.unavailable') ? true : undefined),
      60_000,
    );

    const ready = await fetch(`${collector.url}/readyz`);
    assert.equal(ready.status, 503, '/readyz: not ready while the disk refuses writes');
    assert.equal(ready.headers.get('retry-after'), '5');
    assert.equal(((await ready.json()) as { code: string }).code, 'service.unavailable');

    // While broken: the agents keep accepting local writes, and nothing more is acknowledged or stored.
    const before = await statuses();
    const storedBefore = ledgerSize(collector.dir);
    await sleep(BROKEN_MS);
    const during = await statuses();
    assert.deepEqual(during.map((s) => s.acked), before.map((s) => s.acked), 'no receipt, nothing acknowledged');
    assert.equal(ledgerSize(collector.dir), storedBefore, 'nothing stored');
    assert.ok(during.every((s, n) => s.pending > before[n]!.pending), 'the agents buffer what their applications write');
    const answered503 = collector.logs.filter((line) => line.includes('database unavailable; answered 503')).length;
    assert.ok(answered503 >= AGENTS, `the collector logs each 503 (${answered503})`);
    // Retry-After on the batch answers: the agents' next attempt waits for it (status nextAttemptAt).
    assert.ok(collector.logs.some((line) => /SQLITE_(IOERR|FULL)/.test(line)), 'the log names the SQLite error');

    limitFileSize(limitedPid, 'unlimited');
    limitedPid = undefined;
    await eventually('/readyz: ready again', async () => ((await fetch(`${collector.url}/readyz`)).status === 200 ? true : undefined), 30_000);
    await sleep(1_000);
    await writers.stop();
    await waitDrained(fleet, 120_000);

    const report = await checkFleet(fleet);
    recordScenarioOutcome({
      scenario: 'collector database not writable mid-stream (503, no receipt)',
      runs: 1,
      written: report.written,
      acknowledged: report.acknowledged,
      lost: report.lost,
      duplicated: report.duplicated,
      checkedBy: `${report.checkedBy}; during the failure: 503 service.unavailable + Retry-After, /readyz 503, acked and ledger unchanged`,
      problems: report.problems,
    });
    assertFaultInvariants(report);
  });
});
