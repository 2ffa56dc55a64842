/**
 * `sakshya-collector db copy` end to end, as an operator moves a state from SQLite to
 * PostgreSQL: a real collector on SQLite with real agents (`sakshya-agent run`), batches, an
 * equivocation in quarantine, an auditor's HTTP export and a CLI export; the collector stopped;
 * the CLI copies and proves; `serve` on PostgreSQL at the same address, and the same agents go
 * on — no enrollment — on the same tree, which their witnesses and a consistency proof from the
 * last SQLite checkpoint confirm. Then the refusals (a target holding data, a source at an older
 * schema version), the way back into a new SQLite file, and `db verify-copy` naming tampered
 * rows and a source that moved on.
 * Needs SAKSHYA_TEST_POSTGRES_URL (test/helpers/postgres.ts).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createServer } from 'node:net';
import Database from 'better-sqlite3';
import type { CopyProof, CopyResult } from '../../../collector/services/database-copy.ts';
import type { AuditReport } from '../../../collector/services/ledger-audit.ts';
import { COPY_TABLES } from '../../../collector/store/copy.ts';
import { SQLITE_MIGRATIONS } from '../../../collector/store/sqlite/sqlite-store.ts';
import { sqliteMigrationRunner } from '../../../collector/store/sqlite/migration-target.ts';
import { fromBase64Url } from '../../../shared/crypto.ts';
import { verifyConsistency } from '../../../shared/merkle.ts';
import { newId } from '../../../shared/ids.ts';
import { signRecord, type SignedRecord } from '../../../shared/record.ts';
import { eventually, fetchAgentStatus, initAgent, startAgentProcess, type AgentProcess } from '../../helpers/agent-process.ts';
import { makeTempDir, runCollectorCli, startCollectorProcess, type CollectorProcess } from '../../helpers/collector-process.ts';
import { createTestDatabase, requirePostgres, sqlOn, type TestDatabase, sqliteOnly } from '../../helpers/postgres.ts';
import { TestAgent } from './test-agent.ts';

const REAL_AGENTS = ['AS-KMR-001', 'AS-CCH-002'];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface RealAgent {
  id: string;
  dir: string;
  process: AgentProcess;
  written: number;
}

interface AgentStatus {
  pending: number;
  acked: number;
  witness: { verified: { size: number; root: string } | null };
  witnessAlarm: unknown;
}

async function writeRecords(agent: RealAgent, count: number, phase: string): Promise<void> {
  for (let i = 0; i < count; i++) {
    const telemetry = i % 4 === 3;
    const payload = telemetry
      ? { kind: 'telemetry', type: 'service.health', body: { up: true, responseMs: 40 + i, phase } }
      : { kind: 'audit', type: 'certificate.issued', body: { office: agent.id, certificate: `${agent.id}-${phase}-${i}` } };
    const response = await fetch(`http://127.0.0.1:${agent.process.port}/v1/records`, {
      method: 'POST',
      headers: { authorization: `Bearer ${agent.process.localToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    });
    assert.equal(response.status, 201, await response.text());
    agent.written++;
  }
}

/** Every record acknowledged, the witness past `size`, no alarm. */
function drained(agents: RealAgent[], pastSize: number): Promise<AgentStatus[]> {
  return eventually(
    'every agent drained and witnessed',
    async () => {
      const statuses = await Promise.all(agents.map((a) => fetchAgentStatus<AgentStatus>(a.process)));
      const done = statuses.every((s, i) => s.pending === 0 && s.acked === agents[i]!.written && (s.witness.verified?.size ?? 0) > pastSize);
      return done ? statuses : undefined;
    },
    60_000,
  );
}

describe('db copy: a SQLite ledger moved to PostgreSQL, proved, and served on', function () {
  before(function () {
    sqliteOnly(this, 'it builds its SQLite source itself and copies it into PostgreSQL: it runs once, in the SQLite group');
  });
  this.timeout(300_000);
  let admin: string;
  const databases: TestDatabase[] = [];
  const agents: RealAgent[] = [];
  let collector: CollectorProcess | undefined;
  let collectorDir: string;
  let sqliteUrl: string;
  let baseEnv: { [name: string]: string };
  let copied: TestDatabase;
  let lastSqliteCheckpoint: { size: number; root: string };
  let equivocator: TestAgent;
  let auditorToken: string;
  let jobId: string;

  const database = async () => {
    const created = await createTestDatabase(admin);
    databases.push(created);
    return created;
  };
  const cli = async (args: string[], env: { [name: string]: string } = {}) => {
    const result = await runCollectorCli(args, { ...baseEnv, SAKSHYA_LOG_LEVEL: 'warn', ...env });
    assert.equal(result.stderr.includes('unexpected error'), false, result.stderr);
    return result;
  };
  const copyJson = async (command: 'copy' | 'verify-copy', from: string, to: string) => {
    const result = await cli(['db', command, '--from', from, '--to', to, '--json']);
    return { ...result, out: result.stdout === '' ? undefined : (JSON.parse(result.stdout) as { copy?: CopyResult; proof: CopyProof }) };
  };

  before(async function () {
    admin = requirePostgres(this);
    const base = makeTempDir('sakshya-db-copy-');
    collectorDir = join(base, 'collector');
    sqliteUrl = `sqlite:${join(collectorDir, 'collector.db')}`;
    baseEnv = { SAKSHYA_COLLECTOR_DIR: collectorDir, SAKSHYA_COLLECTOR_PORT: String(await freePort()) };
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.process.stop()));
    await collector?.kill9();
    for (const created of databases) await created.drop();
  });

  it('copies a ledger written by real agents into an empty PostgreSQL database and proves the copy', async () => {
    collector = await startCollectorProcess({ dir: collectorDir, env: baseEnv });
    for (const id of REAL_AGENTS) {
      const token = await cli(['agents', 'enroll', '--agent', id]);
      assert.equal(token.code, 0, token.stderr);
      const dir = join(collectorDir, '..', id);
      await initAgent({ collectorUrl: collector.url, agentId: id, token: token.stdout.trim(), dir });
      agents.push({ id, dir, process: await startAgentProcess({ dir }), written: 0 });
    }
    await Promise.all(agents.map((a) => writeRecords(a, 12, 'sqlite')));
    await drained(agents, 0);

    // An agent of the test's own that equivocates once: a quarantined record to carry over.
    const token = await cli(['agents', 'enroll', '--agent', 'AS-DBR-003']);
    equivocator = new TestAgent('AS-DBR-003', collector.url, collector.origin);
    assert.equal((await equivocator.enroll(token.stdout.trim())).status, 200);
    const [first] = equivocator.records(1) as [SignedRecord];
    await equivocator.sendOk(equivocator.batch([first, ...equivocator.records(2)]));
    const forged = signRecord({ ...first, id: newId(), body: { n: 'changed' } }, equivocator.key.privateKey);
    assert.equal((await equivocator.send(equivocator.batch([forged]))).status, 409);

    // An auditor's export over HTTP (a report job) and one from the CLI.
    auditorToken = (await cli(['tokens', 'issue', '--role', 'auditor', '--name', 'R. Auditor'])).stdout.trim();
    const day = new Date().toISOString().slice(0, 10);
    const nextDay = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const started = await fetch(`${collector.url}/api/v1/reports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${auditorToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ from: day, to: nextDay, agent: 'AS-*' }),
    });
    assert.equal(started.status, 202);
    jobId = ((await started.json()) as { id: string }).id;
    await eventually('the report job done', async () => {
      const job = (await (await fetch(`${collector!.url}/api/v1/reports/${jobId}`, { headers: { authorization: `Bearer ${auditorToken}` } })).json()) as { status: string };
      return job.status === 'done' ? job : undefined;
    });
    const exported = await cli(['report', 'export', '--from', day, '--to', nextDay, '--out', join(collectorDir, '..', 'bundle'), '--json']);
    assert.equal(exported.code, 0, exported.stderr);

    // The operator stops the collector, then copies.
    assert.equal(await collector.stop(), 0);
    collector = undefined;
    lastSqliteCheckpoint = JSON.parse((await cli(['checkpoint', '--json'])).stdout) as { size: number; root: string };

    copied = await database();
    const { code, out, stderr } = await copyJson('copy', sqliteUrl, copied.url);
    assert.equal(code, 0, `${stderr}\n${JSON.stringify(out?.proof.checks, null, 1)}`);
    const { copy, proof } = out as { copy: CopyResult; proof: CopyProof };
    assert.deepEqual(copy.migrated.applied.length, SQLITE_MIGRATIONS.length);
    assert.deepEqual(Object.keys(copy.tables), COPY_TABLES.map((t) => t.name));
    for (const table of COPY_TABLES) assert.ok(copy.tables[table.name]! > 0, `${table.name} has rows to copy`);
    assert.equal(copy.tables.quarantine, 1);
    assert.equal(copy.tables.report_jobs, 1);
    assert.deepEqual(copy.ledger, { size: lastSqliteCheckpoint.size, checkpointSize: lastSqliteCheckpoint.size, root: lastSqliteCheckpoint.root, agents: 3 });

    assert.equal(proof.proved, true);
    assert.deepEqual(
      proof.checks.map((c) => [c.name, c.ok]),
      ['schema', 'source_unchanged', 'tables', 'checkpoints', 'receipts', 'root_from_records', 'root_from_subtrees', 'ledger_verify'].map((name) => [name, true]),
    );
    assert.deepEqual(proof.ledger.root, lastSqliteCheckpoint.root);
    assert.equal(proof.counts.records, lastSqliteCheckpoint.size);
    assert.equal(proof.counts.receipts, copy.tables.receipts);
    assert.ok(proof.tables.every((t) => t.identical && t.source === copy.tables[t.table] && t.target === t.source));
    assert.deepEqual(proof.audit?.ledger, { size: lastSqliteCheckpoint.size, root: lastSqliteCheckpoint.root });

    // The copy as the collector sees it: `ledger verify` on PostgreSQL, and the human summary.
    const verified = await cli(['ledger', 'verify', '--json'], { SAKSHYA_COLLECTOR_DATABASE: copied.url });
    assert.equal(verified.code, 0, verified.stdout);
    assert.deepEqual((JSON.parse(verified.stdout) as AuditReport).ledger, { size: lastSqliteCheckpoint.size, root: lastSqliteCheckpoint.root });
    const again = await cli(['db', 'verify-copy', '--from', sqliteUrl, '--to', copied.url]);
    assert.equal(again.code, 0, again.stdout);
    assert.match(again.stdout, new RegExp(`COPY PROVED: records ${lastSqliteCheckpoint.size}, checkpoints \\d+, receipts \\d+, agents 3, root ${lastSqliteCheckpoint.root}`));
  });

  it('serves the copy: the same agents go on without enrolling again, on the same tree', async () => {
    collector = await startCollectorProcess({ dir: collectorDir, env: { ...baseEnv, SAKSHYA_COLLECTOR_DATABASE: copied.url } });
    await Promise.all(agents.map((a) => writeRecords(a, 8, 'postgres')));
    const statuses = await drained(agents, lastSqliteCheckpoint.size);
    for (const status of statuses) assert.equal(status.witnessAlarm, null);

    // The test's agent too, with its enrolled key; and a second equivocation numbered after the copied one.
    equivocator.collectorUrl = collector.url;
    await equivocator.sendOk(equivocator.batch(equivocator.records(2)));
    const [stored] = await sqlOn<{ canonical: string }>(copied.url, `SELECT canonical FROM records WHERE agent = 'AS-DBR-003' AND seq = 2`);
    const forged = signRecord({ ...(JSON.parse(stored!.canonical) as SignedRecord), id: newId(), body: { n: 'changed again' } }, equivocator.key.privateKey);
    assert.equal((await equivocator.send(equivocator.batch([forged]))).status, 409);
    assert.deepEqual((await sqlOn<{ id: string }>(copied.url, `SELECT id FROM quarantine ORDER BY id`)).map((row) => Number(row.id)), [1, 2]);

    // No enrollment happened: every agent is still at epoch 1.
    const listed = JSON.parse((await cli(['agents', 'list', '--json'], { SAKSHYA_COLLECTOR_DATABASE: copied.url })).stdout) as { agent: string; epoch: number }[];
    assert.deepEqual(listed.filter((a) => a.agent.startsWith('AS-')).map((a) => [a.agent, a.epoch]).sort(), [['AS-CCH-002', 1], ['AS-DBR-003', 1], ['AS-KMR-001', 1]]);

    // The tree of the SQLite days is a prefix of this one.
    const latest = JSON.parse((await cli(['checkpoint', '--json'], { SAKSHYA_COLLECTOR_DATABASE: copied.url })).stdout) as { size: number; root: string };
    assert.ok(latest.size > lastSqliteCheckpoint.size);
    const proof = (await (await fetch(`${collector.url}/api/v1/proofs/consistency?from=${lastSqliteCheckpoint.size}&to=${latest.size}`)).json()) as { path: string[] };
    verifyConsistency(lastSqliteCheckpoint.size, latest.size, proof.path.map(fromBase64Url), fromBase64Url(lastSqliteCheckpoint.root), fromBase64Url(latest.root));

    // The auditor's token and finished job came along (the bundle stays in the data directory).
    const bundle = await fetch(`${collector.url}/api/v1/reports/${jobId}/bundle.tar.gz`, { headers: { authorization: `Bearer ${auditorToken}` } });
    assert.equal(bundle.status, 200);
    await bundle.arrayBuffer();

    assert.equal(await collector.stop(), 0);
    collector = undefined;
    const verified = await cli(['ledger', 'verify'], { SAKSHYA_COLLECTOR_DATABASE: copied.url });
    assert.equal(verified.code, 0, verified.stdout);
  });

  it('refuses a target that holds ledger data, and leaves it as it was', async () => {
    const before = await sqlOn<{ n: string }>(copied.url, `SELECT count(*) AS n FROM records`);
    const { code, stderr, stdout } = await cli(['db', 'copy', '--from', sqliteUrl, '--to', copied.url]);
    assert.equal(code, 1);
    assert.equal(stdout, '');
    assert.match(stderr, /the target database postgres:\/\/.* is not empty \(rows in agents, .*records.*\): db copy only fills an empty database and never merges into an existing ledger/);
    assert.deepEqual(await sqlOn(copied.url, `SELECT count(*) AS n FROM records`), before);
  });

  it('copies back from PostgreSQL into a new SQLite file (the way back), proved the same way', async () => {
    const back = `sqlite:${join(makeTempDir('sakshya-back-'), 'collector.db')}`;
    const { code, out } = await copyJson('copy', copied.url, back);
    assert.equal(code, 0, JSON.stringify(out?.proof.checks));
    assert.equal(out!.proof.counts.agents, 3);
    assert.equal(out!.copy!.tables.quarantine, 2);
    const verified = await cli(['ledger', 'verify'], { SAKSHYA_COLLECTOR_DATABASE: back });
    assert.equal(verified.code, 0, verified.stdout);
  });

  it('copies into a database `migrate` left empty, and verify-copy names every tampered row', async () => {
    const target = await database();
    assert.equal((await cli(['migrate', '--database', target.url])).code, 0);
    const { code, out } = await copyJson('copy', sqliteUrl, target.url);
    assert.equal(code, 0);
    assert.deepEqual(out?.copy?.migrated.applied, []);

    // Three changes: a receipt (which ledger verify also catches), and two that only the comparison sees.
    const [receipt] = await sqlOn<{ batch_id: string }>(target.url, `UPDATE receipts SET receipt_json = replace(receipt_json, '"accepted":', '"accepted": ') WHERE batch_id = (SELECT min(batch_id) FROM receipts) RETURNING batch_id`);
    await sqlOn(target.url, `UPDATE agent_epochs SET backlog_pending = backlog_pending + 1 WHERE agent = 'AS-KMR-001'`);
    const [jti] = await sqlOn<{ jti: string }>(target.url, `DELETE FROM jti_replay WHERE jti = (SELECT min(jti) FROM jti_replay) RETURNING jti`);

    const checked = await copyJson('verify-copy', sqliteUrl, target.url);
    assert.equal(checked.code, 1);
    const proof = checked.out!.proof;
    assert.equal(proof.proved, false);
    assert.deepEqual(proof.checks.filter((c) => !c.ok).map((c) => c.name), ['tables', 'receipts', 'ledger_verify']);
    const differing = proof.tables.filter((t) => !t.identical).map((t) => [t.table, t.differences]);
    assert.deepEqual(differing, [
      ['agent_epochs', [{ key: { agent: 'AS-KMR-001', epoch: 1 }, problem: 'different', columns: ['backlog_pending'] }]],
      ['receipts', [{ key: { batch_id: receipt!.batch_id }, problem: 'different', columns: ['receipt_json'] }]],
      ['jti_replay', [{ key: { jti: jti!.jti }, problem: 'missing' }]],
    ]);
    assert.ok(proof.audit!.findings.some((f) => f.table === 'receipts' && f.row.batch_id === receipt!.batch_id));

    const text = await cli(['db', 'verify-copy', '--from', sqliteUrl, '--to', target.url]);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /FAILED 3 of 15 tables differ/);
    assert.match(text.stdout, new RegExp(`jti_replay jti="${jti!.jti}": missing from the copy`));
    assert.match(text.stdout, /COPY NOT PROVED: 3 checks failed; do not switch the collector to postgres:\/\//);
  });

  it('refuses a source at an older schema version, saying to migrate it first, and touches no target', async () => {
    const old = join(makeTempDir('sakshya-old-'), 'collector.db');
    const db = new Database(old);
    for (const migration of SQLITE_MIGRATIONS.slice(0, 9)) await migration.up(sqliteMigrationRunner(db));
    db.pragma('user_version = 9');
    db.close();
    const target = await database();
    const { code, stderr } = await cli(['db', 'copy', '--from', `sqlite:${old}`, '--to', target.url]);
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`the source database ${old} has schema version 9, older than this collector's \\(${SQLITE_MIGRATIONS.length}\\); run \`sakshya-collector migrate --database sqlite:${old}\` on it first`));
    assert.deepEqual(await sqlOn(target.url, `SELECT to_regclass('schema_version') AS t`), [{ t: null }]);
  });

  it('sees a source that changed after the copy: the copy is no longer of it', async () => {
    const target = await database();
    assert.equal((await copyJson('copy', sqliteUrl, target.url)).code, 0);
    // A collector still running on the old database would do this: here, a CLI command that writes.
    assert.equal((await cli(['tokens', 'issue', '--role', 'admin', '--name', 'late'])).code, 0);
    const { code, out } = await copyJson('verify-copy', sqliteUrl, target.url);
    assert.equal(code, 1);
    const records = out!.proof.tables.find((t) => t.table === 'records')!;
    assert.equal(records.target + 1, records.source);
    assert.deepEqual(records.differences.map((d) => d.problem), ['missing']);
  });
});
