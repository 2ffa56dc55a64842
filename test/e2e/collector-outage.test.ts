import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCollectorCli, startCollectorProcess, type CollectorProcess } from '../helpers/collector-process.ts';
import { initAgent, runAgentCli, startAgentProcess, type AgentProcess } from '../helpers/agent-process.ts';
import { checkAgentInLedger, writeThroughLocalApi, type AcknowledgedRecord } from '../helpers/ledger-invariants.ts';

const AGENTS = ['AS-KMR-001', 'AS-CCH-002'];

describe('a collector outage', function () {
  // Real processes draining real backlogs: slower when the suite's other groups share the cores.
  this.timeout(180_000);
  let collector: CollectorProcess | undefined;
  const agents: AgentProcess[] = [];

  afterEach(async () => {
    await Promise.all(agents.map((a) => a.kill9()));
    await collector?.stop();
  });

  it('leaves agents accepting writes, and their backlogs drain once the collector is back', async () => {
    collector = await startCollectorProcess();
    const dir = collector.dir;
    const env = { SAKSHYA_COLLECTOR_DIR: dir, SAKSHYA_COLLECTOR_PORT: String(collector.port) };
    const dirs: string[] = [];
    for (const id of AGENTS) {
      const token = (await runCollectorCli(['agents', 'enroll', '--agent', id], env)).stdout.trim();
      const agent = await initAgent({ collectorUrl: collector.url, agentId: id, token });
      dirs.push(agent.dir);
      agents.push(await startAgentProcess({ dir: agent.dir }));
    }
    const acknowledged: AcknowledgedRecord[][] = AGENTS.map(() => []);
    const write = async (phase: string, count: number) => {
      for (let i = 0; i < count; i++) {
        for (const [n, agent] of agents.entries()) {
          acknowledged[n]!.push(await writeThroughLocalApi(agent.port, agent.localToken, { kind: 'audit', type: 'record.updated', body: { phase, i } }));
        }
      }
    };

    await write('before', 50);
    await collector.stop();
    collector = undefined;
    await write('during', 200);
    for (const d of dirs) {
      const status = JSON.parse((await runAgentCli(['status', '--json'], { SAKSHYA_AGENT_DIR: d })).stdout) as { pending: number; lastError: unknown };
      assert.ok(status.pending >= 200, `agent should be buffering during the outage, pending=${status.pending}`);
      assert.ok(status.lastError, 'status should say why it cannot sync');
    }

    collector = await startCollectorProcess({ dir, env });
    const deadline = Date.now() + 30_000;
    for (const d of dirs) {
      for (;;) {
        const status = JSON.parse((await runAgentCli(['status', '--json'], { SAKSHYA_AGENT_DIR: d })).stdout) as { pending: number };
        if (status.pending === 0) break;
        assert.ok(Date.now() < deadline, `backlog of ${d} did not drain: ${JSON.stringify(status)}`);
        await sleep(100);
      }
    }
    for (const [n, id] of AGENTS.entries()) {
      const check = checkAgentInLedger(dir, id, acknowledged[n]!);
      assert.deepEqual({ lost: check.lost, duplicated: check.duplicated, inLedger: check.inLedger }, { lost: 0, duplicated: 0, inLedger: 250 });
    }
  });
});
