import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { OutboxAuditSource } from '../../../agent/outbox/audit-source.ts';
import { migration0001 } from '../../../agent/outbox/migrations/0001-initial.ts';
import { CURRENT_SCHEMA_VERSION } from '../../../agent/outbox/migrations/migration-list.ts';
import { OutboxSchemaError, outboxPath, type SqliteOutbox } from '../../../agent/outbox/sqlite-outbox.ts';
import { makeTestAgentDir, type TestAgentDir } from './support/agent-dir.ts';

describe('agent/outbox/audit-source', () => {
  let agent: TestAgentDir;
  let outbox: SqliteOutbox;

  beforeEach(() => {
    agent = makeTestAgentDir();
    outbox = agent.open();
  });

  afterEach(() => {
    outbox.close();
    agent.remove();
  });

  it('reads the rows as stored, records joined with their receipt', () => {
    for (let i = 0; i < 3; i++) outbox.append({ kind: 'audit', type: 'a.b', body: { i } }, agent.key);
    const batchId = '0192f7b4-0000-7000-8000-000000000001';
    outbox.markAcknowledged({
      receipt: {
        v: 1,
        collector: agent.pins.origin,
        batchId,
        agent: agent.pins.agent,
        epoch: 1,
        accepted: 2,
        duplicates: 0,
        highestSeq: 2,
        ledger: null,
        checkpoint: { size: 2, root: 'A'.repeat(43) },
        receivedAt: new Date().toISOString(),
      },
      signature: 'sig',
    });
    const source = OutboxAuditSource.open(outboxPath(agent.dir));
    try {
      assert.equal(source.schemaVersion, CURRENT_SCHEMA_VERSION);
      assert.deepEqual(JSON.parse(source.pinsText()!), agent.pins);
      assert.equal(source.witnessAlarmText(), undefined);
      assert.deepEqual(source.chains(), [{ epoch: 1, headSeq: 3, headHash: outbox.record(3)!.hash, ackedSeq: 2 }]);
      const records = [...source.records()];
      assert.deepEqual(
        records.map((r) => [r.seq, r.canonical === outbox.record(r.seq)!.canonical, r.ackedBatch, r.receiptBatch, r.receiptHighest]),
        [
          [1, true, batchId, batchId, 2],
          [2, true, batchId, batchId, 2],
          [3, true, null, null, null],
        ],
      );
      assert.deepEqual(
        [...source.receipts()].map((r) => [r.batchId, r.epoch, r.highestSeq, r.accepted, r.signature]),
        [[batchId, 1, 2, 2, 'sig']],
      );
      assert.deepEqual(source.signingKeys(), []);
      assert.equal(source.witnessCheckpoint(), undefined);
    } finally {
      source.close();
    }
  });

  it('keeps one snapshot while another connection goes on writing', () => {
    outbox.append({ kind: 'audit', type: 'a.b', body: {} }, agent.key);
    const source = OutboxAuditSource.open(outboxPath(agent.dir));
    try {
      assert.equal(source.chains()[0]!.headSeq, 1);
      outbox.append({ kind: 'audit', type: 'a.b', body: {} }, agent.key);
      assert.equal(source.chains()[0]!.headSeq, 1);
      assert.equal([...source.records()].length, 1);
    } finally {
      source.close();
    }
    assert.equal(outbox.chain().headSeq, 2);
  });

  it('reads the tables an older schema lacks as absent', () => {
    const path = join(agent.root, 'v1.db');
    const v1 = new Database(path);
    v1.transaction(() => {
      migration0001.up(v1);
      v1.pragma('user_version = 1');
    })();
    v1.close();
    const source = OutboxAuditSource.open(path);
    try {
      assert.equal(source.schemaVersion, 1);
      assert.equal(source.pinsText(), undefined);
      assert.equal(source.signingKeys(), undefined);
      assert.equal(source.witnessCheckpoint(), undefined);
    } finally {
      source.close();
    }
  });

  it('refuses an outbox newer than this code, and leaves it unchanged', () => {
    const path = join(agent.root, 'newer.db');
    const newer = new Database(path);
    newer.pragma(`user_version = ${CURRENT_SCHEMA_VERSION + 1}`);
    newer.close();
    assert.throws(() => OutboxAuditSource.open(path), OutboxSchemaError);
    const check = new Database(path, { readonly: true });
    assert.equal(check.pragma('user_version', { simple: true }), CURRENT_SCHEMA_VERSION + 1);
    check.close();
  });
});
