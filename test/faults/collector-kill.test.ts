/**
 * `kill -9` of the collector while agents stream records to it:
 * - after its commit but before the agent sees the reply: the proxy holds the first bytes of a
 *   200 reply to `POST /api/v1/batches`, the collector is SIGKILLed meanwhile, the reply is
 *   dropped. The batch is committed (its receipt is in the collector's store) but the agent
 *   never got the receipt: it must resend the records and the collector must recognise them
 *   as duplicates — exactly once in the ledger;
 * - at random points (seeded), whatever it was doing.
 * Each time it is restarted on the same data directory.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { checkFleet, startFleet, startWriters, waitDrained, type Fleet } from '../helpers/fault-fleet.ts';
import { assertFaultInvariants } from '../helpers/ledger-invariants.ts';
import { recordScenarioOutcome } from '../helpers/reliability.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

const SOAK = process.env.SAKSHYA_SOAK === '1';
const AFTER_COMMIT_KILLS = Number(process.env.SAKSHYA_FAULT_COLLECTOR_KILLS ?? (SOAK ? 40 : 4));
const RANDOM_KILLS = Number(process.env.SAKSHYA_FAULT_COLLECTOR_KILLS ?? (SOAK ? 40 : 5));

/** Acknowledged batches whose receipt counted duplicates: resends of records already stored. */
function duplicateReceipts(fleet: Fleet): number {
  return fleet.agents.reduce(
    (sum, agent) => sum + (agent.process?.logs.filter((line) => line.msg === 'batch acknowledged' && (line.duplicates as number) > 0).length ?? 0),
    0,
  );
}

/** The receipt the collector stored for `batchId` (in the batch's own transaction), if any. */
function storedReceipt(collectorDir: string, batchId: string): { agent: string; highestSeq: number } | undefined {
  const db = new Database(join(collectorDir, 'collector.db'), { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT receipt_json FROM receipts WHERE batch_id = ?').get(batchId) as { receipt_json: string } | undefined;
    return row && (JSON.parse(row.receipt_json) as { agent: string; highestSeq: number });
  } finally {
    db.close();
  }
}

function agentHasReceipt(agentDir: string, batchId: string): boolean {
  const db = new Database(join(agentDir, 'outbox.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT 1 FROM receipts WHERE batch_id = ?').get(batchId) !== undefined;
  } finally {
    db.close();
  }
}

describe('fault scenarios: kill -9 of the collector', function () {
  this.timeout(300_000 + (SOAK ? 3_600_000 : 0));
  // One fleet for both scenarios: starting real processes is the slow part on a small machine.
  let fleet: Fleet;

  before(async function () {
    this.timeout(180_000);
    fleet = await startFleet({ agents: 3, prefix: 'AS-CKL' });
  });

  after(async () => {
    fleet?.proxy.onResponseStart(null);
    await fleet?.close();
  });

  /** This scenario's own counts; lost and duplicated are over everything so far (0 before). */
  const counts = () => ({
    written: fleet.agents.reduce((sum, agent) => sum + agent.attempted, 0),
    acknowledged: fleet.agents.reduce((sum, agent) => sum + agent.acknowledged.length, 0),
  });

  it('after its commit, before the reply: the agent resends and every record is in the ledger once', async () => {
    const scenario = 'collector kill -9 after commit, before the reply';
    const before = counts();
    const resentBefore = duplicateReceipts(fleet);
    const writers = startWriters(fleet, { perAgent: 2, pauseMs: 10, scenario });
    let kills = 0;
    const killed: Array<{ batchId: string; receipt: { agent: string; highestSeq: number } | undefined }> = [];
    for (let round = 0; round < AFTER_COMMIT_KILLS; round++) {
      await sleep(400);
      const done = new Promise<void>((resolve) => {
        fleet.proxy.onResponseStart(async ({ requestHead, responseHead }) => {
          // Only a receipt proves a commit: other replies (a refusal, a read) go through.
          if (!requestHead.startsWith('POST /api/v1/batches') || !responseHead.startsWith('HTTP/1.1 200')) return 'forward';
          fleet.proxy.onResponseStart(null);
          // The receipt is on its way, so the batch is committed. The collector dies before the
          // agent sees a byte of it.
          const collectorDir = fleet.collector.dir;
          await fleet.collectorDown();
          const batchId = /\r\nidempotency-key: *([^\r]+)/i.exec(requestHead)?.[1] ?? 'none';
          killed.push({ batchId, receipt: storedReceipt(collectorDir, batchId) });
          kills++;
          resolve();
          return 'drop';
        });
      });
      await done;
      // Down for a moment: the agents' retries fail meanwhile.
      await sleep(300);
      await fleet.collectorUp();
    }
    await sleep(500);
    await writers.stop();
    await waitDrained(fleet, 60_000);
    const resent = duplicateReceipts(fleet) - resentBefore;

    const report = await checkFleet(fleet, { keepAgents: true });
    const after = counts();
    recordScenarioOutcome({ ...report, scenario, runs: kills, written: after.written - before.written, acknowledged: after.acknowledged - before.acknowledged });
    assertFaultInvariants(report);
    assert.equal(kills, AFTER_COMMIT_KILLS);
    // The agent never saw the dropped receipts: it had to resend those records…
    for (const { batchId, receipt } of killed) {
      // A 200 left before the collector died: its batch MUST have been committed.
      assert.ok(receipt, `batch ${batchId} was answered 200 but is not committed`);
      const agent = fleet.agents.find((a) => a.agentId === receipt.agent)!;
      assert.equal(agentHasReceipt(agent.dir, batchId), false, `${receipt.agent} stored the receipt of ${batchId}, which was dropped`);
    }
    // …and the collector recognised resent records as stored. (A resend may itself be the next
    // reply killed, so not every dropped receipt is followed by a visible duplicate count.)
    assert.ok(resent >= 1, 'no receipt counted duplicates: the resends were never recognised');
  });

  it('at random points while batches stream in: every acknowledged record is in the ledger once', async () => {
    const scenario = 'collector kill -9 at random points';
    const before = counts();
    const random = seededRandom(2026);
    const writers = startWriters(fleet, { perAgent: 2, pauseMs: 5, scenario });
    for (let round = 0; round < RANDOM_KILLS; round++) {
      await sleep(200 + Math.floor(random() * 1200));
      await fleet.collectorDown();
      await sleep(Math.floor(random() * 500));
      await fleet.collectorUp();
    }
    await sleep(500);
    await writers.stop();
    await waitDrained(fleet, 60_000);

    const report = await checkFleet(fleet, { keepAgents: true });
    const after = counts();
    const acknowledged = after.acknowledged - before.acknowledged;
    recordScenarioOutcome({ ...report, scenario, runs: RANDOM_KILLS, written: after.written - before.written, acknowledged });
    assertFaultInvariants(report);
    assert.ok(acknowledged > RANDOM_KILLS * 20, `only ${acknowledged} records acknowledged`);
  });
});
