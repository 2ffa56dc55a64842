/**
 * Agent takeover through re-enrollment (outside review, HIGH): an admin, or a token issued before
 * a revocation, must not be able to enroll a new key for an active agent id, write as that agent
 * and read its records. A replacement is explicit (`--replace`), revokes the old epoch in the same
 * transaction, and shows in `agents list`, keys.json and the report manifest.
 */
import { ledgerRows } from '../../helpers/ledger-sql.ts';
import { sqliteOnly } from '../../helpers/postgres.ts';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { API_PREFIX } from '../../../shared/protocol.ts';
import type { KeysFile, Manifest } from '../../../shared/report/bundle-format.ts';
import { makeTempDir, runCollectorCli, startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { assertProblem } from './http-assertions.ts';
import { collectorChain, humanToken } from './security-support.ts';
import { request, TestAgent, type HttpAnswer } from './test-agent.ts';

/** Row count and a hash of every row of every table: a refused act changes none of them. */
function wholeDatabase(dir: string): { [table: string]: string } {
  const db = new Database(join(dir, 'collector.db'), { readonly: true });
  try {
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all() as string[];
    return Object.fromEntries(
      tables.map((table) => {
        const hash = createHash('sha256');
        for (const row of db.prepare(`SELECT * FROM "${table}" ORDER BY 1, 2`).iterate()) {
          hash.update(JSON.stringify(row, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v)));
        }
        return [table, hash.digest('hex')];
      }),
    );
  } finally {
    db.close();
  }
}

describe('collector: an enrolled agent cannot be taken over by re-enrollment', function () {
  this.timeout(120_000);
  let collector: InProcessCollector;
  let counter = 0;

  before(async () => {
    collector = await startCollectorInProcess();
  });
  after(async () => {
    await collector?.stop();
  });

  function call(method: string, path: string, authorization: string, body?: unknown): Promise<HttpAnswer> {
    const headers: { [name: string]: string } = { authorization };
    if (body !== undefined) headers['content-type'] = 'application/json';
    return request(`${collector.url}${API_PREFIX}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  }

  async function activeAgent(): Promise<TestAgent> {
    const agent = new TestAgent(`AS-TKO-${String(++counter).padStart(3, '0')}`, collector.url, collector.origin);
    const { token } = await collector.container.enrollment.issueToken(agent.id);
    assert.equal((await agent.enroll(token)).status, 200);
    await agent.sendOk(agent.batch(agent.records(3)));
    return agent;
  }

  it('an admin cannot issue an ordinary enrollment token for an active agent id (409 enroll.agent_active), over HTTP or the CLI, and nothing changes', async function () {
    sqliteOnly(this, 'it compares every row of the SQLite file');
    const victim = await activeAgent();
    const admin = await humanToken(collector, 'admin', 'Rogue Admin');
    const before = wholeDatabase(collector.dir);
    const answer = await call('POST', `/agents/${victim.id}/enrollment-tokens`, `Bearer ${admin.token}`, {});
    assertProblem(answer, 409, 'enroll.agent_active');
    assert.match((answer.body as { detail: string }).detail, /--replace/);
    const cli = await runCollectorCli(['agents', 'enroll', '--agent', victim.id], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.notEqual(cli.code, 0);
    assert.equal(cli.stdout, '', 'no token printed');
    assert.match(cli.stderr, /active.*--replace/s);
    assert.deepEqual(wholeDatabase(collector.dir), before);
    await victim.sendOk(victim.batch(victim.records(1)));
  });

  it('a token issued before the agent enrolled cannot enroll a second key over the active epoch (409), and the real agent keeps writing', async function () {
    sqliteOnly(this, 'it compares every row of the SQLite file');
    const id = `AS-TKO-${String(++counter).padStart(3, '0')}`;
    const first = await collector.container.enrollment.issueToken(id);
    const spare = await collector.container.enrollment.issueToken(id);
    const victim = new TestAgent(id, collector.url, collector.origin);
    assert.equal((await victim.enroll(first.token)).status, 200);
    const before = wholeDatabase(collector.dir);
    const attacker = new TestAgent(id, collector.url, collector.origin);
    assertProblem(await attacker.enroll(spare.token), 409, 'enroll.agent_active');
    assert.deepEqual(wholeDatabase(collector.dir), before, 'the refused enrollment left the token unused and the epoch as it was');
    await victim.sendOk(victim.batch(victim.records(2)));
  });

  it('a token issued before agents revoke no longer enrolls after it', async () => {
    const victim = await activeAgent();
    const admin = await humanToken(collector, 'admin');
    const pending = await call('POST', `/agents/${victim.id}/enrollment-tokens`, `Bearer ${admin.token}`, { replace: true });
    assert.equal(pending.status, 201, pending.text);
    const revoked = await runCollectorCli(['agents', 'revoke', '--agent', victim.id, '--json'], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.equal(revoked.code, 0, revoked.stderr);
    const result = JSON.parse(revoked.stdout) as { epoch: number; voidedTokens: number; revokedIndex: number };
    assert.equal(result.voidedTokens, 1);
    assert.equal(typeof result.revokedIndex, 'number');
    const attacker = new TestAgent(victim.id, collector.url, collector.origin);
    assertProblem(await attacker.enroll((pending.body as { token: string }).token), 401, 'enroll.token_invalid');
    const voided = collectorChain(collector.dir).filter((r) => r.type === 'enrollment_token.voided' && r.body.agent === victim.id);
    assert.equal(voided.length, 1);
    assert.equal((voided[0]!.body.tokens as string[]).length, 1);
    // A fresh token after the revocation enrolls a new epoch, as before.
    const { token } = await collector.container.enrollment.issueToken(victim.id);
    assert.equal((await attacker.enroll(token)).status, 200);
    assert.equal(attacker.epoch, 2);
  });

  it('a replacement token revokes the old epoch in the same transaction, both acts are COLLECTOR records, and the old epoch shows as superseded at that ledger index', async () => {
    const lost = await activeAgent();
    const cli = await runCollectorCli(['agents', 'enroll', '--agent', lost.id, '--replace'], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.equal(cli.code, 0, cli.stderr);
    const replacement = new TestAgent(lost.id, collector.url, collector.origin);
    assert.equal((await replacement.enroll(cli.stdout.trim())).status, 200);
    assert.equal(replacement.epoch, 2);

    const acts = collectorChain(collector.dir).filter((r) => r.body.agent === lost.id);
    const revoked = acts.find((r) => r.type === 'agent.revoked')!;
    const enrolled = acts.filter((r) => r.type === 'agent.enrolled');
    assert.equal(revoked.body.reason, 'replaced');
    assert.equal(revoked.body.supersededBy, 2);
    assert.equal(enrolled.at(-1)!.body.replaces, 1);
    assert.equal(enrolled.at(-1)!.seq, revoked.seq + 1, 'revocation and new enrollment are consecutive acts of one transaction');

    // The old key is refused; the new one writes.
    assertProblem(await lost.send(lost.batch(lost.records(1))), 401, 'auth.invalid_token');
    await replacement.sendOk(replacement.batch(replacement.records(1)));

    const list = await runCollectorCli(['agents', 'list', '--json'], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    const epochs = (JSON.parse(list.stdout) as { agent: string; epoch: number; status: string; revokedIndex: number | null; supersededBy: number | null }[]).filter(
      (row) => row.agent === lost.id,
    );
    const revokedIndex = ledgerRows<{ ledger_index: number; canonical: string }>(collector.dir, `SELECT ledger_index, canonical FROM records WHERE agent = 'COLLECTOR' AND type = 'agent.revoked'`)
      .find((row) => (JSON.parse(row.canonical) as { body: { agent: string } }).body.agent === lost.id)!.ledger_index;
    assert.deepEqual(
      epochs.map((e) => [e.epoch, e.status, e.revokedIndex, e.supersededBy]),
      [
        [1, 'superseded', revokedIndex, 2],
        [2, 'active', null, null],
      ],
    );

    const out = join(makeTempDir('sakshya-export-'), 'bundle');
    const day = new Date().toISOString().slice(0, 10);
    const next = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const exported = await runCollectorCli(['report', 'export', '--dir', collector.dir, '--out', out, '--from', day, '--to', next, '--agent', lost.id], { SAKSHYA_LOG_LEVEL: 'warn' });
    assert.equal(exported.code, 0, exported.stderr);
    const keys = JSON.parse(readFileSync(join(out, 'keys.json'), 'utf8')) as KeysFile;
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Manifest;
    for (const entries of [keys.agents, manifest.chains]) {
      assert.deepEqual(
        entries.map((e) => [e.epoch, e.revokedIndex, e.supersededBy]),
        [
          [1, revokedIndex, 2],
          [2, null, null],
        ],
      );
    }
  });

  it('a replacement key cannot read the records the replaced key wrote; it reads its own epoch only', async () => {
    const lost = await activeAgent();
    const old = lost.records(1)[0]!;
    await lost.sendOk(lost.batch([old]));
    const { token } = await collector.container.enrollment.issueToken(lost.id, 600, 'cli:test', { replace: true });
    const replacement = new TestAgent(lost.id, collector.url, collector.origin);
    assert.equal((await replacement.enroll(token)).status, 200);
    const mine = replacement.records(1)[0]!;
    await replacement.sendOk(replacement.batch([mine]));
    const read = async (id: string) => {
      const jwt = await replacement.token();
      return request(`${collector.url}${API_PREFIX}/records/${id}`, { method: 'GET', headers: { authorization: `Bearer ${jwt}` } });
    };
    assertProblem(await read(old.id), 403, 'auth.forbidden');
    const own = await read(mine.id);
    assert.equal(own.status, 200, own.text);
    assert.equal((own.body as { record: { id: string } }).record.id, mine.id);
  });
});
