/**
 * Scenario: the collector is unreachable long enough for an agent's buffer to reach its caps.
 * Telemetry is refused first (507 `buffer.telemetry_refused`), audit records at the hard cap
 * (507 `buffer.full`, and `emit` exits non-zero); nothing is silent: a warn line per cap, the
 * counters in `status --json` (kept across a kill -9), and — once the collector acknowledges
 * the backlog — ONE signed `telemetry.dropped` record with the exact counts, in the ledger.
 * Every record that got a 201 is in the ledger exactly once.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { eventually, fetchAgentStatus, runAgentCli } from '../helpers/agent-process.ts';
import { checkFleet, startFleet, waitDrained, type Fleet } from '../helpers/fault-fleet.ts';
import { assertFaultInvariants, type AcknowledgedRecord } from '../helpers/ledger-invariants.ts';
import { recordScenarioOutcome } from '../helpers/reliability.ts';

const SOFT = 32 * 1024;
const HARD = 64 * 1024;

interface BufferStatus {
  pending: number;
  buffer: {
    pendingBytes: number;
    state: string;
    dropped: { dropped: number; byType: { [type: string]: number }; worst: string } | null;
  };
}

describe('fault: the agent buffer cap reached during a collector outage', function () {
  this.timeout(300_000);
  let fleet: Fleet | undefined;

  afterEach(async () => {
    await fleet?.close();
    fleet = undefined;
  });

  it('refuses telemetry, then audit records, with 507s, counts every refusal and summarises them in one signed telemetry.dropped record', async () => {
    fleet = await startFleet({
      agents: 1,
      prefix: 'AS-CAP',
      agentEnv: { SAKSHYA_AGENT_SOFT_CAP_BYTES: String(SOFT), SAKSHYA_AGENT_HARD_CAP_BYTES: String(HARD) },
    });
    const agent = fleet.agents[0]!;
    await fleet.collectorDown();

    const refused = new Map<string, number>(); // by type
    const codes = new Map<string, number>();
    const post = async (kind: string, type: string, i: number): Promise<number> => {
      const running = agent.process!;
      agent.attempted++;
      const response = await fetch(`http://127.0.0.1:${running.port}/v1/records`, {
        method: 'POST',
        headers: { authorization: `Bearer ${running.localToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ kind, type, body: { i, detail: 'x'.repeat(300) } }),
      });
      const body = (await response.json()) as AcknowledgedRecord & { code?: string };
      if (response.status === 201) agent.acknowledged.push({ id: body.id, seq: body.seq });
      else {
        assert.equal(response.status, 507, JSON.stringify(body));
        refused.set(type, (refused.get(type) ?? 0) + 1);
        codes.set(body.code!, (codes.get(body.code!) ?? 0) + 1);
      }
      return response.status;
    };

    // Telemetry and audit alternate until an audit record is refused: the hard cap.
    let auditRefusedAt: number | undefined;
    let telemetryRefusedAt: number | undefined;
    for (let i = 0; auditRefusedAt === undefined; i++) {
      assert.ok(i < 2000, 'the hard cap was never reached');
      if ((await post('telemetry', 'service.health', i)) === 507) telemetryRefusedAt ??= i;
      if ((await post('audit', 'certificate.issued', i)) === 507) auditRefusedAt = i;
    }
    assert.ok(telemetryRefusedAt !== undefined && telemetryRefusedAt < auditRefusedAt, 'telemetry is refused before audit records');
    assert.ok((codes.get('buffer.telemetry_refused') ?? 0) > 0);
    assert.ok((codes.get('buffer.full') ?? 0) >= 1, 'the hard cap answers buffer.full');
    // Beyond the hard cap, telemetry too is answered buffer.full.
    assert.equal(await post('telemetry', 'service.health', -1), 507);

    // emit at the hard cap: a clear message and a non-zero exit.
    const emitted = await runAgentCli(['emit', '--kind', 'audit', '--type', 'certificate.issued', '--body', '{"via":"emit"}'], { ...agent.env, SAKSHYA_AGENT_DIR: agent.dir });
    assert.equal(emitted.code, 1, emitted.stderr);
    assert.match(emitted.stderr, /^sakshya-agent: buffer full \(507 buffer\.full\): .*NOT stored/m);
    agent.attempted++;
    refused.set('certificate.issued', (refused.get('certificate.issued') ?? 0) + 1);
    const totalRefused = [...refused.values()].reduce((a, b) => a + b, 0);

    // Not silent: one warn line per cap, and the counters in status --json.
    const warns = agent.process!.logs.filter((line) => line.level === 40 && /cap reached/.test(String(line.msg)));
    assert.deepEqual(warns.map((line) => line.cap), ['soft', 'hard']);
    const status = JSON.parse((await runAgentCli(['status', '--json'], { ...agent.env, SAKSHYA_AGENT_DIR: agent.dir })).stdout) as BufferStatus;
    assert.equal(status.buffer.state, 'hard_cap');
    assert.equal(status.buffer.dropped?.dropped, totalRefused);
    assert.deepEqual(status.buffer.dropped?.byType, Object.fromEntries(refused));
    assert.equal(status.buffer.dropped?.worst, 'hard');

    // The counter survives a kill -9.
    await agent.kill9();
    await agent.start();
    assert.equal((await fetchAgentStatus<BufferStatus>(agent.process!)).buffer.dropped?.dropped, totalRefused);

    // The collector comes back: the backlog drains, then the summary is written and synced.
    await fleet.collectorUp();
    await eventually(
      'the summary is written and acknowledged',
      async () => {
        const s = await fetchAgentStatus<BufferStatus>(agent.process!);
        return s.buffer.dropped === null && s.pending === 0 ? s : undefined;
      },
      120_000,
    );
    await waitDrained(fleet);
    const after = await fetchAgentStatus<BufferStatus>(agent.process!);
    assert.equal(after.buffer.state, 'ok');

    const db = new Database(join(fleet.collector.dir, 'collector.db'), { readonly: true });
    let summaries: { kind: string; body: { [key: string]: unknown } }[];
    try {
      summaries = (db.prepare(`SELECT canonical FROM records WHERE agent = ? AND type = 'telemetry.dropped'`).pluck().all(agent.agentId) as string[]).map(
        (text) => JSON.parse(text) as { kind: string; body: { [key: string]: unknown } },
      );
    } finally {
      db.close();
    }
    assert.equal(summaries.length, 1, 'one summary for the episode');
    const summary = summaries[0]!;
    assert.equal(summary.kind, 'agent');
    assert.deepEqual(Object.keys(summary.body).sort(), ['byType', 'dropped', 'firstAt', 'lastAt', 'reason']);
    assert.equal(summary.body.dropped, totalRefused);
    assert.deepEqual(summary.body.byType, Object.fromEntries(refused));
    assert.match(String(summary.body.reason), /hard cap \(65536 bytes\)/);
    assert.ok(Date.parse(String(summary.body.firstAt)) <= Date.parse(String(summary.body.lastAt)));

    const report = await checkFleet(fleet);
    recordScenarioOutcome({
      scenario: 'agent buffer cap reached (507s, one signed telemetry.dropped)',
      runs: 1,
      written: report.written,
      acknowledged: report.acknowledged,
      lost: report.lost,
      duplicated: report.duplicated,
      checkedBy: `${report.checkedBy}; every 507 counted in status (across kill -9) and in exactly one signed telemetry.dropped record in the ledger`,
      problems: report.problems,
    });
    assertFaultInvariants(report);
  });
});
