/**
 * A long outage: the collector is down for "a day" while an office keeps working, so the agent
 * buffers a day's worth of records (≥ 100,000), then the collector comes back and the backlog
 * drains through the agent's ordinary sync loop.
 *
 * How the records are written, and why: a few hundred go through the agent's local API (the
 * real write path, acknowledged with 201) before and after the bulk; the 100,000 bulk records
 * are appended through the agent's outbox API in this process while the agent process is
 * stopped — the same `SqliteOutbox.append` the local API calls (validation, seq and prev,
 * signature with the agent's key), grouped 1,000 to a transaction: each `append` becomes a
 * savepoint of the group, and a record counts as acknowledged only once its group has
 * committed. One `synchronous=FULL` commit per record costs an fsync each (measured here: about
 * 200 records/s on ext4, over 8 minutes for 100,000), which is the disk's cost, not what this
 * scenario is about; posting them over HTTP would add only the local API's request handling,
 * which the other scenarios cover. Either would push the default suite past its 15-minute
 * budget on 2 cores.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadAgentKey } from '../../agent/keys.ts';
import { outboxPath, SqliteOutbox } from '../../agent/outbox/sqlite-outbox.ts';
import { fetchAgentStatus } from '../helpers/agent-process.ts';
import { checkFleet, pendingInOutbox, startFleet, startWriters, waitDrained, type Fleet } from '../helpers/fault-fleet.ts';
import { assertFaultInvariants, type AcknowledgedRecord } from '../helpers/ledger-invariants.ts';
import { recordScenarioOutcome } from '../helpers/reliability.ts';

const SOAK = process.env.SAKSHYA_SOAK === '1';
const BULK = Number(process.env.SAKSHYA_FAULT_OUTAGE_RECORDS ?? (SOAK ? 1_000_000 : 100_000));
/** Records per committed transaction of the bulk load. */
const GROUP = 1000;

describe('fault scenarios: a long collector outage', function () {
  this.timeout(900_000 + (SOAK ? 7_200_000 : 0));
  let fleet: Fleet | undefined;

  afterEach(async () => {
    await fleet?.close();
    fleet = undefined;
  });

  it(`buffers a day of an office's records (${BULK.toLocaleString('en-US')}+) while the collector is down, then drains them exactly once`, async () => {
    // The count is in the row's "written" column; the name stays the same in a soak run.
    const scenario = 'long outage: a day of one office buffered while the collector is down, then drained';
    // Production batch size (500), so the drain is what an office would see.
    fleet = await startFleet({ agents: 1, prefix: 'AS-OUT', agentEnv: { SAKSHYA_AGENT_BATCH_MAX_RECORDS: '500' } });
    const office = fleet.agents[0]!;
    await fleet.collectorDown();

    let writers = startWriters(fleet, { perAgent: 2, scenario });
    await sleep(1500);
    await writers.stop();
    await office.kill9();

    const started = Date.now();
    const outbox = SqliteOutbox.open(outboxPath(office.dir));
    try {
      const key = loadAgentKey(office.dir);
      const day = Date.parse('2026-11-22T00:00:00.000Z');
      const appendGroup = outbox.db.transaction((from: number, to: number) => {
        const appended: AcknowledgedRecord[] = [];
        for (let i = from; i < to; i++) {
          // Spread over 24 hours, as an office's records would be.
          const at = new Date(day + Math.floor((i * 86_400_000) / BULK));
          const body = { certificate: `CERT-${i}`, applicant: `A-${i % 9973}`, officer: `OFF-${i % 17}`, fee: 30 };
          appended.push(outbox.append({ kind: 'audit', type: 'certificate.issued', at: at.toISOString(), body }, key, at));
        }
        return appended;
      });
      for (let from = 0; from < BULK; from += GROUP) {
        const appended = appendGroup.immediate(from, Math.min(BULK, from + GROUP));
        // Committed: now they are promises, like a 201.
        for (const { id, seq } of appended) office.acknowledged.push({ id, seq });
        office.attempted += appended.length;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      outbox.close();
    }
    const appendMs = Date.now() - started;

    await office.start();
    writers = startWriters(fleet, { perAgent: 2, scenario });
    await sleep(1000);
    await writers.stop();
    const backlog = pendingInOutbox(office);
    assert.ok(backlog >= BULK, `backlog before the collector returns: ${backlog}`);
    const status = await fetchAgentStatus<{ lastError: unknown }>(office.process!);
    assert.ok(status.lastError, 'the agent says why it cannot sync');

    const drainStarted = Date.now();
    await fleet.collectorUp();
    await waitDrained(fleet, 600_000);
    const drainMs = Date.now() - drainStarted;
    assert.equal(pendingInOutbox(office), 0);

    const report = await checkFleet(fleet);
    recordScenarioOutcome({ scenario, runs: 1, ...report });
    console.log(
      `      backlog ${backlog} records; bulk append ${Math.round(BULK / (appendMs / 1000))} records/s; ` +
        `drained in ${(drainMs / 1000).toFixed(1)} s (${Math.round(backlog / (drainMs / 1000))} records/s)`,
    );
    assertFaultInvariants(report);
    assert.ok(report.inLedger >= BULK);
  });
});
