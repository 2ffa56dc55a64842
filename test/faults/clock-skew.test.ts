/**
 * Scenario: agents whose clocks are wrong — one a day ahead, one a day behind, one that jumps two
 * hours back in the middle of its stream — next to one with a correct clock. Records carry the
 * agents' `at` (sent through the local API, as the record format allows). Every record must be in
 * the ledger exactly once, in seq order, with `at` exactly as sent; and `agents list --json`
 * must report the skew per agent and epoch by the rule in collector/services/clock-skew.ts (and
 * nothing for the correct clock).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { runCollectorCli } from '../helpers/collector-process.ts';
import { checkFleet, startFleet, waitDrained, type Fleet, type FleetAgent } from '../helpers/fault-fleet.ts';
import { assertFaultInvariants, writeThroughLocalApi } from '../helpers/ledger-invariants.ts';
import { recordScenarioOutcome } from '../helpers/reliability.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Receive-time slack on this shared 2-core machine: a write and its batch's receipt are this close. */
const SLACK = 60_000;
const ROUNDS = 3;
const PER_ROUND = 20;

interface SkewListing {
  agent: string;
  epoch: number;
  clockSkew: {
    toleranceMs: number;
    implausible: number;
    byRule: { ahead: number; backwards: number; behind: number };
    maxAheadMs: number | null;
    maxBackwardsMs: number | null;
    maxBehindMs: number | null;
    lastSeen: { seq: number; rule: string; offsetMs: number } | null;
  };
}

/** The `at` each agent's clock gives record `i` of round `round` (undefined: the agent's own clock). */
const CLOCKS: { [role: string]: (round: number, i: number) => string | undefined } = {
  correct: () => undefined,
  ahead: () => new Date(Date.now() + DAY).toISOString(),
  behind: () => new Date(Date.now() - DAY).toISOString(),
  // Right until the middle of round 2, then two hours back for good.
  jumping: (round, i) => new Date(Date.now() - (round > 1 || (round === 1 && i >= PER_ROUND / 2) ? 2 * HOUR : 0)).toISOString(),
};
const ROLES = Object.keys(CLOCKS);

function within(value: number | null, low: number, high: number, what: string): void {
  assert.ok(value !== null && value >= low && value <= high, `${what}: ${value} not in [${low}, ${high}]`);
}

describe('fault: agent clocks off by a day and jumping backwards', function () {
  this.timeout(300_000);
  let fleet: Fleet | undefined;

  afterEach(async () => {
    await fleet?.close();
    fleet = undefined;
  });

  it('keeps every record once, in seq order, with at as sent, and reports the skew per agent', async () => {
    fleet = await startFleet({ agents: ROLES.length, prefix: 'AS-CLK' });
    const byRole = new Map<string, FleetAgent>(ROLES.map((role, n) => [role, fleet!.agents[n]!]));
    const sentAt = new Map<string, string>();

    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all(
        ROLES.map(async (role) => {
          const agent = byRole.get(role)!;
          for (let i = 0; i < PER_ROUND; i++) {
            const at = CLOCKS[role]!(round, i);
            agent.attempted++;
            const ack = await writeThroughLocalApi(agent.process!.port, agent.process!.localToken, {
              kind: 'audit',
              type: 'certificate.issued',
              ...(at ? { at } : {}),
              body: { scenario: 'clock-skew', role, round, i },
            });
            agent.acknowledged.push(ack);
            if (at) sentAt.set(ack.id, at);
          }
        }),
      );
      // Each round ends drained: the next round's records come after a caught-up batch.
      await waitDrained(fleet);
    }

    const listed = JSON.parse((await runCollectorCli(['agents', 'list', '--json'], { SAKSHYA_COLLECTOR_DIR: fleet.collector.dir })).stdout) as SkewListing[];
    const skew = (role: string) => listed.find((row) => row.agent === byRole.get(role)!.agentId)!.clockSkew;
    const total = ROUNDS * PER_ROUND;

    assert.equal(skew('correct').implausible, 0, 'a correct clock is never flagged');
    assert.equal(skew('correct').lastSeen, null);

    assert.deepEqual(skew('ahead').byRule, { ahead: total, backwards: 0, behind: 0 }, 'every record of the clock a day ahead');
    assert.equal(skew('ahead').implausible, total);
    within(skew('ahead').maxAheadMs, DAY - SLACK, DAY, 'max ahead');

    // A clock constantly behind is told from an outage backlog only after a caught-up batch: all
    // records of rounds 2 and 3 at least (and the first round's after its first batch).
    const behind = skew('behind');
    assert.equal(behind.byRule.ahead + behind.byRule.backwards, 0);
    assert.ok(behind.byRule.behind >= total - PER_ROUND, `behind: ${behind.byRule.behind} of ${total}`);
    assert.equal(behind.implausible, behind.byRule.behind);
    within(behind.maxBehindMs, DAY - SLACK, DAY + SLACK, 'max behind');

    const jumping = skew('jumping');
    assert.equal(jumping.byRule.backwards, 1, 'the jump itself, once');
    within(jumping.maxBackwardsMs, 2 * HOUR - SLACK, 2 * HOUR + SLACK, 'max backwards jump');
    assert.equal(jumping.byRule.ahead, 0);
    assert.ok(jumping.byRule.behind >= PER_ROUND, `after the jump, round 3 is behind the caught-up batch of round 2: ${jumping.byRule.behind}`);
    assert.equal(jumping.lastSeen?.rule, 'behind');
    assert.equal(jumping.lastSeen?.seq, total);

    // Stored as sent, ordered by seq: the ledger index grows with seq for each agent.
    const db = new Database(join(fleet.collector.dir, 'collector.db'), { readonly: true });
    try {
      for (const role of ROLES) {
        const rows = db.prepare('SELECT id, seq, at, ledger_index FROM records WHERE agent = ? ORDER BY ledger_index').all(byRole.get(role)!.agentId) as {
          id: string;
          seq: number;
          at: string;
        }[];
        assert.deepEqual(rows.map((row) => row.seq), Array.from({ length: total }, (_, i) => i + 1), `${role}: ledger order is seq order`);
        for (const row of rows) {
          const sent = sentAt.get(row.id);
          if (sent) assert.equal(row.at, sent, `${role} seq ${row.seq}: at stored as sent`);
        }
      }
    } finally {
      db.close();
    }

    const report = await checkFleet(fleet);
    recordScenarioOutcome({
      scenario: 'agent clocks +1 day, −1 day, jumping back 2 h (skew reported per agent)',
      runs: ROUNDS,
      written: report.written,
      acknowledged: report.acknowledged,
      lost: report.lost,
      duplicated: report.duplicated,
      checkedBy: `${report.checkedBy}; ledger order = seq order; at stored as sent; agents list clockSkew per rule`,
      problems: report.problems,
    });
    assertFaultInvariants(report);
  });
});
