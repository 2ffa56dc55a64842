/**
 * What one agent's records can do to the collector through a report export (docs/security.md,
 * "Findings closed"): the bodies are the agent's to choose — thousands of distinct keys, keys
 * that look alike, line separators — and none of it may freeze the collector, grow its memory or
 * its CSV without bound, or break the export. And an export cannot take the disk's last bytes.
 * Real SQLite, real HTTP on 127.0.0.1, the real CLI as a child process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { parse as parseCsv } from 'csv-parse/sync';
import { canonicalJson } from '../../../shared/canonical-json.ts';
import { BUNDLE_FILES, CSV_FIXED_COLUMNS } from '../../../shared/report/bundle-format.ts';
import { makeTempDir, postgresUrlOf, REPO_ROOT, runCollectorCli, startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { assertProblem } from './http-assertions.ts';
import { collectorChain, enrolledAgent, humanToken } from './security-support.ts';
import { request, type TestAgent } from './test-agent.ts';

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
  let auditor: { token: string; id: string };
  const filterOf = (agent: string) => ({ from: DAY, to: NEXT_DAY, agent });

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
    auditor = await humanToken(collector, 'auditor', 'cag-audit-cell');
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
    const child = await runNode(['--max-old-space-size=96', EXPORT_CHILD, collector.dir, out, JSON.stringify(filter), ...(postgresUrlOf(collector.dir) !== undefined ? [postgresUrlOf(collector.dir)!] : [])]);
    assert.equal(child.code, 0, `exit ${child.code} ${child.signal ?? ''}: ${child.stderr.slice(-2000)}`);
    assert.equal((JSON.parse(child.stdout) as { records: number }).records, HOSTILE_RECORDS);
    assert.equal(readCsv(out)[0]!.length, CSV_FIXED_COLUMNS.length + FIELD_COLUMNS + 1);
  });

  it('an agent whose bodies carry thousands of distinct keys cannot stall /healthz: the event loop stays mostly idle while their records are exported, and /healthz answers during the export', async () => {
    const started = await request(`${collector.url}/api/v1/reports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${auditor.token}` },
      body: JSON.stringify(filterOf(hostile.id)),
    });
    assert.equal(started.status, 202, started.text);
    const since = performance.eventLoopUtilization();
    let finished = false;
    const idle = collector.container.reports.idle().then(() => (finished = true));
    let answeredDuringExport = 0;
    while (!finished) {
      const health = await fetch(`${collector.url}/healthz`);
      assert.equal(health.status, 200);
      await health.text();
      if (!finished) answeredDuringExport++;
      await delay(50);
    }
    await idle;
    const { utilization } = performance.eventLoopUtilization(since);
    const job = await request(`${collector.url}/api/v1/reports/${(started.body as { id: string }).id}`, { headers: { authorization: `Bearer ${auditor.token}` } });
    assert.equal((job.body as { status: string }).status, 'done', job.text);
    assert.ok(answeredDuringExport >= 1, 'a /healthz request issued during the export was answered before it finished');
    // The loop's busy share over the export, not a time: the work runs elsewhere, the loop waits.
    assert.ok(utilization < 0.5, `the event loop was busy ${(utilization * 100).toFixed(0)} % of the export`);
  });
});

describe('report exports and the disk floor', function () {
  this.timeout(120_000);
  let collector: InProcessCollector;
  let auditor: { token: string; id: string };
  /** More free space than any disk has: every export is below the floor. */
  const UNREACHABLE_FLOOR = String(Number.MAX_SAFE_INTEGER);

  before(async () => {
    collector = await startCollectorInProcess({ env: { SAKSHYA_REPORT_MIN_FREE_BYTES: UNREACHABLE_FLOOR } });
    const agent = await enrolledAgent(collector, 'AS-DISK');
    await agent.sendOk(agent.batch([agent.next({ n: 1 }, 'audit', 'certificate.issued', at(1))]));
    auditor = await humanToken(collector, 'auditor');
  });
  after(async () => {
    await collector?.stop();
  });

  it('an auditor cannot take the collector\'s disk below SAKSHYA_REPORT_MIN_FREE_BYTES with an export: a new job is 507 report.storage_full and nothing is created', async () => {
    const chainBefore = collectorChain(collector.dir).length;
    const answer = await request(`${collector.url}/api/v1/reports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${auditor.token}` },
      body: JSON.stringify({ from: DAY, to: NEXT_DAY }),
    });
    const problem = assertProblem(answer, 507, 'report.storage_full');
    assert.equal(problem.minFreeBytes, Number.MAX_SAFE_INTEGER);
    assert.equal(typeof problem.freeBytes, 'number');
    await collector.container.reports.idle();
    assert.equal(existsSync(collector.container.reports.reportsDir) ? readdirSync(collector.container.reports.reportsDir).length : 0, 0, 'no job directory');
    assert.equal(collectorChain(collector.dir).length, chainBefore, 'no report.exported record');
  });

  it('an operator cannot fill the disk with `report export` either: below the floor the CLI refuses with one clear line and writes nothing', async () => {
    const parent = makeTempDir();
    const result = await runCollectorCli(['report', 'export', '--dir', collector.dir, '--out', join(parent, 'bundle'), '--from', DAY, '--to', NEXT_DAY], {
      SAKSHYA_LOG_LEVEL: 'warn',
      SAKSHYA_REPORT_MIN_FREE_BYTES: UNREACHABLE_FLOOR,
    });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /free.*below.*SAKSHYA_REPORT_MIN_FREE_BYTES/);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
    assert.deepEqual(readdirSync(parent), []);
  });
});
