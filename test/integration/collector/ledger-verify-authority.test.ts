/**
 * `ledger verify` against tampering with WHO MAY WRITE (outside review, MEDIUM): the mutable
 * tables agent_epochs, enrollment_tokens and api_tokens are replayed against the COLLECTOR
 * chain's signed records of every enrollment, revocation and token act. Each test copies one
 * real collector database, changes one of those tables as an intruder with the SQLite file would,
 * and runs the real CLI on the copy.
 */
import { sqliteOnly } from '../../helpers/postgres.ts';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { AuditFinding } from '../../../collector/services/ledger-audit.ts';
import { makeTempDir, runCollectorCli, startCollectorInProcess } from '../../helpers/collector-process.ts';
import { ledgerVerify, tamperedCopy as tamperedCollectorCopy } from '../../helpers/tampered-collector.ts';
import { runVerifyCli } from '../../helpers/verifier-process.ts';
import { request, TestAgent } from './test-agent.ts';

type Db = Database.Database;

describe('sakshya-collector ledger verify replays who may write', function () {
  before(function () {
    sqliteOnly(this, 'it tampers with the SQLite file itself (the replay of who may write reads the same rows on PostgreSQL)');
  });
  this.timeout(120_000);
  let pristine: string;
  let revoked: TestAgent;
  let keyFile: string;
  let revokedAuditorId: string;

  before(async () => {
    const collector = await startCollectorInProcess();
    try {
      const enroll = async (id: string) => {
        const agent = new TestAgent(id, collector.url, collector.origin);
        const { token } = await collector.container.enrollment.issueToken(id);
        assert.equal((await agent.enroll(token)).status, 200);
        await agent.sendOk(agent.batch(agent.records(3)));
        return agent;
      };
      await enroll('AS-AUT-001');
      revoked = await enroll('AS-AUT-002');
      await collector.container.enrollment.revokeAgent(revoked.id, 'cli:test');
      const replaced = await enroll('AS-AUT-003');
      const { token } = await collector.container.enrollment.issueToken(replaced.id, 600, 'cli:test', { replace: true });
      replaced.newKey();
      assert.equal((await replaced.enroll(token)).status, 200);
      await collector.container.enrollment.issueToken('AS-AUT-004', 600, 'cli:test');
      await collector.container.enrollment.revokeAgent('AS-AUT-004', 'cli:test'); // voids the unused token
      await collector.container.apiTokens.issue('admin', 'Asha Admin', 3600, 'cli:test');
      revokedAuditorId = (await collector.container.apiTokens.issue('auditor', 'Ravi Auditor', 3600, 'cli:test')).id;
      await collector.container.apiTokens.revoke({ id: revokedAuditorId }, 'cli:test');
      const keys = await request(`${collector.url}/api/v1/keys`, { method: 'GET' });
      keyFile = join(makeTempDir('sakshya-keys-'), 'collector-keys.json');
      writeFileSync(keyFile, keys.text);
    } finally {
      await collector.stop();
    }
    pristine = collector.dir;
  });

  const tamperedCopy = (tamper: (db: Db) => void): string => tamperedCollectorCopy(pristine, tamper);
  const verify = ledgerVerify;

  async function findingsOf(tamper: (db: Db) => void): Promise<AuditFinding[]> {
    const { code, report } = await verify(tamperedCopy(tamper));
    assert.notEqual(code, 0, 'ledger verify must fail');
    assert.equal(report.intact, false);
    return report.findings;
  }

  function checks(findings: AuditFinding[]): string[] {
    return findings.map((f) => `${f.table}/${f.check}`).sort();
  }

  it('says intact for the untouched database with enrollments, a revocation, a replacement, a voided token and human tokens', async () => {
    const { code, report } = await verify(pristine);
    assert.equal(code, 0, JSON.stringify(report.findings, null, 1));
    assert.deepEqual(report.findings, []);
  });

  it('names a revoked agent whose revoked_at was cleared (it could write again)', async () => {
    const findings = await findingsOf((db) => db.prepare(`UPDATE agent_epochs SET revoked_at = NULL, revoked_index = NULL WHERE agent = ?`).run(revoked.id));
    assert.deepEqual(checks(findings), ['agent_epochs/revocation']);
    assert.equal(findings[0]!.row.agent, revoked.id);
    assert.match(findings[0]!.message, /could write again/);
  });

  it('names every record a revoked agent wrote after its revocation was cleared, and sakshya-verify fails the bundle that holds them', async () => {
    const dir = tamperedCopy((db) => db.prepare(`UPDATE agent_epochs SET revoked_at = NULL, revoked_index = NULL WHERE agent = ?`).run(revoked.id));
    const collector = await startCollectorInProcess({ dir });
    try {
      assert.equal(collector.origin, revoked.origin);
      revoked.collectorUrl = collector.url;
      await revoked.sendOk(revoked.batch(revoked.records(2)));
    } finally {
      await collector.stop();
    }
    const { code, report } = await verify(dir);
    assert.notEqual(code, 0);
    const after = report.findings.filter((f) => f.check === 'after_revocation');
    assert.deepEqual(after.map((f) => [f.table, f.row.agent, f.row.seq]), [
      ['records', revoked.id, 4],
      ['records', revoked.id, 5],
    ]);

    const out = join(makeTempDir('sakshya-export-'), 'bundle');
    const day = new Date().toISOString().slice(0, 10);
    const next = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const exported = await runCollectorCli(['report', 'export', '--dir', dir, '--out', out, '--from', day, '--to', next, '--agent', revoked.id], { SAKSHYA_LOG_LEVEL: 'warn' });
    assert.equal(exported.code, 0, exported.stderr);
    const run = await runVerifyCli([out, '--collector-key', keyFile, '--json']);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    const result = JSON.parse(run.stdout) as { problems: { check: string; seq?: number }[] };
    assert.deepEqual(
      result.problems.filter((p) => p.check === 'chain.after_revocation').map((p) => p.seq),
      [4, 5],
    );
  });

  it('names an inserted admin token row', async () => {
    const findings = await findingsOf((db) =>
      db.prepare(`INSERT INTO api_tokens VALUES ('tok_intruder', 'Intruder', 'admin', ?, '2026-01-01T00:00:00.000Z', NULL, NULL, 'cli:root')`).run('f'.repeat(64)),
    );
    assert.deepEqual(checks(findings), ['api_tokens/unexplained']);
    assert.equal(findings[0]!.row.id, 'tok_intruder');
  });

  it('names a revoked human token that was revoked no more', async () => {
    const findings = await findingsOf((db) => db.prepare(`UPDATE api_tokens SET revoked_at = NULL WHERE id = ?`).run(revokedAuditorId));
    assert.deepEqual(checks(findings), ['api_tokens/revoked_at']);
  });

  it('names an inserted agent epoch, for a new id and as a second key of an active agent', async () => {
    const findings = await findingsOf((db) => {
      db.exec(`INSERT INTO agents VALUES ('AS-EVIL-01', 'now')`);
      const insert = db.prepare(`INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at) SELECT ?, ?, public_jwk, kid, enrolled_at FROM agent_epochs WHERE agent = 'AS-AUT-001'`);
      insert.run('AS-EVIL-01', 1);
      insert.run('AS-AUT-001', 2);
    });
    // The rows also lack a key history (agent_keys), which the key check names on its own.
    const epochs = findings.filter((f) => f.table === 'agent_epochs');
    assert.deepEqual(epochs.map((f) => [f.check, f.row.agent, f.row.epoch]).sort(), [['unexplained', 'AS-AUT-001', 2], ['unexplained', 'AS-EVIL-01', 1]]);
  });

  it('names an enrollment token re-armed after use, one un-voided after a revocation, and an inserted one', async () => {
    const findings = await findingsOf((db) => {
      db.prepare(`UPDATE enrollment_tokens SET used_at = NULL WHERE agent = 'AS-AUT-001'`).run();
      db.prepare(`UPDATE enrollment_tokens SET voided_at = NULL WHERE agent = 'AS-AUT-004'`).run();
      db.prepare(`INSERT INTO enrollment_tokens VALUES (?, 'AS-AUT-001', 't', '2099-01-01T00:00:00.000Z', NULL, 1, NULL)`).run('e'.repeat(64));
    });
    assert.deepEqual(checks(findings), ['enrollment_tokens/unexplained', 'enrollment_tokens/used_at', 'enrollment_tokens/voided_at']);
  });
});
