/**
 * docs/monitoring.md and the Monitoring section of docs/operations.md: every alert's runbook
 * link lands on a heading of the file it names (anchors as GitHub makes them from headings),
 * every alert has its section and every section an alert, every relative link of both files
 * resolves (file and anchor), and the environment variables and ports they name are the ones
 * the code reads.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { AGENT_ENV_NAMES } from '../../../agent/config.ts';
import { COLLECTOR_ENV, DEFAULT_METRICS_PORT } from '../../../collector/config.ts';
import { DEFAULT_AGENT_PORT } from '../../../shared/protocol.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** Markdown outside fenced code blocks (a `# comment` in a shell example is not a heading). */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '');
}

/** The anchors GitHub gives a file's headings: lowercased, punctuation dropped, spaces to hyphens, repeats numbered. */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const [, text] of prose(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = text!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** Relative links `[text](target)` of a markdown file (not http(s), not mailto). */
function relativeLinks(markdown: string): string[] {
  return [...prose(markdown).matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((target) => !/^[a-z]+:/.test(target));
}

function assertLinkResolves(fromFile: string, target: string): void {
  const [path, anchor] = target.split('#') as [string, string | undefined];
  const file = path === '' ? fromFile : normalize(join(dirname(fromFile), path));
  assert.ok(existsSync(join(ROOT, file)), `${fromFile}: link to ${target}: ${file} does not exist`);
  if (anchor !== undefined) {
    assert.ok(headingAnchors(read(file)).has(anchor), `${fromFile}: link to ${target}: ${file} has no heading with anchor #${anchor}`);
  }
}

interface Alert {
  alert: string;
  annotations: { runbook: string };
}
const alerts = (parseYaml(read('deploy/prometheus/alerts.yml')) as { groups: Array<{ rules: Alert[] }> }).groups.flatMap((group) => group.rules);
const monitoring = read('docs/monitoring.md');
const operations = read('docs/operations.md');
const monitoringSection = operations.split(/^## Monitoring$/m)[1]?.split(/^## /m)[0];

describe('docs/monitoring.md and the Monitoring section of docs/operations.md', () => {
  it('computes anchors as GitHub does', () => {
    assert.deepEqual(
      [...headingAnchors('# A b\n## `ingest.busy`: the queues (full)\n### Alert: SakshyaAgentSilent\n## A b\n```sh\n# not a heading\n```\n')],
      ['a-b', 'ingestbusy-the-queues-full', 'alert-sakshyaagentsilent', 'a-b-1'],
    );
  });

  it('has a section for every alert, which its runbook link lands on', () => {
    assert.ok(alerts.length > 0);
    for (const { alert, annotations } of alerts) {
      const [file, anchor] = annotations.runbook.split('#') as [string, string];
      assert.ok(existsSync(join(ROOT, file)), `${alert}: runbook file ${file} does not exist`);
      assert.ok(headingAnchors(read(file)).has(anchor), `${alert}: ${file} has no heading for #${anchor}`);
      assert.equal(anchor, `alert-${alert.toLowerCase()}`);
    }
  });

  it('has no alert section for an alert alerts.yml does not define', () => {
    const sections = [...prose(monitoring).matchAll(/^### Alert: (\S+)$/gm)].map((m) => m[1]);
    assert.deepEqual(sections.sort(), alerts.map((a) => a.alert).sort());
  });

  it('links only to files and headings that exist', () => {
    for (const [file, text] of [['docs/monitoring.md', monitoring], ['docs/operations.md', operations]] as const) {
      const links = relativeLinks(text);
      assert.ok(links.length > 0);
      for (const target of links) assertLinkResolves(file, target);
    }
  });

  it('has operations.md point to monitoring.md from a Monitoring section that covers collectors, agents, the dashboard and alerts', () => {
    assert.ok(monitoringSection, 'docs/operations.md has no "## Monitoring" section');
    assert.match(monitoringSection, /\]\(monitoring\.md\)/);
    for (const needed of [/127\.0\.0\.1:7401/, /SAKSHYA_COLLECTOR_METRICS_HOST/, /own target/, /textfile/, /reverse proxy/, /Dashboards → New → Import/, /percentiles/]) {
      assert.match(monitoringSection, needed);
    }
  });

  it('names only environment variables the collector or the agent reads, and their real default ports', () => {
    const known = new Set<string>([...Object.values(COLLECTOR_ENV), ...AGENT_ENV_NAMES]);
    const named = new Set([...`${monitoring}\n${monitoringSection}`.matchAll(/\bSAKSHYA_[A-Z0-9_]+\b(\*)?/g)].map((m) => m[0]));
    assert.ok(named.size >= 5);
    for (const name of named) {
      if (name.endsWith('*') || name.endsWith('_')) {
        const prefix = name.replace(/\*$/, '');
        assert.ok([...known].some((k) => k.startsWith(prefix)), `${name}: no variable starts so`);
      } else {
        assert.ok(known.has(name), `${name} is not a variable the collector or the agent reads`);
      }
    }
    assert.match(monitoring, new RegExp(`\\| \`SAKSHYA_COLLECTOR_METRICS_PORT\` \\| \`${DEFAULT_METRICS_PORT}\` \\|`));
    assert.match(monitoring, new RegExp(`default ${DEFAULT_AGENT_PORT}\\)`));
    assert.match(read('deploy/node-exporter/sakshya-agent-metrics'), new RegExp(`SAKSHYA_AGENT_PORT:-${DEFAULT_AGENT_PORT}\\}`));
    assert.match(read('deploy/node-exporter/sakshya-agent-metrics.service'), new RegExp(`SAKSHYA_AGENT_PORT=${DEFAULT_AGENT_PORT}$`, 'm'));
  });
});
