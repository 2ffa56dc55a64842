/**
 * The agent's Prometheus metrics (`GET /metrics` on the local API, no token) and
 * `sakshya-agent status --check`, on a real `sakshya-agent run` process syncing to a real
 * collector process: each counter and gauge moves when its event happens (delivery, a dead
 * collector, a full buffer, a witness alarm), and `status --check` fails exactly when the agent
 * is not delivering.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentKeyring } from '../../../agent/keys.ts';
import { SqliteOutbox, outboxPath } from '../../../agent/outbox/sqlite-outbox.ts';
import { raiseWitnessAlarm } from '../../../agent/witness/witness-alarm.ts';
import { packageVersion } from '../../../shared/package-version.ts';
import { eventually, initAgent, runAgentCli, startAgentProcess, TEST_AGENT_ENV, type AgentProcess, type InitializedAgent } from '../../helpers/agent-process.ts';
import { runCollectorCli, startCollectorProcess, type CollectorProcess } from '../../helpers/collector-process.ts';
import { sampleValue, scrape, type Exposition } from '../../helpers/prometheus-text.ts';

const CAPS = { SAKSHYA_AGENT_SOFT_CAP_BYTES: String(32 * 1024), SAKSHYA_AGENT_HARD_CAP_BYTES: String(256 * 1024) };

describe('agent metrics (GET /metrics on the local API) and status --check', function () {
  this.timeout(90_000);
  let collector: CollectorProcess;
  let initialized: InitializedAgent;
  let agent: AgentProcess | undefined;

  const metricsOf = (a: AgentProcess) => scrape(`http://127.0.0.1:${a.port}/metrics`);
  const post = (a: AgentProcess, record: { kind: string; type: string; body: unknown }) =>
    fetch(`http://127.0.0.1:${a.port}/v1/records`, {
      method: 'POST',
      headers: { authorization: `Bearer ${a.localToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(record),
    });
  const check = (...args: string[]) => runAgentCli(['status', '--check', ...args], initialized.env);
  async function until(what: string, a: AgentProcess, predicate: (e: Exposition) => boolean): Promise<Exposition> {
    return eventually(what, async () => {
      const e = await metricsOf(a);
      return predicate(e) ? e : undefined;
    });
  }

  before(async () => {
    collector = await startCollectorProcess();
    const token = (await runCollectorCli(['agents', 'enroll', '--agent', 'AS-AGM-001'], { SAKSHYA_COLLECTOR_DIR: collector.dir })).stdout.trim();
    initialized = await initAgent({ collectorUrl: collector.url, agentId: 'AS-AGM-001', token, env: { ...TEST_AGENT_ENV, ...CAPS } });
    agent = await startAgentProcess({ dir: initialized.dir, env: { ...TEST_AGENT_ENV, ...CAPS } });
  });
  after(async () => {
    await agent?.stop();
    await collector?.stop();
  });

  it('serves metrics without the local token (numbers only), while every other resource still needs it', async () => {
    const e = await metricsOf(agent!);
    assert.equal(sampleValue(e, 'sakshya_agent_build_info', { version: packageVersion() }), 1);
    assert.equal(e.types.get('sakshya_agent_acknowledged_records_total'), 'counter');
    assert.equal(e.types.get('sakshya_agent_sync_attempts_total'), 'counter');
    assert.ok(e.types.has('nodejs_heap_size_used_bytes'), 'Node process metrics');
    assert.equal((await fetch(`http://127.0.0.1:${agent!.port}/v1/status`)).status, 401);
  });

  it('counts delivered records and attempts, and status --check passes while the agent delivers', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await post(agent!, { kind: 'audit', type: 'certificate.issued', body: { n: i } })).status, 201);
    const e = await until('three records acknowledged', agent!, (x) => sampleValue(x, 'sakshya_agent_acknowledged_records_total') >= 3);
    assert.ok(sampleValue(e, 'sakshya_agent_sync_attempts_total', { outcome: 'delivered' }) >= 1);
    assert.equal(sampleValue(e, 'sakshya_agent_outbox_pending_records'), 0);
    assert.equal(sampleValue(e, 'sakshya_agent_outbox_pending_bytes'), 0);
    assert.equal(sampleValue(e, 'sakshya_agent_oldest_pending_age_seconds'), 0);
    assert.equal(sampleValue(e, 'sakshya_agent_circuit_open'), 0);
    assert.equal(sampleValue(e, 'sakshya_agent_witness_alarm'), 0);
    const lastReceipt = sampleValue(e, 'sakshya_agent_last_receipt_timestamp_seconds');
    assert.ok(Math.abs(lastReceipt - Date.now() / 1000) < 60, `last receipt at ${lastReceipt}`);
    const ok = await check();
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /OK: delivering/);
  });

  it('with the collector gone: network attempts, a growing backlog, buffer refusals, an open circuit, and status --check fails', async () => {
    await collector.kill9();
    assert.equal((await post(agent!, { kind: 'audit', type: 'certificate.issued', body: { n: 'after' } })).status, 201);
    let e = await until('a failed attempt', agent!, (x) => sampleValue(x, 'sakshya_agent_sync_attempts_total', { outcome: 'network' }) >= 1);
    assert.ok(sampleValue(e, 'sakshya_agent_outbox_pending_records') >= 1);
    assert.ok(sampleValue(e, 'sakshya_agent_outbox_pending_bytes') > 0);

    // Telemetry past the soft cap is refused (507) and counted.
    const filler = 'x'.repeat(8 * 1024);
    let refused = 0;
    for (let i = 0; i < 20 && refused === 0; i++) {
      const answer = await post(agent!, { kind: 'telemetry', type: 'system.sample', body: { filler, i } });
      if (answer.status === 507) refused++;
      else assert.equal(answer.status, 201);
    }
    assert.equal(refused, 1, 'the soft cap refused telemetry');
    e = await metricsOf(agent!);
    assert.equal(sampleValue(e, 'sakshya_agent_buffer_refusals_total'), 1);

    e = await until('the circuit opens', agent!, (x) => sampleValue(x, 'sakshya_agent_circuit_open') === 1);
    await sleep(1100);
    e = await metricsOf(agent!);
    assert.ok(sampleValue(e, 'sakshya_agent_oldest_pending_age_seconds') >= 1);
    const stuck = await check('--max-pending-age', '1s', '--json');
    assert.equal(stuck.code, 1, stuck.stdout + stuck.stderr);
    const verdict = JSON.parse(stuck.stdout) as { delivering: boolean; problems: string[] };
    assert.equal(verdict.delivering, false);
    assert.ok(verdict.problems.some((p) => /pending; the oldest has waited/.test(p)), verdict.problems.join('; '));
    const bad = await check('--max-pending-age', 'soon');
    assert.equal(bad.code, 2, 'a bad duration is a usage error');
  });

  it('a witness alarm shows as sakshya_agent_witness_alarm 1 and fails status --check', async () => {
    await agent!.stop();
    agent = undefined;
    const outbox = SqliteOutbox.open(outboxPath(initialized.dir));
    try {
      const key = new AgentKeyring(initialized.dir);
      key.signingKey(outbox.signingKeyRef());
      raiseWitnessAlarm(outbox, key, { reason: 'inconsistent', detail: 'test: consistency proof failed', previous: null, offered: { size: 9, root: 'A'.repeat(43) } });
    } finally {
      outbox.close();
    }
    const alarmed = await check('--max-pending-age', '30d');
    assert.equal(alarmed.code, 1);
    assert.match(alarmed.stdout, /NOT DELIVERING: witness alarm/);
    agent = await startAgentProcess({ dir: initialized.dir, env: { ...TEST_AGENT_ENV, ...CAPS } });
    assert.equal(sampleValue(await metricsOf(agent), 'sakshya_agent_witness_alarm'), 1);
  });
});
