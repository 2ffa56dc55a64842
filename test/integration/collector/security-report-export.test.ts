/**
 * What one agent's records can do to the collector through a report export (docs/security.md,
 * "Findings closed"): the bodies are the agent's to choose — thousands of distinct keys, keys
 * that look alike, line separators — and none of it may grow the exporter's memory or the CSV
 * without bound, or break the export.
 * Real SQLite, real HTTP on 127.0.0.1, the real CLI as a child process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { canonicalJson } from '../../../shared/canonical-json.ts';
import { BUNDLE_FILES, CSV_FIXED_COLUMNS } from '../../../shared/report/bundle-format.ts';
import { makeTempDir, REPO_ROOT, runCollectorCli, startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { enrolledAgent } from './security-support.ts';
import type { TestAgent } from './test-agent.ts';

const DAY = '2026-11-22';
const NEXT_DAY = '2026-11-23';
const at = (minute: number) => new Date(Date.parse(`${DAY}T08:00:00.000Z`) + minute * 60_000).toISOString();
const EXPORT_CHILD = join(REPO_ROOT, 'test/helpers/report-export-child.ts');
/** 300 records of 334 keys each, all distinct: 100,200 distinct body fields, as in the review. */
const HOSTILE_RECORDS = 300;
const KEYS_PER_RECORD = 334;
/** records.csv's field columns at most (CSV_MAX_FIELD_COLUMNS in shared/report/bundle-format.ts). */
const FIELD_COLUMNS = 64;

function hostileBody(record: number): { [key: string]: unknown } {
  const body: { [key: string]: unknown } = { user: `clerk-${record % 7}` };
  for (let k = 0; k < KEYS_PER_RECORD; k++) body[`f${String(record * KEYS_PER_RECORD + k).padStart(6, '0')}`] = k;
  return body;
}

function runNode(args: string[]): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: REPO_ROOT, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      const failure = err as (Error & { code?: number | string; signal?: string }) | null;
      resolve({ code: failure ? (typeof failure.code === 'number' ? failure.code : -1) : 0, signal: failure?.signal ?? null, stdout, stderr });
    });
  });
}

function readCsv(dir: string): string[][] {
  return parseCsv(readFileSync(join(dir, BUNDLE_FILES.csv), 'utf8'), { bom: true, record_delimiter: '\r\n' }) as string[][];
}

function bodiesOf(dir: string): unknown[] {
  return readFileSync(join(dir, BUNDLE_FILES.records), 'utf8')
    .trimEnd()
    .split('\n')
    .map((line) => (JSON.parse(line) as { body: unknown }).body);
}

describe('report exports of hostile record bodies', function () {
  this.timeout(300_000);
  let collector: InProcessCollector;
  let hostile: TestAgent;

  async function cliExport(agent: string, env: NodeJS.ProcessEnv = {}): Promise<{ out: string; code: number | null; stdout: string; stderr: string }> {
    const out = join(makeTempDir(), 'bundle');
    const result = await runCollectorCli(['report', 'export', '--dir', collector.dir, '--out', out, '--from', DAY, '--to', NEXT_DAY, '--agent', agent], {
      SAKSHYA_LOG_LEVEL: 'warn',
      ...env,
    });
    return { out, ...result };
  }

  before(async () => {
    collector = await startCollectorInProcess({ env: { SAKSHYA_LOG_LEVEL: 'info' } });
    hostile = await enrolledAgent(collector, 'AS-WIDE');
    for (let first = 0; first < HOSTILE_RECORDS; first += 100) {
      const records = Array.from({ length: 100 }, (_, i) => hostile.next(hostileBody(first + i), 'audit', 'certificate.issued', at(first + i)));
      await hostile.sendOk(hostile.batch(records));
    }
  });
  after(async () => {
    await collector?.stop();
  });

  it('an agent whose bodies carry thousands of distinct keys cannot grow records.csv beyond 64 field columns, and every row still carries its whole body', async () => {
    const { out, code, stderr } = await cliExport(hostile.id);
    assert.equal(code, 0, stderr);
    const [header, ...rows] = readCsv(out);
    assert.equal(header!.length, CSV_FIXED_COLUMNS.length + FIELD_COLUMNS + 1, 'fixed columns, 64 field columns, the body');
    assert.equal(header!.at(-1), 'body');
    assert.ok(header!.includes('/body/user'), 'the one field every record has is a column, whatever the flood of others');
    assert.equal(rows.length, HOSTILE_RECORDS);
    const bodies = bodiesOf(out);
    rows.forEach((row, i) => {
      assert.equal(row.length, header!.length);
      assert.equal(row.at(-1), canonicalJson(bodies[i]), `row ${i}: the body column holds the whole body`);
      assert.deepEqual(JSON.parse(row.at(-1)!), hostileBody(i));
    });
  });

  it('an agent cannot make two different body fields share a CSV column: columns are JSON Pointers, so {"a":{"b":1},"a.b":2} gives /body/a/b and /body/a.b', async () => {
    const agent = await enrolledAgent(collector, 'AS-DOTS');
    const body = { a: { b: 1 }, 'a.b': 2, 'x/y': '=1+2', 'm~n': 4, '': 5 };
    await agent.sendOk(agent.batch([agent.next(body, 'audit', 'certificate.issued', at(1))]));
    const { out, code, stderr } = await cliExport(agent.id);
    assert.equal(code, 0, stderr);
    const [header, row] = readCsv(out);
    const cells = Object.fromEntries(header!.map((name, i) => [name, row![i]]));
    assert.deepEqual(header!.slice(CSV_FIXED_COLUMNS.length), ['/body/', '/body/a.b', '/body/a/b', '/body/m~0n', '/body/x~1y', 'body']);
    assert.equal(cells['/body/a/b'], '1');
    assert.equal(cells['/body/a.b'], '2');
    assert.equal(cells['/body/x~1y'], "'=1+2", 'the formula guard still applies');
    assert.equal(cells['/body/m~0n'], '4');
    assert.equal(cells['/body/'], '5');
    assert.equal(cells.body, canonicalJson(body));
  });

  it('an agent whose body holds U+2028 or U+2029 line separators cannot make the exports that include it fail', async () => {
    const agent = await enrolledAgent(collector, 'AS-LSEP');
    const body = { note: 'one\u2028two\u2029three', n: 1 };
    await agent.sendOk(agent.batch([agent.next(body, 'audit', 'certificate.issued', at(1)), agent.next({ n: 2 }, 'audit', 'certificate.issued', at(2))]));
    const { out, code, stderr } = await cliExport(agent.id);
    assert.equal(code, 0, stderr);
    const [header, first, second] = readCsv(out);
    assert.equal(first![header!.indexOf('/body/note')], 'one\u2028two\u2029three');
    assert.equal(second![header!.indexOf('/body/n')], '2');
  });

  it('an agent whose records carry 10^5 distinct keys in all cannot make the exporter\'s memory grow with them: the export finishes in a 96 MiB heap', async () => {
    const out = join(makeTempDir(), 'bundle');
    const filter = { from: `${DAY}T00:00:00.000Z`, to: `${NEXT_DAY}T00:00:00.000Z`, agent: hostile.id, kind: null, type: null };
    const child = await runNode(['--max-old-space-size=96', EXPORT_CHILD, collector.dir, out, JSON.stringify(filter)]);
    assert.equal(child.code, 0, `exit ${child.code} ${child.signal ?? ''}: ${child.stderr.slice(-2000)}`);
    assert.equal((JSON.parse(child.stdout) as { records: number }).records, HOSTILE_RECORDS);
    assert.equal(readCsv(out)[0]!.length, CSV_FIXED_COLUMNS.length + FIELD_COLUMNS + 1);
  });
});
