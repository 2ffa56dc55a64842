import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { canonicalJson } from '../../../shared/canonical-json.ts';
import type { SignedReceipt } from '../../../shared/protocol.ts';
import type { SignedRecord } from '../../../shared/record.ts';
import { BufferCapError, outboxPath, SqliteOutbox } from '../../../agent/outbox/sqlite-outbox.ts';
import { MIGRATIONS } from '../../../agent/outbox/migrations/migration-list.ts';
import {
  agentHeadroomBytes,
  capRefusing,
  countRefusal,
  MAX_COUNTED_TYPES,
  OTHER_TYPES_KEY,
  summaryBody,
  TELEMETRY_DROPPED_TYPE,
  type BufferCap,
} from '../../../agent/outbox/buffer-cap.ts';
import { makeTestAgentDir, type TestAgentDir } from './support/agent-dir.ts';

/** Caps small enough to reach with a few dozen records of about 600 bytes. */
const CAP: BufferCap = { softBytes: 6_000, hardBytes: 12_000 };
const PAYLOAD = 'x'.repeat(200);

function ack(outbox: SqliteOutbox, highestSeq: number): void {
  const pins = outbox.pins();
  const receipt: SignedReceipt = {
    receipt: {
      v: 1,
      collector: pins.origin,
      batchId: crypto.randomUUID(),
      agent: pins.agent,
      epoch: pins.epoch,
      accepted: highestSeq,
      duplicates: 0,
      highestSeq,
      ledger: null,
      checkpoint: { size: highestSeq, root: 'A'.repeat(43) },
      receivedAt: new Date().toISOString(),
    },
    signature: 'not-checked-by-the-outbox',
  };
  outbox.markAcknowledged(receipt);
}

/** Appends until the outbox refuses one; returns the refusal. */
function fillUntilRefused(outbox: SqliteOutbox, agent: TestAgentDir, kind: string, type: string): BufferCapError {
  for (let i = 0; i < 1000; i++) {
    try {
      outbox.append({ kind, type, body: { i, payload: PAYLOAD } }, agent.key);
    } catch (err) {
      if (err instanceof BufferCapError) return err;
      throw err;
    }
  }
  assert.fail(`${kind} was never refused`);
}

describe('agent/outbox/buffer-cap rules', () => {
  it('refuses telemetry above the soft cap, audit above the hard cap, and agent records only beyond a headroom above it', () => {
    assert.equal(capRefusing('telemetry', 100, CAP.softBytes - 100, CAP), undefined);
    assert.equal(capRefusing('telemetry', 101, CAP.softBytes - 100, CAP), 'soft');
    assert.equal(capRefusing('telemetry', 10, CAP.hardBytes, CAP), 'hard');
    assert.equal(capRefusing('audit', 100, CAP.softBytes + 1000, CAP), undefined);
    assert.equal(capRefusing('audit', 101, CAP.hardBytes - 100, CAP), 'hard');
    assert.equal(capRefusing('agent', 1000, CAP.hardBytes, CAP), undefined);
    assert.equal(capRefusing('agent', 1, CAP.hardBytes + agentHeadroomBytes(CAP), CAP), 'hard');
  });

  it('counts refusals per type with the first and last time, and bounds the number of types kept', () => {
    let counter = countRefusal(undefined, 'a.b', 'soft', '2026-01-01T00:00:00.000Z', CAP);
    counter = countRefusal(counter, 'a.b', 'soft', '2026-01-01T00:00:01.000Z', CAP);
    counter = countRefusal(counter, 'c.d', 'hard', '2026-01-01T00:00:02.000Z', CAP);
    assert.deepEqual(summaryBody(counter), {
      dropped: 3,
      firstAt: '2026-01-01T00:00:00.000Z',
      lastAt: '2026-01-01T00:00:02.000Z',
      reason: summaryBody(counter).reason,
      byType: { 'a.b': 2, 'c.d': 1 },
    });
    assert.match(summaryBody(counter).reason, /hard cap \(12000 bytes\)/);
    for (let i = 0; i < MAX_COUNTED_TYPES + 10; i++) counter = countRefusal(counter, `t.n${i}`, 'soft', '2026-01-01T00:00:03.000Z', CAP);
    assert.equal(Object.keys(counter.byType).length, MAX_COUNTED_TYPES + 1);
    assert.equal(counter.byType[OTHER_TYPES_KEY], 12);
    assert.equal(counter.dropped, 3 + MAX_COUNTED_TYPES + 10);
  });
});

describe('agent/outbox buffer cap', () => {
  let agent: TestAgentDir;
  let outbox: SqliteOutbox;

  beforeEach(() => {
    agent = makeTestAgentDir();
    outbox = SqliteOutbox.open(outboxPath(agent.dir), { cap: CAP });
  });

  afterEach(() => {
    outbox.close();
    agent.remove();
  });

  it('keeps a running total of unacknowledged bytes equal to the sum over the pending records', () => {
    for (let i = 0; i < 5; i++) outbox.append({ kind: 'audit', type: 'certificate.issued', body: { i } }, agent.key);
    const sum = (from: number) =>
      outbox.db.prepare('SELECT coalesce(sum(bytes), 0) FROM records WHERE seq > ?').pluck().get(from) as number;
    assert.equal(outbox.pendingBytes(), sum(0));
    ack(outbox, 3);
    assert.equal(outbox.pendingBytes(), sum(3));
    ack(outbox, 5);
    assert.equal(outbox.pendingBytes(), 0);
  });

  it('refuses telemetry above the soft cap but still stores audit records, and counts the refusal durably', () => {
    const refusal = fillUntilRefused(outbox, agent, 'telemetry', 'service.health');
    assert.equal(refusal.level, 'soft');
    assert.equal(refusal.capJustReached, true);
    const head = outbox.chain().headSeq;
    assert.ok(outbox.pendingBytes() <= CAP.softBytes);
    const { seq } = outbox.append({ kind: 'audit', type: 'certificate.issued', body: { payload: PAYLOAD } }, agent.key);
    assert.equal(seq, head + 1, 'an audit record is still accepted above the soft cap');
    const again = fillUntilRefused(outbox, agent, 'telemetry', 'disk.usage');
    assert.equal(again.capJustReached, false, 'the cap was already reached: no second warning');

    const other = SqliteOutbox.open(outboxPath(agent.dir), { cap: CAP }); // another connection sees the committed counter
    try {
      const counter = other.dropCounter();
      assert.equal(counter?.dropped, 2);
      assert.deepEqual(counter?.byType, { 'service.health': 1, 'disk.usage': 1 });
      assert.equal(counter?.worst, 'soft');
      assert.equal(other.bufferStatus().state, 'soft_cap');
    } finally {
      other.close();
    }
  });

  it('refuses audit records at the hard cap, still stores agent records, and never stores a refused record', () => {
    const refusal = fillUntilRefused(outbox, agent, 'audit', 'certificate.issued');
    assert.equal(refusal.level, 'hard');
    assert.match(refusal.message, /NOT stored/);
    const head = outbox.chain().headSeq;
    const countBefore = outbox.db.prepare('SELECT count(*) FROM records').pluck().get();
    assert.throws(() => outbox.append({ kind: 'telemetry', type: 'service.health', body: {} }, agent.key), BufferCapError);
    assert.equal(outbox.db.prepare('SELECT count(*) FROM records').pluck().get(), countBefore, 'nothing stored');
    const { seq } = outbox.append({ kind: 'agent', type: 'agent.stopping', body: { reason: 'test' } }, agent.key);
    assert.equal(seq, head + 1, 'an agent record uses the headroom');
    assert.equal(outbox.dropCounter()?.worst, 'hard');
    assert.equal(outbox.dropCounter()?.dropped, 2);
  });

  it('writes ONE signed telemetry.dropped record with the exact body once acknowledgements make room, and clears the counter', () => {
    fillUntilRefused(outbox, agent, 'telemetry', 'service.health');
    fillUntilRefused(outbox, agent, 'telemetry', 'service.health');
    const counter = outbox.dropCounter()!;
    assert.equal(outbox.writeDropSummary(agent.key), undefined, 'no room yet: no summary');
    ack(outbox, outbox.chain().headSeq);
    const summary = outbox.writeDropSummary(agent.key);
    assert.ok(summary);
    const record = JSON.parse(outbox.record(summary.seq)!.canonical) as SignedRecord;
    assert.equal(record.kind, 'agent');
    assert.equal(record.type, TELEMETRY_DROPPED_TYPE);
    assert.deepEqual(Object.keys(record.body).sort(), ['byType', 'dropped', 'firstAt', 'lastAt', 'reason']);
    assert.deepEqual(record.body, {
      dropped: 2,
      firstAt: counter.firstAt,
      lastAt: counter.lastAt,
      reason: summaryBody(counter).reason,
      byType: { 'service.health': 2 },
    });
    assert.equal(outbox.dropCounter(), undefined);
    assert.equal(outbox.state.buffer.dropped.get(), undefined);
    assert.equal(outbox.writeDropSummary(agent.key), undefined, 'written once');
  });

  it('writes the pending summary before the next record that finds room, in the same transaction', () => {
    fillUntilRefused(outbox, agent, 'telemetry', 'service.health');
    ack(outbox, outbox.chain().headSeq);
    const { seq } = outbox.append({ kind: 'audit', type: 'certificate.issued', body: {} }, agent.key);
    const before = JSON.parse(outbox.record(seq - 1)!.canonical) as SignedRecord;
    assert.equal(before.type, TELEMETRY_DROPPED_TYPE);
    assert.equal(outbox.dropCounter(), undefined);
  });

  it('keeps the counter across a restart, and summarises it then', () => {
    fillUntilRefused(outbox, agent, 'telemetry', 'service.health');
    outbox.close();
    outbox = SqliteOutbox.open(outboxPath(agent.dir), { cap: { softBytes: 1_000_000, hardBytes: 2_000_000 } });
    assert.equal(outbox.dropCounter()?.dropped, 1);
    const summary = outbox.writeDropSummary(agent.key);
    assert.equal((summary?.record.body as { dropped: number }).dropped, 1);
  });

  it('migrates a version 3 outbox by computing the pending bytes from the stored records', () => {
    const path = join(agent.root, 'v3.db');
    const v3 = new Database(path);
    v3.transaction(() => {
      for (const migration of MIGRATIONS.slice(0, 3)) migration.up(v3);
      v3.pragma('user_version = 3');
    })();
    v3.prepare("INSERT INTO chains (epoch, head_seq, head_hash, acked_seq) VALUES (1, 3, 'h', 1)").run();
    const insert = v3.prepare("INSERT INTO records (epoch, seq, id, kind, at, hash, canonical, bytes, stored_at) VALUES (1, ?, ?, 'audit', 'a', 'h', ?, ?, 's')");
    for (const [seq, bytes] of [[1, 100], [2, 200], [3, 300]] as const) insert.run(seq, `r${seq}`, canonicalJson({ seq }), bytes);
    v3.close();
    const migrated = SqliteOutbox.open(path);
    try {
      assert.equal(migrated.pendingBytes(), 500, 'seq 2 and 3 are above acked_seq 1');
    } finally {
      migrated.close();
    }
  });
});
