/**
 * Every metric name the monitoring in deploy/ uses is one the code exports. The alerting rules,
 * the promtool tests' input series and the Grafana dashboard's queries are read for metric
 * names; a real `sakshya-collector serve` (its metrics listener) and a real `sakshya-agent run`
 * (GET /metrics on its local API) are scraped after the agent delivered a batch, and every
 * sakshya_*, process_* and nodejs_* name used must be a family they declare (`# TYPE`; a
 * histogram also provides _bucket, _sum and _count). sakshya_agent_* names are looked up in the
 * agent's exposition, the others in the collector's, whose process the dashboard charts. `up`
 * is Prometheus's own series and node_* node_exporter's; any other name is a mistake.
 *
 * The same run checks deploy/node-exporter/sakshya-agent-metrics, the script that copies the
 * agent's metrics into node_exporter's textfile directory, against the real agent.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { initAgent, startAgentProcess, type AgentProcess } from '../../helpers/agent-process.ts';
import { runCollectorCli, startCollectorProcess, type CollectorProcess } from '../../helpers/collector-process.ts';
import { writeThroughLocalApi } from '../../helpers/ledger-invariants.ts';
import { exportedNames, parseExposition, sampleValue, scrape, type Exposition } from '../../helpers/prometheus-text.ts';
import { metricNamesOf, seriesName } from '../../helpers/promql-names.ts';
import { skipUnlessCi } from '../../helpers/skip.ts';
import { packageVersion } from '../../../shared/package-version.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const AGENT = 'AS-MON-001';
const TEXTFILE_SCRIPT = join(ROOT, 'deploy/node-exporter/sakshya-agent-metrics');

/** Where each name is used, for the failure message. */
function usedNames(): Map<string, Set<string>> {
  const used = new Map<string, Set<string>>();
  const add = (names: Iterable<string>, where: string) => {
    for (const name of names) used.set(name, (used.get(name) ?? new Set()).add(where));
  };
  const rules = parseYaml(read('deploy/prometheus/alerts.yml')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  for (const rule of rules.groups.flatMap((group) => group.rules)) add(metricNamesOf(rule.expr), `alerts.yml ${rule.alert}`);
  const tests = parseYaml(read('deploy/prometheus/alerts.test.yml')) as { tests: Array<{ name: string; input_series?: Array<{ series: string }> }> };
  for (const test of tests.tests) add((test.input_series ?? []).map((input) => seriesName(input.series)), `alerts.test.yml "${test.name}"`);
  const dashboard = JSON.parse(read('deploy/grafana/sakshya.json')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
  for (const panel of dashboard.panels) for (const target of panel.targets ?? []) add(metricNamesOf(target.expr), `sakshya.json "${panel.title}"`);
  return used;
}

describe('metric names used by deploy/ (alerts, their tests, the dashboard) against a real collector and agent', function () {
  this.timeout(90_000);
  let collector: CollectorProcess;
  let agent: AgentProcess | undefined;
  let collectorMetrics: Exposition;
  let agentMetrics: Exposition;
  let agentUrl: string;

  before(async () => {
    collector = await startCollectorProcess({ env: { SAKSHYA_COLLECTOR_METRICS_PORT: '0' } });
    const token = (await runCollectorCli(['agents', 'enroll', '--agent', AGENT], { SAKSHYA_COLLECTOR_DIR: collector.dir })).stdout.trim();
    const { dir } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token });
    agent = await startAgentProcess({ dir });
    agentUrl = `http://127.0.0.1:${agent.port}/metrics`;
    await writeThroughLocalApi(agent.port, agent.localToken, { kind: 'audit', type: 'certificate.issued', body: { certificate: 'MON-1' } });
    // Scrape once the batch is in: the per-agent gauges and the batch route's histogram then have samples.
    const deadline = Date.now() + 30_000;
    for (;;) {
      collectorMetrics = await scrape(collector.metricsUrl);
      if (sampleValue(collectorMetrics, 'sakshya_collector_batches_total', { outcome: 'accepted' }) > 0) break;
      assert.ok(Date.now() < deadline, 'the agent delivered no batch within 30 s');
      await sleep(100);
    }
    agentMetrics = await scrape(agentUrl);
  });

  after(async () => {
    await agent?.stop();
    await collector?.stop();
  });

  it('reads the metrics listener’s address from the collector’s "metrics listening" line', () => {
    const line = collector.logs.map((text) => JSON.parse(text) as { msg?: string; url?: string }).find((entry) => entry.msg === 'metrics listening');
    assert.equal(line?.url, collector.metricsUrl);
    assert.match(collector.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  });

  it('finds every sakshya_*, process_* and nodejs_* name used in the exports, and no unknown name', () => {
    const fromCollector = exportedNames(collectorMetrics);
    const fromAgent = exportedNames(agentMetrics);
    const used = usedNames();
    assert.ok(used.size >= 25, `only ${used.size} names found: the extraction is broken`);
    const missing: string[] = [];
    for (const [name, where] of used) {
      const places = [...where].join('; ');
      if (name.startsWith('sakshya_agent_')) {
        if (!fromAgent.has(name)) missing.push(`${name} (the agent does not export it): ${places}`);
      } else if (/^(sakshya_|process_|nodejs_)/.test(name)) {
        if (!fromCollector.has(name)) missing.push(`${name} (the collector does not export it): ${places}`);
      } else if (name !== 'up' && !name.startsWith('node_')) {
        missing.push(`${name} (neither Sakshya's, Prometheus's up, nor node_exporter's): ${places}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it('finds the label values the alerts and dashboard select on in the real series', () => {
    const batchRoute = collectorMetrics.samples.filter(
      (s) => s.name === 'sakshya_collector_http_request_duration_seconds_bucket' && s.labels.route === '/api/v1/batches' && s.labels.method === 'POST',
    );
    assert.ok(batchRoute.length > 0, 'no latency histogram for route="/api/v1/batches"');
    assert.ok(sampleValue(collectorMetrics, 'sakshya_collector_records_ingested_total', { agent: AGENT }) >= 1);
    assert.ok(collectorMetrics.samples.some((s) => s.name === 'sakshya_collector_agent_last_seen_timestamp_seconds' && s.labels.agent === AGENT));
    // The "Active agents by version" panel: the agent's batch reported its version.
    assert.equal(sampleValue(collectorMetrics, 'sakshya_collector_agents', { status: 'active', version: packageVersion() }), 1);
    assert.equal(sampleValue(agentMetrics, 'sakshya_agent_witness_alarm'), 0);
    assert.equal(sampleValue(agentMetrics, 'sakshya_agent_circuit_open'), 0);
  });

  describe('deploy/node-exporter/sakshya-agent-metrics', () => {
    let dir: string;
    beforeEach(function () {
      if (spawnSync('sh', ['-c', 'command -v curl']).status !== 0) skipUnlessCi(this, 'curl is not installed (apt-get install curl)');
      dir = mkdtempSync(join(tmpdir(), 'sakshya-textfile-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    const runScript = (port: number) =>
      spawnSync(TEXTFILE_SCRIPT, [], { encoding: 'utf8', env: { PATH: process.env.PATH, SAKSHYA_AGENT_PORT: String(port), TEXTFILE_DIR: dir } });

    it('writes the agent’s metrics to sakshya.prom, without the process_* names node_exporter has itself', () => {
      const run = runScript(agent!.port);
      assert.equal(run.status, 0, run.stderr);
      assert.deepEqual(readdirSync(dir), ['sakshya.prom'], 'a temporary file was left behind');
      const written = parseExposition(readFileSync(join(dir, 'sakshya.prom'), 'utf8'));
      const agentFamilies = [...agentMetrics.types.keys()].filter((name) => name.startsWith('sakshya_agent_'));
      assert.ok(agentFamilies.length >= 10, `the agent exports only ${agentFamilies.length} sakshya_agent_* families`);
      for (const name of agentFamilies) assert.equal(written.types.get(name), agentMetrics.types.get(name), name);
      assert.ok([...agentMetrics.types.keys()].some((name) => name.startsWith('process_')), 'the agent exports no process_* metrics: nothing to leave out');
      assert.deepEqual([...written.types.keys()].filter((name) => name.startsWith('process_')), []);
      assert.ok([...written.types.keys()].some((name) => name.startsWith('nodejs_')), 'the agent’s nodejs_* metrics are kept');
      assert.ok(written.samples.every((s) => !s.name.startsWith('process_')));
    });

    it('fails and leaves the previous file as it was when the agent does not answer', () => {
      writeFileSync(join(dir, 'sakshya.prom'), 'sakshya_agent_witness_alarm 0\n');
      const run = runScript(1);
      assert.notEqual(run.status, 0);
      assert.deepEqual(readdirSync(dir), ['sakshya.prom']);
      assert.equal(readFileSync(join(dir, 'sakshya.prom'), 'utf8'), 'sakshya_agent_witness_alarm 0\n');
    });
  });
});
