/**
 * Each fault of the proxy, applied for a few seconds to the link between three agents and the
 * collector while writers keep a steady stream going through the agents' local APIs; then the
 * link heals, the backlogs drain, and the invariant is checked (over everything written so far)
 * and recorded. One fleet serves all the faults in turn: starting real processes is the slow
 * part on a small machine, and a fault's aftermath must not disturb the next one anyway.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultProxyStats, Faults } from '../helpers/fault-proxy.ts';
import { checkFleet, startFleet, startWriters, waitDrained, type Fleet } from '../helpers/fault-fleet.ts';
import { assertFaultInvariants } from '../helpers/ledger-invariants.ts';
import { recordScenarioOutcome } from '../helpers/reliability.ts';

const SOAK = process.env.SAKSHYA_SOAK === '1';
/** How long each fault lasts while the writers write. */
const WINDOW_MS = Number(process.env.SAKSHYA_FAULT_WINDOW_MS ?? (SOAK ? 60_000 : 4_000));
const AGENTS = 3;

interface NetworkScenario {
  scenario: string;
  faults: Faults;
  /** Proof the fault did its work, from the proxy's counters over the window. */
  fired: (stats: FaultProxyStats, windowMs: number) => string | undefined;
}

const scenarios: NetworkScenario[] = [
  {
    scenario: 'link: latency 150 ms + jitter 0–100 ms each way',
    faults: { latency: { ms: 150, jitterMs: 100 } },
    fired: (stats) => (stats.bytesToServer > 0 ? undefined : 'no bytes went through'),
  },
  {
    scenario: 'link: bandwidth capped at 256 kbit/s each way',
    faults: { bandwidth: { bytesPerSecond: 32_000 } },
    fired: (stats, windowMs) => {
      const rate = stats.bytesToServer / (windowMs / 1000);
      return stats.bytesToServer > 0 && rate <= 32_000 * 1.15 ? undefined : `agent→collector ${Math.round(rate)} B/s over the window`;
    },
  },
  {
    scenario: 'link: reset mid-request (half of requests, after 100–4,000 bytes)',
    faults: { resetMidRequest: { afterBytes: [100, 4000], probability: 0.5 } },
    fired: (stats) => (stats.faults.resetMidRequest > 0 ? undefined : 'no reset fired'),
  },
  {
    scenario: 'link: reset mid-response (half of replies, after 0–1,200 bytes)',
    faults: { resetMidResponse: { afterBytes: [0, 1200], probability: 0.5 } },
    fired: (stats) => (stats.faults.resetMidResponse > 0 ? undefined : 'no reset fired'),
  },
  {
    scenario: 'link: black hole (accepts, never answers), then healed',
    faults: { blackHole: true },
    fired: (stats) => (stats.faults.blackHoled > 0 && stats.bytesDropped > 0 ? undefined : 'nothing was black-holed'),
  },
  {
    scenario: 'link: closed after 200–5,000 bytes (half of exchanges)',
    faults: { closeAfter: { bytes: [200, 5000], probability: 0.5 } },
    fired: (stats) => (stats.faults.closeAfter > 0 ? undefined : 'no close fired'),
  },
  {
    scenario: 'link: sliced into writes of 1–16 bytes',
    faults: { slice: { maxBytes: 16 } },
    fired: (stats) => (stats.bytesToServer > 0 ? undefined : 'no bytes went through'),
  },
];

function difference(after: FaultProxyStats, before: FaultProxyStats): FaultProxyStats {
  const faults = { ...after.faults };
  for (const name of Object.keys(faults) as Array<keyof FaultProxyStats['faults']>) faults[name] -= before.faults[name];
  return {
    connections: after.connections - before.connections,
    open: after.open,
    bytesToServer: after.bytesToServer - before.bytesToServer,
    bytesToClient: after.bytesToClient - before.bytesToClient,
    bytesDropped: after.bytesDropped - before.bytesDropped,
    faults,
  };
}

describe('fault scenarios: the link between agents and collector', function () {
  this.timeout(WINDOW_MS + 120_000);
  let fleet: Fleet;

  before(async function () {
    this.timeout(180_000);
    fleet = await startFleet({ agents: AGENTS, prefix: 'AS-NET', seed: 100 });
  });

  after(async () => {
    await fleet?.close();
  });

  for (const { scenario, faults, fired } of scenarios) {
    it(`${scenario}: every acknowledged record ends up in the ledger exactly once`, async () => {
      const writtenBefore = fleet.agents.reduce((sum, agent) => sum + agent.attempted, 0);
      const ackedBefore = fleet.agents.reduce((sum, agent) => sum + agent.acknowledged.length, 0);
      const writers = startWriters(fleet, { perAgent: 2, pauseMs: 10, scenario });
      // A clean start, so each agent has a keep-alive connection open when the fault begins.
      await sleep(300);
      const before = fleet.proxy.stats();
      fleet.proxy.setFaults(faults);
      const started = Date.now();
      await sleep(WINDOW_MS);
      const during = difference(fleet.proxy.stats(), before);
      const windowMs = Date.now() - started;
      fleet.proxy.setFaults({});
      await sleep(300);
      await writers.stop();
      await waitDrained(fleet, 60_000);

      const report = await checkFleet(fleet, { keepAgents: true });
      // This fault's own writes; lost and duplicated are over everything so far (all 0 before).
      const written = report.written - writtenBefore;
      const acknowledged = report.acknowledged - ackedBefore;
      recordScenarioOutcome({ ...report, scenario, runs: 1, written, acknowledged });
      assertFaultInvariants(report);
      assert.equal(fired(during, windowMs), undefined, `the fault did not do its work: ${JSON.stringify(during)}`);
      assert.ok(acknowledged >= AGENTS * 20, `only ${acknowledged} records were acknowledged during the fault`);
    });
  }
});
