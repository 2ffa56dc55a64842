/**
 * deploy/grafana/sakshya.json: an importable dashboard (its data source is an import input,
 * `${DS_PROMETHEUS}`, chosen in Grafana's import dialog), with the panels docs/monitoring.md
 * describes, latency read as percentiles, and every query valid PromQL: the expressions are
 * handed to `promtool check rules` as recording rules, with Grafana's variables filled in.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { promtool, requirePromtool } from '../../helpers/promtool.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface Target {
  expr: string;
  refId: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
}
interface Dashboard {
  __inputs: Array<{ name: string; type: string; pluginId: string }>;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; datasource?: { type: string; uid: string } }> };
}

const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/sakshya.json'), 'utf8')) as Dashboard;
const panels = dashboard.panels.filter((panel) => panel.type !== 'row');
const exprs = panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })));
const DATASOURCE = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };

/** The panels whose queries match `pattern`. */
const panelsWith = (pattern: RegExp) => panels.filter((panel) => (panel.targets ?? []).some((target) => pattern.test(target.expr)));

describe('deploy/grafana/sakshya.json', () => {
  it('asks for its Prometheus data source on import, and every panel, query and variable uses it', () => {
    assert.deepEqual(
      dashboard.__inputs.map(({ name, type, pluginId }) => ({ name, type, pluginId })),
      [{ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }],
    );
    assert.equal(dashboard.title, 'Sakshya');
    for (const panel of panels) {
      assert.deepEqual(panel.datasource, DATASOURCE, panel.title);
      assert.ok((panel.targets ?? []).length > 0, `${panel.title}: no query`);
      for (const target of panel.targets!) assert.deepEqual(target.datasource, DATASOURCE, `${panel.title} ${target.refId}`);
    }
    for (const variable of dashboard.templating.list) assert.deepEqual(variable.datasource, DATASOURCE, `variable ${variable.name}`);
    assert.doesNotMatch(JSON.stringify(dashboard), /"uid":\s*"(?!\$\{DS_PROMETHEUS\}|sakshya-overview|-- Grafana --)[^"]*"/, 'a fixed data source uid');
  });

  it('lays its panels out on the 24-column grid without overlaps, with unique ids and refIds', () => {
    assert.equal(new Set(dashboard.panels.map((panel) => panel.id)).size, dashboard.panels.length);
    const taken = new Set<string>();
    for (const panel of dashboard.panels) {
      const { x, y, w, h } = panel.gridPos;
      assert.ok(x >= 0 && w > 0 && x + w <= 24, `${panel.title}: x ${x} w ${w}`);
      for (let row = y; row < y + h; row++) {
        for (let column = x; column < x + w; column++) {
          assert.ok(!taken.has(`${row}:${column}`), `${panel.title} overlaps another panel at ${row}:${column}`);
          taken.add(`${row}:${column}`);
        }
      }
      const refIds = (panel.targets ?? []).map((target) => target.refId);
      assert.equal(new Set(refIds).size, refIds.length, `${panel.title}: refIds`);
    }
  });

  it('has the panels the docs describe', () => {
    const wanted: Array<[string, RegExp]> = [
      ['ingest rate', /rate\(sakshya_collector_records_ingested_total/],
      ['batch latency', /histogram_quantile\(0\.99, sum by \(le\) \(rate\(sakshya_collector_http_request_duration_seconds_bucket\{route="\/api\/v1\/batches"/],
      ['silent agents', /time\(\) - max by \(agent\) \(sakshya_collector_agent_last_seen_timestamp_seconds\)/],
      ['backlogs', /topk\(10, max by \(agent\) \(sakshya_collector_agent_backlog_records\)\)/],
      ['ledger size', /max\(sakshya_collector_ledger_size\)/],
      ['checkpoint age', /time\(\) - max\(sakshya_collector_checkpoint_timestamp_seconds\)/],
      ['refusals by code', /sum by \(outcome\) \(rate\(sakshya_collector_batches_total\{outcome!~"accepted\|duplicate"/],
      ['agents by version', /max by \(version\) \(sakshya_collector_agents\{status="active"\}\)/],
      ['event-loop lag p99', /nodejs_eventloop_lag_p99_seconds/],
      ['heap', /nodejs_heap_size_used_bytes/],
    ];
    for (const [what, pattern] of wanted) assert.ok(panelsWith(pattern).length > 0, `no ${what} panel (${pattern})`);
  });

  it('reads latency as percentiles: p50, p95 and p99 of the batch route, and no averages anywhere', () => {
    const [latency, ...others] = panelsWith(/sakshya_collector_http_request_duration_seconds_bucket/);
    assert.ok(latency && others.length === 0);
    assert.deepEqual(
      latency.targets!.map((target) => /^histogram_quantile\((0\.\d+),/.exec(target.expr)?.[1]),
      ['0.50', '0.95', '0.99'],
    );
    for (const { panel, expr } of exprs) {
      assert.doesNotMatch(expr, /\bavg(_over_time)?\s*\(|avg\s+by/, `${panel}: an average`);
      assert.doesNotMatch(expr, /_sum\b/, `${panel}: a histogram's _sum (an average in the making)`);
    }
  });

  it('queries valid PromQL (promtool check rules, with Grafana variables filled in)', function () {
    const path = requirePromtool(this);
    const dir = mkdtempSync(join(tmpdir(), 'sakshya-dashboard-'));
    try {
      const rules = exprs.map(({ expr }, i) => ({
        record: `sakshya_dashboard:query_${i}`,
        expr: expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*'),
      }));
      for (const { expr } of rules) assert.doesNotMatch(expr, /\$/, `a Grafana variable this test does not fill in: ${expr}`);
      writeFileSync(join(dir, 'dashboard.rules.yml'), stringify({ groups: [{ name: 'dashboard', rules }] }));
      const run = promtool(path, ['check', 'rules', 'dashboard.rules.yml'], dir);
      assert.equal(run.status, 0, run.output);
      assert.match(run.output, new RegExp(`SUCCESS: ${rules.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
