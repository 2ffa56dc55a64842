/**
 * deploy/prometheus/: the alerting rules pass `promtool check rules`, their unit tests pass
 * `promtool test rules`, and those tests make every alert fire in one case and stay quiet in
 * another. Every rule carries what an operator needs: a severity, a summary naming what the
 * alert is about, and a runbook link to its section of the docs (the link itself is checked by
 * test/unit/docs/monitoring-doc.test.ts). The example scrape configuration passes
 * `promtool check config` and loads the rules under the job names they expect.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_METRICS_PORT } from '../../../collector/config.ts';
import { promtool, requirePromtool } from '../../helpers/promtool.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIR = join(ROOT, 'deploy/prometheus');
const readYaml = <T>(name: string) => parseYaml(readFileSync(join(DIR, name), 'utf8')) as T;

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: { [name: string]: string };
  annotations?: { [name: string]: string };
}
interface RuleFile {
  groups: Array<{ name: string; rules: Rule[] }>;
}
interface RuleTests {
  rule_files: string[];
  tests: Array<{
    name?: string;
    alert_rule_test?: Array<{ eval_time: string; alertname: string; exp_alerts?: Array<{ exp_labels?: { [name: string]: string } }> | null }>;
  }>;
}

/** The parenthesised argument of every `op(...)` / `op by (...) (...)` in `expr`. */
function aggregationArguments(expr: string, op: string): string[] {
  const found: string[] = [];
  for (const match of expr.matchAll(new RegExp(`\\b${op}\\s*(?:(?:by|without)\\s*\\([^()]*\\)\\s*)?\\(`, 'g'))) {
    let depth = 1;
    let end = match.index + match[0].length;
    for (; end < expr.length && depth > 0; end++) depth += expr[end] === '(' ? 1 : expr[end] === ')' ? -1 : 0;
    found.push(expr.slice(match.index + match[0].length, end - 1));
  }
  return found;
}

const rules = readYaml<RuleFile>('alerts.yml');
const alerts = rules.groups.flatMap((group) => group.rules).filter((rule): rule is Rule & { alert: string } => rule.alert !== undefined);

describe('deploy/prometheus: alerting rules', () => {
  it('pass promtool check rules', function () {
    const path = requirePromtool(this);
    const run = promtool(path, ['check', 'rules', 'alerts.yml'], DIR);
    assert.equal(run.status, 0, run.output);
    assert.match(run.output, new RegExp(`SUCCESS: ${alerts.length} rules found`));
  });

  it('pass their unit tests, promtool test rules alerts.test.yml', function () {
    const path = requirePromtool(this);
    const run = promtool(path, ['test', 'rules', 'alerts.test.yml'], DIR);
    assert.equal(run.status, 0, run.output);
    assert.match(run.output, /SUCCESS/);
  });

  it('are all tested: each alert fires in one case and is expected quiet in another', () => {
    const tests = readYaml<RuleTests>('alerts.test.yml');
    assert.deepEqual(tests.rule_files, ['alerts.yml']);
    const cases = tests.tests.flatMap((test) => test.alert_rule_test ?? []);
    const firing = new Set(cases.filter((c) => (c.exp_alerts ?? []).length > 0).map((c) => c.alertname));
    const quiet = new Set(cases.filter((c) => (c.exp_alerts ?? []).length === 0).map((c) => c.alertname));
    for (const { alert } of alerts) {
      assert.ok(firing.has(alert), `${alert}: no case in alerts.test.yml expects it to fire`);
      assert.ok(quiet.has(alert), `${alert}: no case in alerts.test.yml expects it not to fire`);
    }
    const unknown = [...firing, ...quiet].filter((name) => !alerts.some((rule) => rule.alert === name));
    assert.deepEqual(unknown, [], 'alerts.test.yml tests alerts that alerts.yml does not define');
  });

  it('each have a unique name, a severity, a summary naming its subject and a runbook section', () => {
    assert.ok(alerts.length >= 12, `only ${alerts.length} alerts`);
    assert.equal(new Set(alerts.map((rule) => rule.alert)).size, alerts.length, 'duplicate alert names');
    for (const rule of alerts) {
      assert.match(rule.alert, /^Sakshya[A-Z][A-Za-z]+$/, rule.alert);
      assert.ok(['critical', 'warning'].includes(rule.labels?.severity ?? ''), `${rule.alert}: severity ${rule.labels?.severity}`);
      const summary = rule.annotations?.summary ?? '';
      assert.ok(summary.length > 0, `${rule.alert}: no summary`);
      // The summary names the agent, replica or problem code the alert is about, when the
      // expression keeps that label.
      for (const label of ['agent', 'outcome', 'instance']) {
        if (new RegExp(`by \\([^)]*\\b${label}\\b`).test(rule.expr) || (label === 'instance' && /^\s*(up|sakshya_collector_ready)\b/.test(rule.expr))) {
          assert.ok(summary.includes(`{{ $labels.${label} }}`), `${rule.alert}: its summary does not name the ${label}`);
        }
      }
      if (rule.expr.includes('sakshya_agent_')) assert.ok(summary.includes('{{ $labels.agent }}'), `${rule.alert}: its summary does not name the agent`);
      assert.equal(rule.annotations?.runbook, `docs/monitoring.md#alert-${rule.alert.toLowerCase()}`, `${rule.alert}: runbook`);
    }
  });

  it('aggregate ledger-wide gauges with max by, never sum, so that replicas do not multiply them', () => {
    const ledgerWide = /sakshya_collector_(ledger_size|checkpoint_\w+|quarantined_records_total|agents|agent_\w+)\b/;
    const checked = alerts.filter((r) => ledgerWide.test(r.expr));
    assert.ok(checked.length >= 5);
    for (const rule of checked) {
      for (const summed of aggregationArguments(rule.expr, 'sum')) assert.doesNotMatch(summed, ledgerWide, `${rule.alert} sums a ledger-wide gauge`);
      assert.ok(
        aggregationArguments(rule.expr, 'max').some((argument) => ledgerWide.test(argument)),
        `${rule.alert}: a ledger-wide gauge not aggregated with max`,
      );
    }
  });
});

describe('deploy/prometheus/prometheus.example.yml', () => {
  it('passes promtool check config, which also loads alerts.yml', function () {
    const path = requirePromtool(this);
    const run = promtool(path, ['check', 'config', 'prometheus.example.yml'], DIR);
    assert.equal(run.status, 0, run.output);
    assert.match(run.output, /Checking .*alerts\.yml\s+SUCCESS/);
  });

  it('scrapes the collectors under the job name the alerts use, and gives every agent target its agent id', () => {
    const config = readYaml<{ rule_files: string[]; scrape_configs: Array<{ job_name: string; static_configs?: Array<{ targets: string[]; labels?: { [name: string]: string } }> }> }>(
      'prometheus.example.yml',
    );
    assert.deepEqual(config.rule_files, ['alerts.yml']);
    const jobs = new Map(config.scrape_configs.map((job) => [job.job_name, job]));
    const collectors = jobs.get('sakshya-collector');
    assert.ok(collectors, 'no sakshya-collector job');
    assert.ok(alerts.some((rule) => rule.expr.includes('job="sakshya-collector"')));
    for (const target of collectors.static_configs!.flatMap((c) => c.targets)) assert.ok(target.endsWith(`:${DEFAULT_METRICS_PORT}`), `${target}: not the default metrics port`);
    const agents = jobs.get('sakshya-agents');
    assert.ok(agents, 'no sakshya-agents job');
    for (const group of agents.static_configs!) assert.match(group.labels?.agent ?? '', /^[A-Z]/, `${group.targets.join(', ')}: no agent label`);
  });
});
