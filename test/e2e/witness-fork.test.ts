/**
 * Agents as witnesses, end to end: a real collector and three real agents (`sakshya-agent run`)
 * sync honestly, and every agent verifies the log behind its receipts. Then the collector is
 * stopped, its history is forked on disk (a past entry rewritten, the Merkle tree and every
 * checkpoint that includes it recomputed and re-signed with the collector's real log key), and it
 * is started again. The next receipts lead every agent to the alarm: the collector cannot prove
 * that its log extends the checkpoint each agent verified.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { outboxPath } from '../../agent/outbox/sqlite-outbox.ts';
import type { AgentStatus } from '../../agent/status.ts';
import { eventually, fetchAgentStatus, initAgent, runAgentCli, startAgentProcess, type AgentProcess } from '../helpers/agent-process.ts';
import { runCollectorCli, startCollectorProcess, type CollectorProcess } from '../helpers/collector-process.ts';
import { forkCollectorHistory } from '../helpers/fork-collector.ts';
import { writeThroughLocalApi } from '../helpers/ledger-invariants.ts';

const AGENTS = ['AS-FRK-001', 'AS-FRK-002', 'AS-FRK-003'];
const FORKED = { agent: AGENTS[0]!, seq: 2 };

describe('a collector that serves a forked history', function () {
  this.timeout(90_000);
  let collector: CollectorProcess | undefined;
  const agents: AgentProcess[] = [];

  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    await collector?.stop();
    collector = undefined;
  });

  async function write(agent: AgentProcess, phase: string, count: number): Promise<void> {
    for (let i = 0; i < count; i++) await writeThroughLocalApi(agent.port, agent.localToken, { kind: 'audit', type: 'record.updated', body: { phase, i } });
  }

  const status = (agent: AgentProcess) => fetchAgentStatus<AgentStatus>(agent);

  it('is caught by every agent\u2019s witness check, which raises a persistent alarm and records it in the agent\u2019s own chain', async () => {
    collector = await startCollectorProcess();
    const { dir, origin, port } = collector;
    const collectorEnv = { SAKSHYA_COLLECTOR_DIR: dir, SAKSHYA_COLLECTOR_PORT: String(port) };
    const dirs: string[] = [];
    for (const id of AGENTS) {
      const enrolled = await runCollectorCli(['agents', 'enroll', '--agent', id], collectorEnv);
      assert.equal(enrolled.code, 0, enrolled.stderr);
      const agent = await initAgent({ collectorUrl: collector.url, agentId: id, token: enrolled.stdout.trim() });
      dirs.push(agent.dir);
      agents.push(await startAgentProcess({ dir: agent.dir }));
    }

    // Honest phase. The first agent's records land first, so the entry to be forked lies below
    // every checkpoint that any agent verifies afterwards.
    await write(agents[0]!, 'honest', 5);
    await eventually('the first agent drained', async () => ((await status(agents[0]!)).pending === 0 ? true : undefined));
    for (const agent of agents.slice(1)) await write(agent, 'honest', 5);
    const honest = await Promise.all(
      agents.map((agent) =>
        eventually(`${agent.port} verified the log`, async () => {
          const s = await status(agent);
          const receipt = s.lastReceipt as { checkpoint: { size: number } } | null;
          return s.pending === 0 && s.witness.verified !== null && s.witness.verified.size === receipt?.checkpoint.size ? s : undefined;
        }),
      ),
    );
    for (const s of honest) assert.equal(s.witnessAlarm, null, `${s.agent} found the honest log consistent`);

    // The fork, on disk, with the real log key.
    await collector.stop();
    collector = undefined;
    const fork = forkCollectorHistory(dir, { ...FORKED, origin });
    assert.notEqual(fork.rootAfter, fork.rootBefore);
    for (const s of honest) assert.ok(s.witness.verified!.size > fork.index, `${s.agent} verified a checkpoint that includes the forked entry`);
    collector = await startCollectorProcess({ dir, env: collectorEnv });
    const served = await (await fetch(`${collector.url}/api/v1/checkpoints?size=${fork.size}`)).text();
    assert.match(served, new RegExp(`^${origin.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\n${fork.size}\n`), 'the forked checkpoint is served, signed');

    // New records: every receipt now names a checkpoint of the forked tree.
    for (const agent of agents) await write(agent, 'after-fork', 3);
    const alarmed = await Promise.all(
      agents.map((agent) => eventually(`${agent.port} raised the witness alarm`, async () => ((await status(agent)).witnessAlarm !== null ? status(agent) : undefined))),
    );
    for (const [n, s] of alarmed.entries()) {
      const alarm = s.witnessAlarm!;
      assert.equal(alarm.reason, 'inconsistent', `${s.agent}: ${alarm.detail}`);
      assert.deepEqual(alarm.previous, { size: honest[n]!.witness.verified!.size, root: honest[n]!.witness.verified!.root });
      assert.ok(alarm.offered.size > fork.size);
      assert.deepEqual(
        s.witness.verified && { size: s.witness.verified.size, root: s.witness.verified.root },
        alarm.previous,
        'the verified checkpoint stays at the last honest one',
      );
      const loud = agents[n]!.logs.find((line) => line.alert === 'witness' && line.level === 50);
      assert.ok(loud, `${s.agent} logged the alarm at error`);
      assert.deepEqual(loud.previous, alarm.previous);
    }

    // The alarm records are synced like any record (to the very collector they accuse).
    await Promise.all(agents.map((agent) => eventually(`${agent.port} synced its alarm record`, async () => ((await status(agent)).pending === 0 ? true : undefined))));

    // Persistent: it survives a restart of the agents, and each outbox holds exactly one alarm record.
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    for (const [n, agentDir] of dirs.entries()) {
      const shown = await runAgentCli(['status', '--json'], { SAKSHYA_AGENT_DIR: agentDir });
      assert.equal(shown.code, 0, shown.stderr);
      assert.deepEqual((JSON.parse(shown.stdout) as AgentStatus).witnessAlarm, alarmed[n]!.witnessAlarm);
      const db = new Database(outboxPath(agentDir), { readonly: true });
      try {
        const records = (db.prepare("SELECT canonical FROM records WHERE kind = 'agent'").pluck().all() as string[]).map(
          (text) => JSON.parse(text) as { type: string; body: { reason: string; previous: unknown; offered: unknown } },
        );
        assert.deepEqual(
          records.map((r) => [r.type, r.body.reason, r.body.previous, r.body.offered]),
          [['witness.alarm', 'inconsistent', alarmed[n]!.witnessAlarm!.previous, alarmed[n]!.witnessAlarm!.offered]],
        );
      } finally {
        db.close();
      }
    }

    // A script that syncs by hand is told too: delivery works, the exit code says "alarm".
    const manual = await runAgentCli(['sync', '--once'], { SAKSHYA_AGENT_DIR: dirs[0]! });
    assert.equal(manual.code, 4, manual.stderr);
    assert.match(manual.stderr, /WITNESS ALARM \(inconsistent\)/);

    // The outbox itself is intact; `verify` says so, and mentions the alarm.
    const verified = await runAgentCli(['verify'], { SAKSHYA_AGENT_DIR: dirs[0]! });
    assert.equal(verified.code, 0, verified.stdout);
    assert.match(verified.stdout, /^warning: witness alarm active since .*: inconsistent/m);

    // And the collector received the agents' alarm records: the accusation is in its own ledger.
    const ledger = new Database(join(dir, 'collector.db'), { readonly: true });
    try {
      const accusers = ledger.prepare("SELECT agent FROM records WHERE type = 'witness.alarm' ORDER BY agent").pluck().all();
      assert.deepEqual(accusers, AGENTS, 'one alarm record per agent');
    } finally {
      ledger.close();
    }
  });
});
