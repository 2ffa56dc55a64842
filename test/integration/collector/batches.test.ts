import assert from 'node:assert/strict';
import { ledgerRows } from '../../helpers/ledger-sql.ts';
import { sqliteOnly } from '../../helpers/postgres.ts';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { newId } from '../../../shared/ids.ts';
import { PROBLEM_TYPE_PREFIX, type ProblemBody } from '../../../shared/problem.ts';
import { MAX_BATCH_DECODED_BYTES, signedReceiptSchema, type SignedReceipt } from '../../../shared/protocol.ts';
import { verifyCheckpoint } from '../../../shared/checkpoint.ts';
import { rootHash } from '../../../shared/merkle.ts';
import { parseVerifierKey } from '../../../shared/signed-note.ts';
import { verifyReceipt } from '../../../shared/receipt.ts';
import { GENESIS_PREV, leafHashOfCanonical, recordHash, recordHashOfCanonical, signRecord, type SignedRecord } from '../../../shared/record.ts';
import { startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { request, TestAgent, type HttpAnswer } from './test-agent.ts';

function assertProblem(answer: HttpAnswer, status: number, code: string): ProblemBody {
  assert.equal(answer.status, status, answer.text);
  assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const body = answer.body as ProblemBody;
  assert.equal(body.code, code);
  assert.equal(body.type, PROBLEM_TYPE_PREFIX + code);
  assert.equal(body.status, status);
  assert.equal(typeof body.detail, 'string');
  assert.doesNotMatch(answer.text, /\n\s+at /, 'no stack trace leaves the process');
  return body;
}

describe('POST /api/v1/batches', function () {
  this.timeout(30_000);
  let collector: InProcessCollector;
  let counter = 0;

  before(async () => {
    collector = await startCollectorInProcess();
  });
  after(async () => {
    await collector?.stop();
  });

  async function enrolledAgent(): Promise<TestAgent> {
    const agent = new TestAgent(`AS-TST-${String(++counter).padStart(3, '0')}`, collector.url, collector.origin);
    const { token } = await collector.container.enrollment.issueToken(agent.id);
    const answer = await agent.enroll(token);
    assert.equal(answer.status, 200, answer.text);
    return agent;
  }

  async function stats() {
    return collector.container.ledger.stats();
  }

  /** Runs `fn` and asserts the ledger (size, checkpoint, per-kind counts) did not change. */
  async function expectLedgerUnchanged(fn: () => Promise<void>): Promise<void> {
    const before = await stats();
    await fn();
    const after = await stats();
    assert.equal(after.size, before.size, 'ledger size changed');
    assert.deepEqual(after.byKind, before.byKind);
    assert.deepEqual(after.checkpoint, before.checkpoint);
  }

  it('accepts a signed batch, answers a receipt that verifies with the enrolled receipt key, and adds one ledger entry per record', async () => {
    const agent = await enrolledAgent();
    const before = await stats();
    const batch = agent.batch(agent.records(5));
    const signed = await agent.sendOk(batch);
    assert.equal(signedReceiptSchema.safeParse(signed).success, true);
    await verifyReceipt(signed, agent.receiptKey);
    const { receipt } = signed;
    assert.equal(receipt.batchId, batch.batchId);
    assert.equal(receipt.agent, agent.id);
    assert.equal(receipt.collector, collector.origin);
    assert.equal(receipt.accepted, 5);
    assert.equal(receipt.duplicates, 0);
    assert.equal(receipt.highestSeq, 5);
    assert.deepEqual(receipt.ledger, { first: before.size, last: before.size + 4 });
    const after = await stats();
    assert.equal(after.size, before.size + 5);
    assert.equal(after.byKind.audit, before.byKind.audit + 5);
    assert.deepEqual(receipt.checkpoint, after.checkpoint);
    assert.equal(receipt.checkpoint.size, after.size);
  });

  it('returns the identical receipt bytes for a retry with the same Idempotency-Key and adds no ledger entry', async () => {
    const agent = await enrolledAgent();
    const batch = agent.batch(agent.records(3));
    const first = await agent.send(batch);
    assert.equal(first.status, 200, first.text);
    await expectLedgerUnchanged(async () => {
      const again = await agent.send(batch);
      assert.equal(again.status, 200, again.text);
      assert.equal(again.text, first.text);
    });
    await verifyReceipt(first.body as SignedReceipt, agent.receiptKey);
  });

  it('counts the same records in a new batch as duplicates and adds no ledger entry', async () => {
    const agent = await enrolledAgent();
    const records = agent.records(4);
    await agent.sendOk(agent.batch(records));
    await expectLedgerUnchanged(async () => {
      const signed = await agent.sendOk(agent.batch(records));
      await verifyReceipt(signed, agent.receiptKey);
      assert.equal(signed.receipt.accepted, 0);
      assert.equal(signed.receipt.duplicates, 4);
      assert.equal(signed.receipt.ledger, null);
      assert.equal(signed.receipt.highestSeq, 4);
    });
  });

  it('accepts a batch that repeats stored records and continues with new ones, storing only the new ones', async () => {
    const agent = await enrolledAgent();
    const records = agent.records(6);
    await agent.sendOk(agent.batch(records.slice(0, 4)));
    const before = await stats();
    const signed = await agent.sendOk(agent.batch(records.slice(2)));
    assert.equal(signed.receipt.accepted, 2);
    assert.equal(signed.receipt.duplicates, 2);
    assert.equal(signed.receipt.highestSeq, 6);
    assert.equal((await stats()).size, before.size + 2);
  });

  it('stores every record exactly once when the same records arrive in concurrent batches', async () => {
    const agent = await enrolledAgent();
    const records = agent.records(20);
    const before = await stats();
    const receipts = await Promise.all(Array.from({ length: 6 }, () => agent.sendOk(agent.batch(records))));
    assert.equal(receipts.reduce((sum, r) => sum + r.receipt.accepted, 0), 20);
    assert.equal(receipts.filter((r) => r.receipt.accepted === 20).length, 1);
    assert.equal((await stats()).size, before.size + 20);
  });

  it('accepts a gzip-encoded batch', async () => {
    const agent = await enrolledAgent();
    const signed = await agent.sendOk(agent.batch(agent.records(3)), { gzip: true });
    assert.equal(signed.receipt.accepted, 3);
  });

  it('refuses a batch that skips a seq with 409 batch.out_of_order and expectedSeq, storing nothing', async () => {
    const agent = await enrolledAgent();
    await agent.sendOk(agent.batch(agent.records(2)));
    agent.next(); // seq 3 never sent
    await expectLedgerUnchanged(async () => {
      const problem = assertProblem(await agent.send(agent.batch(agent.records(2))), 409, 'batch.out_of_order');
      assert.equal(problem.expectedSeq, 3);
    });
  });

  it('refuses a first batch that does not start at seq 1 with 409 batch.out_of_order and expectedSeq 1', async () => {
    const agent = await enrolledAgent();
    agent.next();
    await expectLedgerUnchanged(async () => {
      const problem = assertProblem(await agent.send(agent.batch(agent.records(1))), 409, 'batch.out_of_order');
      assert.equal(problem.expectedSeq, 1);
    });
  });

  it('refuses a new record whose prev is not the hash of the stored head with 409 batch.out_of_order', async () => {
    const agent = await enrolledAgent();
    await agent.sendOk(agent.batch(agent.records(2)));
    agent.prev = GENESIS_PREV.replace(/A$/, 'B'); // break the chain link to seq 2
    await expectLedgerUnchanged(async () => {
      const problem = assertProblem(await agent.send(agent.batch(agent.records(1))), 409, 'batch.out_of_order');
      assert.equal(problem.expectedSeq, 3);
    });
  });

  it('refuses a batch whose record reuses an id another chain stored with 400 batch.invalid naming that record, and stores none of the batch', async () => {
    const owner = await enrolledAgent();
    const [stored] = owner.records(1) as [SignedRecord];
    await owner.sendOk(owner.batch([stored]));
    const agent = await enrolledAgent();
    await agent.sendOk(agent.batch(agent.records(2)));
    // A new record first (inserted before the clash, in the same transaction), then one that reuses the id.
    const [fresh, next] = agent.records(2) as [SignedRecord, SignedRecord];
    const { sig: _sig, ...unsigned } = next;
    const reusing = signRecord({ ...unsigned, id: stored.id }, agent.key.privateKey);
    await expectLedgerUnchanged(async () => {
      const problem = assertProblem(await agent.send(agent.batch([fresh, reusing])), 400, 'batch.invalid');
      assert.equal(problem.recordId, stored.id);
      assert.equal(problem.seq, 4);
      assert.match(problem.detail as string, /the id is already used by another record/);
    });
    // The chain is where it was: the same two records, the second with its own id, are accepted.
    const { receipt } = await agent.sendOk(agent.batch([fresh, next]));
    assert.deepEqual([receipt.accepted, receipt.highestSeq], [2, 4]);
  });

  it('a batch reusing a record id of another agent learns nothing about that agent', async () => {
    const owner = await enrolledAgent();
    const records = owner.records(3) as [SignedRecord, SignedRecord, SignedRecord];
    await owner.sendOk(owner.batch(records));
    const agent = await enrolledAgent();
    const [first] = agent.records(1) as [SignedRecord];
    const { sig: _sig, ...unsigned } = first;
    const reusing = signRecord({ ...unsigned, id: records[2].id }, agent.key.privateKey);
    const logged = collector.logs.length;
    const answer = await agent.send(agent.batch([reusing]));
    // Refused as before: same status, code and extras (which name only the batch's own record).
    const problem = assertProblem(answer, 400, 'batch.invalid');
    assert.deepEqual([problem.recordId, problem.seq], [records[2].id, 1]);
    // Nothing in the answer names the owner, its epoch or where its record sits in its chain.
    assert.doesNotMatch(answer.text, new RegExp(owner.id));
    assert.doesNotMatch(problem.detail, /epoch|seq 3|AS-/);
    assert.deepEqual(Object.keys(problem).sort(), ['code', 'detail', 'recordId', 'seq', 'status', 'title', 'type']);
    // The collector's own log names it, for its operators.
    const line = collector.logs
      .slice(logged)
      .map((text) => JSON.parse(text) as { msg: string; heldBy?: unknown })
      .find((entry) => entry.msg === 'batch refused: a record id is already used by another stored record');
    assert.deepEqual(line?.heldBy, { agent: owner.id, epoch: 1, seq: 3 });
  });

  it('quarantines an equivocating record, answers 409 record.equivocation, and keeps it out of the ledger', async () => {
    const agent = await enrolledAgent();
    const [first] = agent.records(1) as [SignedRecord];
    await agent.sendOk(agent.batch([first]));
    const forged = signRecord({ ...first, id: newId(), body: { n: 'changed' } }, agent.key.privateKey);
    const before = await stats();
    await expectLedgerUnchanged(async () => {
      const problem = assertProblem(await agent.send(agent.batch([forged, agent.next()])), 409, 'record.equivocation');
      assert.equal(problem.seq, 1);
      assert.equal(problem.recordId, forged.id);
    });
    assert.equal((await stats()).quarantined, before.quarantined + 1);
    const [row] = ledgerRows<{ record_hash: string; stored_hash: string }>(collector.dir, 'SELECT record_hash, stored_hash FROM quarantine WHERE record_id = ?', [forged.id]);
    assert.equal(row!.record_hash, recordHash(forged));
    assert.equal(row!.stored_hash, recordHash(first));
    assert.equal(ledgerRows(collector.dir, 'SELECT id FROM records WHERE id = ?', [forged.id]).length, 0);
    assert.ok(
      collector.logs.some((line) => line.includes('"level":50') && line.includes('equivocation') && line.includes('"traceId"')),
      'an error log line with the trace id',
    );
  });

  it('refuses a batch with one bad signature with 400 batch.invalid naming the record id and seq, storing nothing', async () => {
    const agent = await enrolledAgent();
    const records = agent.records(40);
    const bad = { ...records[33]!, sig: records[32]!.sig };
    records[33] = bad;
    await expectLedgerUnchanged(async () => {
      const problem = assertProblem(await agent.send(agent.batch(records)), 400, 'batch.invalid');
      assert.match(problem.detail, new RegExp(bad.id));
      assert.match(problem.detail, /seq 34/);
      assert.equal(problem.seq, 34);
    });
  });

  it('refuses a record signed by a key other than the enrolled one with 400 batch.invalid', async () => {
    const agent = await enrolledAgent();
    const enrolledKey = agent.key;
    agent.newKey();
    const records = agent.records(1);
    await expectLedgerUnchanged(async () => {
      assertProblem(await agent.send(agent.batch(records), { token: await agent.token({ key: enrolledKey }) }), 400, 'batch.invalid');
    });
  });

  it('refuses a record of another agent with 403 auth.forbidden', async () => {
    const agent = await enrolledAgent();
    const other = await enrolledAgent();
    const records = [agent.next(), other.next()];
    await expectLedgerUnchanged(async () => {
      assertProblem(await agent.send(agent.batch(records)), 403, 'auth.forbidden');
      assertProblem(await agent.send(other.batch([other.next()])), 403, 'auth.forbidden');
    });
  });

  it('refuses malformed JSON with 400 request.malformed', async () => {
    const agent = await enrolledAgent();
    await expectLedgerUnchanged(async () => {
      assertProblem(await agent.send(agent.batch(agent.records(1)), { rawBody: '{"batchId": "x", "records": [' }), 400, 'request.malformed');
    });
  });

  it('refuses a body over the decoded limit with 413 batch.too_large', async () => {
    const agent = await enrolledAgent();
    const batch = agent.batch(agent.records(1));
    const oversized = JSON.stringify({ ...batch, padding: 'x'.repeat(MAX_BATCH_DECODED_BYTES) });
    await expectLedgerUnchanged(async () => {
      assertProblem(await agent.send(batch, { rawBody: oversized }), 413, 'batch.too_large');
    });
  });

  it('refuses a small gzip body that inflates past the limit with 413 batch.too_large', async () => {
    const agent = await enrolledAgent();
    const batch = agent.batch(agent.records(1));
    const bomb = gzipSync(JSON.stringify({ ...batch, padding: ' '.repeat(MAX_BATCH_DECODED_BYTES * 2) }));
    assert.ok(bomb.length < MAX_BATCH_DECODED_BYTES / 100, 'the compressed body is small');
    await expectLedgerUnchanged(async () => {
      const answer = await agent.send(batch, { rawBody: bomb, headers: { 'content-encoding': 'gzip' } });
      assertProblem(answer, 413, 'batch.too_large');
    });
  });

  it('refuses an unknown field with 400 batch.invalid and lists the errors', async () => {
    const agent = await enrolledAgent();
    const records = agent.records(2);
    const withExtra = { ...records[1]!, extra: true };
    await expectLedgerUnchanged(async () => {
      const problem = assertProblem(await agent.send(agent.batch([records[0]!, withExtra as SignedRecord])), 400, 'batch.invalid');
      assert.ok(Array.isArray(problem.errors) && problem.errors.length > 0);
      assert.match(problem.detail, /records\.1/);
    });
  });

  it('refuses a replayed token (same jti) with 401 auth.invalid_token', async () => {
    const agent = await enrolledAgent();
    const token = await agent.token();
    await agent.sendOk(agent.batch(agent.records(1)), { token });
    await expectLedgerUnchanged(async () => {
      const problem = assertProblem(await agent.send(agent.batch(agent.records(1)), { token }), 401, 'auth.invalid_token');
      assert.match(problem.detail, /jti/);
    });
  });

  it('refuses an expired token and a token for another audience with 401 auth.invalid_token', async () => {
    const agent = await enrolledAgent();
    const batch = agent.batch(agent.records(1));
    await expectLedgerUnchanged(async () => {
      const expired = await agent.token({ nowSeconds: Math.floor(Date.now() / 1000) - 600 });
      assertProblem(await agent.send(batch, { token: expired }), 401, 'auth.invalid_token');
      const elsewhere = await agent.token({ audience: 'other.example/collector' });
      assertProblem(await agent.send(batch, { token: elsewhere }), 401, 'auth.invalid_token');
      assertProblem(await agent.send(batch, { token: 'not-a-jwt' }), 401, 'auth.invalid_token');
    });
    await agent.sendOk(batch);
  });

  it('refuses a token of an unknown agent, or signed by a key the agent did not enroll, with 401 auth.invalid_token', async () => {
    const agent = await enrolledAgent();
    const stranger = new TestAgent('AS-UNKNOWN-001', collector.url, collector.origin);
    const impostor = new TestAgent(agent.id, collector.url, collector.origin);
    await expectLedgerUnchanged(async () => {
      assertProblem(await stranger.send(stranger.batch(stranger.records(1))), 401, 'auth.invalid_token');
      assertProblem(await impostor.send(impostor.batch(impostor.records(1))), 401, 'auth.invalid_token');
      const answer = await agent.send(agent.batch(agent.records(1)), { headers: { authorization: '' } });
      assertProblem(answer, 401, 'auth.invalid_token');
    });
  });

  it('refuses a missing Idempotency-Key, or one that differs from batchId, with 400 request.invalid', async () => {
    const agent = await enrolledAgent();
    const batch = agent.batch(agent.records(1));
    await expectLedgerUnchanged(async () => {
      assertProblem(await agent.send(batch, { idempotencyKey: null }), 400, 'request.invalid');
      assertProblem(await agent.send(batch, { idempotencyKey: 'not-a-uuid' }), 400, 'request.invalid');
      assertProblem(await agent.send(batch, { idempotencyKey: newId() }), 400, 'request.invalid');
    });
  });

  it('refuses the same Idempotency-Key with different records with 422 idempotency.key_reused', async () => {
    const agent = await enrolledAgent();
    const batch = agent.batch(agent.records(1));
    await agent.sendOk(batch);
    await expectLedgerUnchanged(async () => {
      assertProblem(await agent.send(agent.batch(agent.records(1), batch.batchId)), 422, 'idempotency.key_reused');
    });
  });

  it('refuses a batch for an earlier epoch after the agent was re-enrolled with a replacement token, with 409 batch.epoch_stale and currentEpoch', async () => {
    const agent = await enrolledAgent();
    await agent.sendOk(agent.batch(agent.records(1)));
    const oldChain = agent.batch(agent.records(1));
    agent.newKey();
    const { token } = await collector.container.enrollment.issueToken(agent.id, 600, 'cli:test', { replace: true });
    assert.equal((await agent.enroll(token)).status, 200);
    assert.equal(agent.epoch, 2);
    const stale = { ...oldChain, epoch: 1 };
    await expectLedgerUnchanged(async () => {
      const problem = assertProblem(await agent.send(stale), 409, 'batch.epoch_stale');
      assert.equal(problem.currentEpoch, 2);
    });
    const signed = await agent.sendOk(agent.batch(agent.records(2)));
    assert.equal(signed.receipt.epoch, 2);
    assert.equal(signed.receipt.highestSeq, 2);
  });

  it('refuses a body that is not JSON, or an encoding other than gzip, with 415', async () => {
    const agent = await enrolledAgent();
    const batch = agent.batch(agent.records(1));
    await expectLedgerUnchanged(async () => {
      assertProblem(await agent.send(batch, { headers: { 'content-type': 'text/plain' } }), 415, 'request.unsupported_media_type');
      assertProblem(await agent.send(batch, { headers: { 'content-encoding': 'br' } }), 415, 'request.unsupported_media_type');
    });
  });

  it('answers a method it does not allow on /batches with 405 problem+json', async () => {
    const answer = await request(`${collector.url}/api/v1/batches`, {});
    assert.equal(answer.status, 405);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
  });

  it('puts the trace id of the traceparent header on the answer and on every log line about the batch', async () => {
    const agent = await enrolledAgent();
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const batch = agent.batch(agent.records(2));
    const answer = await agent.send(batch, { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.headers.get('x-trace-id'), traceId);
    const lines = collector.logs.filter((line) => line.includes(batch.batchId));
    assert.ok(lines.length > 0);
    for (const line of lines) assert.equal((JSON.parse(line) as { traceId?: string }).traceId, traceId);
    for (const line of collector.logs) assert.ok(!line.includes('eyJ'), 'no JWT in the logs');
  });

  it('answers 503 service.unavailable with Retry-After while another process holds the write lock, acknowledging nothing, and accepts the retry', async function () {
    sqliteOnly(this, 'it holds SQLite\u2019s write lock from another connection; on PostgreSQL the contract suite holds the writer\u2019s advisory lock');
    this.timeout(20_000);
    const agent = await enrolledAgent();
    const batch = agent.batch(agent.records(2));
    const before = await stats();
    const blocker = new Database(join(collector.dir, 'collector.db'));
    blocker.exec('BEGIN IMMEDIATE');
    let answer: HttpAnswer;
    try {
      answer = await agent.send(batch);
    } finally {
      blocker.exec('ROLLBACK');
      blocker.close();
    }
    assertProblem(answer, 503, 'service.unavailable');
    assert.ok(Number(answer.headers.get('retry-after')) > 0);
    assert.equal((await stats()).size, before.size);
    const signed = await agent.sendOk(batch);
    assert.equal(signed.receipt.accepted, 2);
  });

  it('keeps the signed checkpoint root equal to the RFC 9162 root over every stored record, in ledger order', async function () {
    sqliteOnly(this, 'it reads leaf hashes from the SQLite file; the contract suite and ledger verify check the root on PostgreSQL');
    const agent = await enrolledAgent();
    await agent.sendOk(agent.batch(agent.records(7)));
    const db = new Database(join(collector.dir, 'collector.db'), { readonly: true });
    try {
      const rows = db.prepare('SELECT ledger_index, canonical, record_hash, leaf_hash FROM records ORDER BY ledger_index').all() as {
        ledger_index: number;
        canonical: string;
        record_hash: string;
        leaf_hash: Buffer;
      }[];
      rows.forEach((row, i) => {
        assert.equal(row.ledger_index, i);
        const bytes = Buffer.from(row.canonical, 'utf8');
        assert.equal(row.record_hash, recordHashOfCanonical(bytes));
        assert.deepEqual(row.leaf_hash, leafHashOfCanonical(bytes));
      });
      const latest = db.prepare('SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1').get() as { size: number; root: Buffer; note: string };
      assert.equal(latest.size, rows.length);
      assert.deepEqual(latest.root, rootHash(rows.map((row) => row.leaf_hash)));
      const checkpoint = verifyCheckpoint(latest.note, parseVerifierKey(agent.enrollment!.logKey), collector.origin);
      assert.equal(checkpoint.size, rows.length);
      assert.deepEqual(checkpoint.rootHash, latest.root);
    } finally {
      db.close();
    }
  });
});
