import assert from 'node:assert/strict';
import { sqliteOnly } from '../../helpers/postgres.ts';
import { chmodSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { rootHash } from '../../../shared/merkle.ts';
import { verifyReceipt } from '../../../shared/receipt.ts';
import { makeTempDir, runCollectorCli, startCollectorProcess, type CollectorProcess } from '../../helpers/collector-process.ts';
import { TestAgent } from './test-agent.ts';

describe('sakshya-collector serve (a real process)', function () {
  this.timeout(60_000);
  const running: CollectorProcess[] = [];

  async function start(dir?: string): Promise<CollectorProcess> {
    const collector = await startCollectorProcess(dir ? { dir } : {});
    running.push(collector);
    return collector;
  }

  afterEach(async () => {
    await Promise.all(running.splice(0).map((collector) => collector.kill9()));
  });

  async function enrolled(collector: CollectorProcess, id: string): Promise<TestAgent> {
    const cli = await runCollectorCli(['agents', 'enroll', '--agent', id], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.equal(cli.code, 0, cli.stderr);
    const agent = new TestAgent(id, collector.url, collector.origin);
    const answer = await agent.enroll(cli.stdout.trim());
    assert.equal(answer.status, 200, answer.text);
    return agent;
  }

  async function ledgerStats(dir: string) {
    const result = await runCollectorCli(['ledger', 'stats', '--json'], { SAKSHYA_COLLECTOR_DIR: dir });
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as {
      size: number;
      byKind: { audit: number; telemetry: number; agent: number };
      checkpoint: { size: number; root: string };
      agents: number;
    };
  }

  it('logs one listening line with port and url, answers /healthz and /readyz, and exits 0 on SIGTERM', async () => {
    const collector = await start();
    assert.match(collector.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(collector.url, `http://127.0.0.1:${collector.port}`);
    assert.equal(collector.logs.filter((line) => line.includes('"msg":"listening"')).length, 1);
    assert.equal(collector.logs.filter((line) => line.includes('"msg":"configuration"')).length, 1);
    assert.equal((await fetch(`${collector.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${collector.url}/readyz`)).status, 200);
    assert.equal(await collector.stop('SIGTERM'), 0);
  });

  it('takes a batch end to end, and ledger stats and agents list report it', async () => {
    const collector = await start();
    const agent = await enrolled(collector, 'AS-PRC-001');
    const records = [agent.next({ office: 'KMR' }), agent.next({}, 'telemetry', 'system.load'), agent.next()];
    const signed = await agent.sendOk(agent.batch(records), { gzip: true });
    await verifyReceipt(signed, agent.receiptKey);

    const stats = await ledgerStats(collector.dir);
    // COLLECTOR chain: enrollment_token.issued + agent.enrolled.
    assert.deepEqual(stats.byKind, { audit: 2, telemetry: 1, agent: 2 });
    assert.equal(stats.size, 5);
    assert.deepEqual(stats.checkpoint, signed.receipt.checkpoint);
    assert.equal(stats.agents, 1);

    const list = await runCollectorCli(['agents', 'list', '--json'], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.equal(list.code, 0, list.stderr);
    const row = (JSON.parse(list.stdout) as { agent: string }[]).find((r) => r.agent === agent.id) as unknown as {
      epoch: number; kid: string; highestSeq: number; ledgerEntries: number; lastSeenAt: string; revokedAt: null;
      backlog: { pending: number; oldestAt: string; reportedAt: string };
    };
    assert.equal(row.epoch, 1);
    assert.equal(row.kid, agent.key.kid);
    assert.equal(row.highestSeq, 3);
    assert.equal(row.ledgerEntries, 3);
    assert.equal(row.revokedAt, null);
    assert.equal(row.backlog.pending, 3);
    assert.equal(row.backlog.oldestAt, records[0]!.at);
    assert.equal(row.backlog.reportedAt, signed.receipt.receivedAt);
    assert.equal(row.lastSeenAt, signed.receipt.receivedAt);
  });

  it('finishes a batch whose body is still arriving when SIGTERM comes, then exits 0', async () => {
    const collector = await start();
    const agent = await enrolled(collector, 'AS-PRC-002');
    const batch = agent.batch(agent.records(500));
    const payload = Buffer.from(JSON.stringify(batch));
    const token = await agent.token();
    const request = httpRequest(`${collector.url}/api/v1/batches`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'content-length': String(payload.length),
        'idempotency-key': batch.batchId,
      },
    });
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      request.on('response', (response) => {
        let text = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
      });
      request.on('error', reject);
    });
    await new Promise<void>((resolve) => request.on('socket', (socket) => socket.once('connect', () => resolve())));
    request.write(payload.subarray(0, payload.length >> 1));
    // Connections are accepted in order: once a later one is answered, ours is accepted too.
    assert.equal((await fetch(`${collector.url}/healthz`)).status, 200);
    const exit = collector.stop('SIGTERM');
    await sleep(200);
    request.end(payload.subarray(payload.length >> 1));
    const { status, text } = await answer;
    assert.equal(status, 200, text);
    assert.equal(await exit, 0);
    assert.ok(collector.logs.some((line) => line.includes('shutting down')));
    assert.equal((await ledgerStats(collector.dir)).byKind.audit, 500);
  });

  it('keeps the ledger, keys and chain heads across kill -9 and a restart', async () => {
    const dir = makeTempDir();
    const first = await start(dir);
    const agent = await enrolled(first, 'AS-PRC-003');
    const records = agent.records(4);
    const before = await agent.sendOk(agent.batch(records.slice(0, 2)));
    await first.kill9();

    const second = await start(dir);
    const resumed = new TestAgent(agent.id, second.url, second.origin);
    Object.assign(resumed, { key: agent.key, enrollment: agent.enrollment, epoch: agent.epoch });
    const after = await resumed.sendOk(resumed.batch(records));
    await verifyReceipt(after, agent.receiptKey);
    assert.equal(after.receipt.duplicates, 2);
    assert.equal(after.receipt.accepted, 2);
    assert.equal(after.receipt.ledger!.first, before.receipt.ledger!.last + 1);
    assert.equal((await ledgerStats(dir)).size, 2 + 4);
  });

  it('refuses to start on an invalid configuration, listing every problem in one message without a stack trace', async () => {
    const result = await runCollectorCli(['serve'], { SAKSHYA_COLLECTOR_PORT: 'http', SAKSHYA_VERIFY_WORKERS: '0' });
    assert.notEqual(result.code, 0);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /SAKSHYA_COLLECTOR_DIR/);
    assert.match(result.stderr, /SAKSHYA_COLLECTOR_PORT/);
    assert.match(result.stderr, /SAKSHYA_VERIFY_WORKERS/);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });

  it('answers CLI mistakes with one line on stderr and a non-zero exit', async () => {
    const dir = makeTempDir();
    const badAgent = await runCollectorCli(['agents', 'enroll', '--agent', 'lower-case'], { SAKSHYA_COLLECTOR_DIR: dir });
    assert.notEqual(badAgent.code, 0);
    assert.equal(badAgent.stdout, '');
    assert.match(badAgent.stderr, /^sakshya-collector: invalid agent id "lower-case"/m);
    assert.doesNotMatch(badAgent.stderr, /\n\s+at /);
    const badTtl = await runCollectorCli(['agents', 'enroll', '--agent', 'AS-PRC-004', '--ttl', 'soon'], { SAKSHYA_COLLECTOR_DIR: dir });
    assert.notEqual(badTtl.code, 0);
    assert.match(badTtl.stderr, /invalid duration "soon"/);
    const noDatabase = await runCollectorCli(['ledger', 'stats', '--json'], { SAKSHYA_COLLECTOR_DIR: makeTempDir() });
    assert.notEqual(noDatabase.code, 0);
    assert.match(noDatabase.stderr, /no collector database/);
    assert.equal(noDatabase.stderr.trim().split('\n').length, 1);
  });

  it('creates its data directory and three private keys readable by the owner only, and refuses to start with a key others can read', async () => {
    const dir = join(makeTempDir(), 'collector');
    const collector = await start(dir);
    assert.equal(await collector.stop(), 0);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const file of ['log-key.jwk', 'receipt-key.jwk', 'collector-chain-key.jwk']) {
      assert.equal(statSync(join(dir, 'keys', file)).mode & 0o777, 0o600, file);
    }
    chmodSync(join(dir, 'keys', 'receipt-key.jwk'), 0o644);
    const refused = await runCollectorCli(['serve'], { SAKSHYA_COLLECTOR_DIR: dir, SAKSHYA_COLLECTOR_PORT: '0', SAKSHYA_LOG_LEVEL: 'warn' });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /receipt-key\.jwk has mode 0644/);
    assert.doesNotMatch(refused.stderr, /\n\s+at /);
  });

  it('leaves a whole batch or none of it after kill -9 in the middle of ingest, and the retry stores each record once', async function () {
    sqliteOnly(this, 'it reads the SQLite file after kill -9; the replicas end-to-end test kills a replica on PostgreSQL');
    const dir = makeTempDir();
    const first = await start(dir);
    const agent = await enrolled(first, 'AS-PRC-005');
    const batch = agent.batch(agent.records(2000));
    const pending = agent.send(batch).catch((err: unknown) => err);
    await sleep(200);
    await first.kill9();
    await pending;

    const db = new Database(join(dir, 'collector.db'), { readonly: true });
    try {
      const leaves = db.prepare('SELECT leaf_hash FROM records ORDER BY ledger_index').pluck().all() as Buffer[];
      const latest = db.prepare('SELECT size, root FROM checkpoints ORDER BY size DESC LIMIT 1').get() as { size: number; root: Buffer };
      assert.equal(latest.size, leaves.length);
      assert.deepEqual(latest.root, rootHash(leaves));
      const stored = db.prepare('SELECT count(*) FROM records WHERE agent = ?').pluck().get(agent.id) as number;
      assert.ok(stored === 0 || stored === 2000, `${stored} records: a batch is all or nothing`);
    } finally {
      db.close();
    }

    const second = await start(dir);
    const resumed = new TestAgent(agent.id, second.url, second.origin);
    Object.assign(resumed, { key: agent.key, enrollment: agent.enrollment, epoch: agent.epoch });
    const signed = await resumed.sendOk(batch);
    assert.equal(signed.receipt.highestSeq, 2000);
    // Either the stored receipt of the committed batch or a fresh one: all 2000 accepted once.
    assert.equal(signed.receipt.accepted, 2000);
    const stats = await ledgerStats(dir);
    assert.equal(stats.byKind.audit, 2000);
  });
});
