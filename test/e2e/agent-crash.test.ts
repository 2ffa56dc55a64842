import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCollectorCli, startCollectorProcess, type CollectorProcess } from '../helpers/collector-process.ts';
import { initAgent, runAgentCli, startAgentProcess, type AgentProcess } from '../helpers/agent-process.ts';
import { checkAgentInLedger, writeThroughLocalApi, type AcknowledgedRecord } from '../helpers/ledger-invariants.ts';

const AGENT = 'AS-KMR-001';
const ROUNDS = 5;

describe('an agent killed with SIGKILL while batches are in flight', function () {
  // Real processes draining real backlogs: slower when the suite's other groups share the cores.
  this.timeout(180_000);
  let collector: CollectorProcess;
  let agent: AgentProcess | undefined;

  afterEach(async () => {
    await agent?.kill9();
    await collector?.stop();
  });

  it('delivers every record it acknowledged exactly once after each restart', async () => {
    collector = await startCollectorProcess();
    const collectorEnv = { SAKSHYA_COLLECTOR_DIR: collector.dir };
    const token = (await runCollectorCli(['agents', 'enroll', '--agent', AGENT], collectorEnv)).stdout.trim();
    // Small batches, so that a kill lands between many send/receipt steps.
    const env = { SAKSHYA_AGENT_BATCH_MAX_RECORDS: '25', SAKSHYA_AGENT_SYNC_INTERVAL_MS: '20' };
    const { dir } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token, env });

    const acknowledged: AcknowledgedRecord[] = [];
    let killsWithPending = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const running = await startAgentProcess({ dir, env });
      agent = running;
      // Writers keep the write path busy while the sync loop ships batches; the kill lands
      // at a random point of both. Writes in flight at the kill were never acknowledged.
      let stopped = false;
      const writer = async (w: number) => {
        for (let i = 0; !stopped; i++) {
          try {
            acknowledged.push(await writeThroughLocalApi(running.port, running.localToken, { kind: 'audit', type: 'file.moved', body: { round, w, i } }));
          } catch {
            return;
          }
        }
      };
      const writers = [0, 1, 2, 3].map(writer);
      await sleep(300 + Math.floor(Math.random() * 500));
      await running.kill9();
      stopped = true;
      await Promise.all(writers);
      agent = undefined;
      const status = JSON.parse((await runAgentCli(['status', '--json'], { SAKSHYA_AGENT_DIR: dir })).stdout) as { pending: number };
      if (status.pending > 0) killsWithPending++;
    }

    agent = await startAgentProcess({ dir, env });
    const deadline = Date.now() + 30_000;
    let finalAcked = 0;
    for (;;) {
      const status = JSON.parse((await runAgentCli(['status', '--json'], { SAKSHYA_AGENT_DIR: dir })).stdout) as { pending: number; acked: number };
      if (status.pending === 0) {
        finalAcked = status.acked;
        break;
      }
      assert.ok(Date.now() < deadline, `backlog did not drain: ${JSON.stringify(status)}`);
      await sleep(100);
    }

    const check = checkAgentInLedger(collector.dir, AGENT, acknowledged);
    console.log(`      ${ROUNDS} kills (${killsWithPending} with records still unacknowledged); ${JSON.stringify(check)}`);
    assert.equal(check.lost, 0);
    assert.equal(check.duplicated, 0);
    // Every record the outbox committed is in the ledger once: the acknowledged ones, plus any
    // whose 201 was cut off by the kill (committed, but never acknowledged to the caller).
    assert.equal(check.inLedger, finalAcked);
    assert.ok(check.inLedger >= acknowledged.length && acknowledged.length > 0);
    assert.ok(killsWithPending >= 2, `only ${killsWithPending} kills landed with records pending; the test did not exercise crashes mid-sync`);
  });
});
