/**
 * `kill -9` of agents, many times, at seeded random points while writers post records to their
 * local APIs and the sync loops ship batches: a kill lands in a local write (before or after its
 * COMMIT), between a batch's send and its receipt, or while the receipt is being stored. Each
 * agent is restarted every time. A write cut off by the kill may or may not be committed; only
 * 201-acknowledged ones are promised, and every committed one must still reach the ledger once.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkFleet, pendingInOutbox, startFleet, startWriters, waitDrained, type Fleet } from '../helpers/fault-fleet.ts';
import { assertFaultInvariants } from '../helpers/ledger-invariants.ts';
import { recordScenarioOutcome } from '../helpers/reliability.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

const SOAK = process.env.SAKSHYA_SOAK === '1';
const KILLS = Number(process.env.SAKSHYA_FAULT_AGENT_KILLS ?? (SOAK ? 200 : 12));

describe('fault scenarios: kill -9 of agents', function () {
  this.timeout(600_000 + (SOAK ? 3_600_000 : 0));
  let fleet: Fleet | undefined;

  afterEach(async () => {
    await fleet?.close();
    fleet = undefined;
  });

  it(`${KILLS} kills at random points of the write and sync paths: every acknowledged record is in the ledger once`, async () => {
    const scenario = 'agent kill -9 at random points (write and sync paths)';
    // Small batches and a fast loop, so a kill often lands between a send and its receipt.
    fleet = await startFleet({ agents: 2, prefix: 'AS-AKL', agentEnv: { SAKSHYA_AGENT_BATCH_MAX_RECORDS: '20', SAKSHYA_AGENT_SYNC_INTERVAL_MS: '20' } });
    const random = seededRandom(4242);
    const writers = startWriters(fleet, { perAgent: 3, scenario });
    let killsWithPending = 0;
    for (let round = 0; round < KILLS; round++) {
      // Alternate agents, so both keep writing while the other restarts.
      const agent = fleet.agents[round % fleet.agents.length]!;
      await sleep(150 + Math.floor(random() * 600));
      await agent.kill9();
      if (pendingInOutbox(agent) > 0) killsWithPending++;
      await agent.start();
    }
    await sleep(500);
    await writers.stop();
    await waitDrained(fleet, 60_000);

    const report = await checkFleet(fleet);
    recordScenarioOutcome({ scenario, runs: KILLS, ...report });
    assertFaultInvariants(report);
    assert.ok(report.acknowledged > KILLS * 10, `only ${report.acknowledged} records acknowledged`);
    // Most kills must have caught records on their way: otherwise the sync path was never hit.
    assert.ok(killsWithPending >= KILLS / 3, `only ${killsWithPending} of ${KILLS} kills left records pending`);
  });
});
