/**
 * Retention of report bundles: `reports/` keeps a job's bundle SAKSHYA_REPORT_RETENTION after
 * it finished, then the sweep deletes it and the job says it expired. Real SQLite, real HTTP on
 * 127.0.0.1, and a real `serve` process for the sweep at start.
 */
import { sqliteOnly } from '../../helpers/postgres.ts';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { newId } from '../../../shared/ids.ts';
import { makeTempDir, runCollectorCli, startCollectorInProcess, startCollectorProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { assertProblem } from './http-assertions.ts';
import { enrolledAgent } from './security-support.ts';
import { request } from './test-agent.ts';

const DAY_MS = 86_400_000;
/** A stored job's filter, normalised as the collector stores it. */
const FILTER_JSON = '{"agent":null,"from":"2026-01-01T00:00:00.000Z","kind":null,"to":"2027-01-01T00:00:00.000Z","type":null}';

describe('report bundle retention', function () {
  this.timeout(120_000);

  describe('the sweep', () => {
    let collector: InProcessCollector;
    /** The collector's clock runs `offset` ahead of the real one (agent tokens use the real one). */
    let offset = 0;
    let auditor: { token: string; id: string };
    const api = (path: string, init: RequestInit = {}) =>
      request(`${collector.url}/api/v1${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${auditor.token}` } });

    async function finishedExport(): Promise<string> {
      const started = await api('/reports', { method: 'POST', body: JSON.stringify({ from: '2026-01-01', to: '2100-01-01' }) });
      assert.equal(started.status, 202, started.text);
      await collector.container.reports.idle();
      const id = (started.body as { id: string }).id;
      assert.equal(((await api(`/reports/${id}`)).body as { status: string }).status, 'done');
      return id;
    }

    before(async () => {
      collector = await startCollectorInProcess({ env: { SAKSHYA_REPORT_RETENTION: '7d' }, now: () => new Date(Date.now() + offset) });
      const agent = await enrolledAgent(collector, 'AS-KEEP');
      await agent.sendOk(agent.batch([agent.next({ n: 1 })]));
      // Lives longer than the clock is moved ahead.
      auditor = await collector.container.apiTokens.issue('auditor', 'retention-auditor', 30 * 86_400, 'cli:test');
    });
    after(async () => {
      await collector?.stop();
    });

    it('an auditor cannot fill reports/ by exporting: bundles older than SAKSHYA_REPORT_RETENTION are deleted, and their job says expired (410 report.expired), not 404 or 500', async () => {
      const old = await finishedExport();
      offset = 3 * DAY_MS;
      const recent = await finishedExport();
      const failed = newId();
      const stray = newId();
      const reportsDir = collector.container.reports.reportsDir;
      await collector.container.store.write(async (tx) => {
        await tx.putReportJob({
          id: failed, status: 'running', owner: auditor.id, actor: 'auditor:x', filterJson: FILTER_JSON, checkpointSize: 1, createdAt: new Date(Date.now()).toISOString(),
          finishedAt: null, countsJson: null, manifestSha256: null, bundleBytes: null, problemJson: null, expiredAt: null, replica: null,
        });
        await tx.finishReportJob(failed, { status: 'failed', finishedAt: new Date(Date.now()).toISOString(), problemJson: '{"detail":"x"}' });
      });
      mkdirSync(join(reportsDir, stray));
      mkdirSync(join(reportsDir, `${stray}.partial`));
      writeFileSync(join(reportsDir, 'NOTES.txt'), 'an operator\'s file');

      offset = 7 * DAY_MS + 3_600_000;
      const swept = await collector.container.reports.sweep();
      assert.deepEqual(swept.expired, [old]);
      assert.equal(swept.forgotten, 1);
      assert.deepEqual(swept.removed.sort(), [old, stray, `${stray}.partial`].sort());
      assert.deepEqual(readdirSync(reportsDir).sort(), ['NOTES.txt', recent].sort(), 'the recent bundle and files that are not bundles stay');

      const status = await api(`/reports/${old}`);
      assert.equal(status.status, 200);
      const view = status.body as { status: string; expiredAt: string; manifestSha256: string; links: { [k: string]: string } };
      assert.equal(view.status, 'expired');
      assert.ok(Math.abs(Date.parse(view.expiredAt) - (Date.now() + offset)) < 60_000, `expired at the sweep (${view.expiredAt})`);
      assert.match(view.manifestSha256, /^[0-9a-f]{64}$/, 'what was exported is still said');
      assert.deepEqual(Object.keys(view.links), ['self']);
      const gone = assertProblem(await api(`/reports/${old}/bundle.tar.gz`), 410, 'report.expired');
      assert.equal(gone.expiredAt, view.expiredAt);
      assert.equal((await fetch(`${collector.url}/api/v1/reports/${recent}/bundle.tar.gz`, { headers: { authorization: `Bearer ${auditor.token}` } })).status, 200);
      assertProblem(await api(`/reports/${failed}`), 404, 'resource.not_found');

      const again = await collector.container.reports.sweep();
      assert.deepEqual(again, { expired: [], forgotten: 0, removed: [] }, 'a second sweep finds nothing');
    });
  });

  it('the server deletes bundles past SAKSHYA_REPORT_RETENTION when it starts, so a collector that was down keeps no stale bundles', async function () {
    sqliteOnly(this, 'it writes report jobs into the SQLite file');
    const first = await startCollectorProcess();
    const { dir } = first;
    assert.equal(await first.stop(), 0);
    const issued = await runCollectorCli(['tokens', 'issue', '--role', 'auditor', '--name', 'retention-test'], { SAKSHYA_COLLECTOR_DIR: dir });
    assert.equal(issued.code, 0, issued.stderr);
    const listed = await runCollectorCli(['tokens', 'list', '--json'], { SAKSHYA_COLLECTOR_DIR: dir });
    const tokenId = (JSON.parse(listed.stdout) as { id: string; name: string }[]).find((t) => t.name === 'retention-test')!.id;
    const oldJob = newId();
    const keptJob = newId();
    const db = new Database(join(dir, 'collector.db'));
    const insert = db.prepare(
      `INSERT INTO report_jobs (id, status, owner, actor, filter_json, checkpoint_size, created_at, finished_at, counts_json, manifest_sha256, bundle_bytes)
       VALUES (?, 'done', ?, 'auditor:x', ?, 1, ?, ?, '{"records":0,"byKind":{"audit":0,"telemetry":0,"agent":0},"chains":0}', ?, 1)`,
    );
    const daysAgo = (days: number) => new Date(Date.now() - days * DAY_MS).toISOString();
    insert.run(oldJob, tokenId, FILTER_JSON, daysAgo(3), daysAgo(3), 'a'.repeat(64));
    insert.run(keptJob, tokenId, FILTER_JSON, daysAgo(1), daysAgo(1), 'b'.repeat(64));
    db.close();
    for (const id of [oldJob, keptJob]) {
      mkdirSync(join(dir, 'reports', id), { recursive: true });
      writeFileSync(join(dir, 'reports', id, 'bundle.tar.gz'), 'x');
    }

    const collector = await startCollectorProcess({ dir, env: { SAKSHYA_REPORT_RETENTION: '2d' } });
    try {
      assert.equal(existsSync(join(dir, 'reports', oldJob)), false, 'the bundle past its retention is gone');
      assert.equal(existsSync(join(dir, 'reports', keptJob)), true);
      const headers = { authorization: `Bearer ${issued.stdout.trim()}` };
      const status = await request(`${collector.url}/api/v1/reports/${oldJob}`, { headers });
      assert.equal((status.body as { status: string }).status, 'expired', status.text);
      assertProblem(await request(`${collector.url}/api/v1/reports/${oldJob}/bundle.tar.gz`, { headers }), 410, 'report.expired');
    } finally {
      await collector.stop();
    }
  });
});
