/**
 * The collector on PostgreSQL end to end: a real `sakshya-collector serve` process with
 * SAKSHYA_COLLECTOR_DATABASE=postgres://…, agents enrolled and batches sent over real HTTP,
 * then the real CLI against the same database — stats, a report bundle that sakshya-verify
 * accepts, `ledger verify` — and an intruder with SQL who disables a guard and changes one
 * record, whom `ledger verify` names. Needs SAKSHYA_TEST_POSTGRES_URL (test/helpers/postgres.ts).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditReport } from '../../../collector/services/ledger-audit.ts';
import { verifyReceipt } from '../../../shared/receipt.ts';
import { makeTempDir, runCollectorCli, startCollectorProcess, type CollectorProcess } from '../../helpers/collector-process.ts';
import { createTestDatabase, requirePostgres, sqlOn, type TestDatabase } from '../../helpers/postgres.ts';
import { runVerifyCli } from '../../helpers/verifier-process.ts';
import { TestAgent } from './test-agent.ts';

describe('the collector on PostgreSQL: serve, the CLI and ledger verify', function () {
  this.timeout(120_000);
  let database: TestDatabase;
  let collector: CollectorProcess | undefined;
  let env: NodeJS.ProcessEnv;

  before(async function () {
    database = await createTestDatabase(requirePostgres(this));
  });
  after(async () => {
    await collector?.kill9();
    await database?.drop();
  });

  const cli = async (args: string[]) => {
    const result = await runCollectorCli(args, { ...env, SAKSHYA_LOG_LEVEL: 'warn' });
    assert.equal(result.stderr.includes('unexpected error'), false, result.stderr);
    return result;
  };
  const verify = async () => {
    const result = await cli(['ledger', 'verify', '--json']);
    return { code: result.code, report: JSON.parse(result.stdout) as AuditReport };
  };

  it('takes batches over HTTP into the database, answers the CLI from it, and ledger verify finds it intact', async () => {
    const server = await startCollectorProcess({ env: { SAKSHYA_COLLECTOR_DATABASE: database.url } });
    collector = server;
    env = { SAKSHYA_COLLECTOR_DIR: server.dir, SAKSHYA_COLLECTOR_DATABASE: database.url };
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);

    const agents: TestAgent[] = [];
    for (const id of ['AS-PGS-001', 'AS-PGS-002']) {
      const token = await cli(['agents', 'enroll', '--agent', id]);
      assert.equal(token.code, 0, token.stderr);
      const agent = new TestAgent(id, server.url, server.origin);
      assert.equal((await agent.enroll(token.stdout.trim())).status, 200);
      agents.push(agent);
    }
    const [a, b] = agents as [TestAgent, TestAgent];
    const first = a.records(4);
    const receipts = [
      await a.sendOk(a.batch(first), { gzip: true }),
      await b.sendOk(b.batch([b.next({ office: 'KMR' }), b.next({ load: 0.4 }, 'telemetry', 'system.load')])),
      await a.sendOk(a.batch(first.slice(0, 2))), // duplicates only
      await a.sendOk(a.batch(a.records(3))),
    ];
    for (const [i, signed] of receipts.entries()) await verifyReceipt(signed, (i === 1 ? b : a).receiptKey);
    assert.equal(receipts[2]!.receipt.ledger, null);
    assert.deepEqual([receipts[2]!.receipt.accepted, receipts[2]!.receipt.duplicates], [0, 2]);

    const stats = await cli(['ledger', 'stats', '--json']);
    assert.equal(stats.code, 0, stats.stderr);
    const counted = JSON.parse(stats.stdout) as { size: number; byKind: { audit: number; telemetry: number; agent: number }; agents: number };
    // COLLECTOR chain: two tokens issued, two agents enrolled.
    assert.deepEqual(counted.byKind, { audit: 8, telemetry: 1, agent: 4 });
    assert.equal(counted.size, receipts[3]!.receipt.checkpoint.size);
    const listed = JSON.parse((await cli(['agents', 'list', '--json'])).stdout) as { agent: string }[];
    assert.deepEqual(listed.map((row) => row.agent).filter((id) => id.startsWith('AS-')).sort(), ['AS-PGS-001', 'AS-PGS-002']);
    const checkpoint = JSON.parse((await cli(['checkpoint', '--json'])).stdout) as { size: number };
    assert.equal(checkpoint.size, counted.size);

    // A report bundle, exported in the worker thread from its own snapshot of the database, verifies offline.
    const keyFile = join(makeTempDir('sakshya-keys-'), 'collector-keys.json');
    writeFileSync(keyFile, await (await fetch(`${server.url}/api/v1/keys`)).text());
    const out = join(makeTempDir('sakshya-export-'), 'bundle');
    const day = new Date().toISOString().slice(0, 10);
    const next = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const exported = await cli(['report', 'export', '--out', out, '--from', day, '--to', next, '--agent', 'AS-PGS-*', '--json']);
    assert.equal(exported.code, 0, exported.stderr);
    const checked = await runVerifyCli([out, '--collector-key', keyFile, '--json']);
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);

    // While the server still runs: the audit reads its own snapshot (the export added its COLLECTOR record).
    const latest = JSON.parse((await cli(['checkpoint', '--json'])).stdout) as { size: number; root: string };
    assert.equal(latest.size, counted.size + 1);
    const { code, report } = await verify();
    assert.equal(code, 0, JSON.stringify(report.findings));
    assert.equal(report.intact, true);
    assert.deepEqual(report.ledger, { size: latest.size, root: latest.root });
    assert.equal(report.checked.receipts, 4);

    assert.equal(await server.stop('SIGTERM'), 0);
    collector = undefined;
  });

  it('names the record an intruder with SQL changed, and the guard disabled to do it', async () => {
    const [row] = await sqlOn<{ ledger_index: string; id: string; canonical: string }>(
      database.url,
      `SELECT ledger_index, id, canonical FROM records WHERE agent = 'AS-PGS-001' AND seq = 2`,
    );
    const changed = row!.canonical.replace(/"n":2/, '"n":7');
    assert.notEqual(changed, row!.canonical);
    await sqlOn(database.url, `ALTER TABLE records DISABLE TRIGGER records_no_update`);
    await sqlOn(database.url, `UPDATE records SET canonical = $1 WHERE id = $2`, [changed, row!.id]);

    const { code, report } = await verify();
    assert.notEqual(code, 0);
    assert.equal(report.intact, false);
    const ref = { ledger_index: Number(row!.ledger_index), id: row!.id, agent: 'AS-PGS-001', seq: 2 };
    for (const check of ['record_hash', 'leaf_hash', 'signature']) {
      assert.ok(
        report.findings.some((f) => f.table === 'records' && f.check === check && Object.entries(ref).every(([key, value]) => f.row[key as keyof typeof f.row] === value)),
        `no ${check} finding for ${JSON.stringify(ref)} in ${JSON.stringify(report.findings, null, 1)}`,
      );
    }
    assert.deepEqual(
      report.findings.filter((f) => f.table === 'schema').map((f) => [f.check, f.row.name]),
      [['guard_missing', 'records_no_update']],
    );
  });

  it('says there is no collector database, without its password, for a PostgreSQL database never migrated', async () => {
    const empty = await createTestDatabase(requirePostgres(this.ctx as Mocha.Context));
    try {
      const url = new URL(empty.url);
      url.password = 's3cret';
      const result = await runCollectorCli(['ledger', 'stats'], { SAKSHYA_COLLECTOR_DIR: env.SAKSHYA_COLLECTOR_DIR, SAKSHYA_COLLECTOR_DATABASE: url.href, SAKSHYA_LOG_LEVEL: 'warn' });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /there is no collector database at postgres:\/\/postgres:\*\*\*@.*; run `sakshya-collector migrate`/);
      assert.doesNotMatch(result.stderr, /s3cret/);
    } finally {
      await empty.drop();
    }
  });
});
