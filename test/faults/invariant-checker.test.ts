/**
 * The invariant checker every fault scenario ends with must be able to fail: a record acknowledged
 * but missing from the ledger, a backlog not drained, and a ledger changed behind the
 * collector's back are each reported. (It records no reliability row: it is not a fault.)
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { newId } from '../../shared/ids.ts';
import { checkFleet, pendingInOutbox, startFleet, startWriters, waitDrained, type Fleet } from '../helpers/fault-fleet.ts';
import { makeTempDir } from '../helpers/collector-process.ts';
import { checkFaultInvariants, writeThroughLocalApi } from '../helpers/ledger-invariants.ts';

describe('fault scenarios: the invariant checker itself', function () {
  this.timeout(180_000);
  let fleet: Fleet | undefined;

  after(async () => {
    await fleet?.close();
  });

  it('holds on an intact run, and reports a lost record, an undrained backlog and a tampered ledger', async () => {
    fleet = await startFleet({ agents: 1, prefix: 'AS-CHK' });
    const agent = fleet.agents[0]!;
    const collectorDir = fleet.collector.dir;
    const writers = startWriters(fleet, { perAgent: 1, scenario: 'checker' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await writers.stop();
    await waitDrained(fleet);
    const intact = await checkFleet(fleet, { keepAgents: true });
    assert.deepEqual({ lost: intact.lost, duplicated: intact.duplicated, problems: intact.problems }, { lost: 0, duplicated: 0, problems: [] });
    assert.ok(intact.acknowledged > 0 && intact.inLedger >= intact.acknowledged);

    // An acknowledgement the ledger never saw.
    const lost = await checkFaultInvariants({
      collectorDir,
      agents: [{ agentId: agent.agentId, dir: agent.dir, acknowledged: [...agent.acknowledged, { id: newId(), seq: 999_999 }] }],
    });
    assert.equal(lost.lost, 1);

    // A tampered copy of the collector's store: one record's text changed, the guard dropped.
    const copy = makeTempDir('sakshya-tampered-');
    cpSync(collectorDir, copy, { recursive: true });
    const db = new Database(join(copy, 'collector.db'));
    db.exec('DROP TRIGGER records_no_update');
    db.prepare("UPDATE records SET canonical = replace(canonical, 'certificate.issued', 'certificate.revoked') WHERE agent = ? AND seq = 1").run(agent.agentId);
    db.close();
    const tampered = await checkFaultInvariants({ collectorDir: copy, agents: [{ agentId: agent.agentId, dir: agent.dir, acknowledged: agent.acknowledged }] });
    assert.ok(tampered.problems.some((p) => p.startsWith('ledger verify')), JSON.stringify(tampered.problems));
    assert.ok(tampered.problems.some((p) => p.includes('prev does not link')), JSON.stringify(tampered.problems));

    // A record committed locally while the collector is away (checked offline, as ledger
    // verify allows): not drained, not in the ledger.
    await fleet.collectorDown();
    await writeThroughLocalApi(agent.process!.port, agent.process!.localToken, { kind: 'audit', type: 'file.moved', body: { late: true } });
    assert.equal(pendingInOutbox(agent), 1);
    const undrained = await checkFaultInvariants({ collectorDir, agents: [{ agentId: agent.agentId, dir: agent.dir, acknowledged: agent.acknowledged }] });
    assert.ok(undrained.problems.some((p) => p.includes('backlog not drained')), JSON.stringify(undrained.problems));
    assert.ok(undrained.problems.some((p) => p.includes('is not in the ledger')), JSON.stringify(undrained.problems));
  });
});
