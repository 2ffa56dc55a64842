import assert from 'node:assert/strict';
import { countRefusal, DEFAULT_BUFFER_CAP } from '../../../agent/outbox/buffer-cap.ts';
import type { SqliteOutbox } from '../../../agent/outbox/sqlite-outbox.ts';
import type { CircuitSnapshot, LastReceipt, SyncErrorInfo, WitnessAlarm, WitnessErrorInfo } from '../../../agent/outbox/state-values.ts';
import { makeTestAgentDir, type TestAgentDir } from './support/agent-dir.ts';

const AT = '2026-01-02T03:04:05.678Z';
const ROOT = 'A'.repeat(43);

const lastError: SyncErrorInfo = {
  at: AT,
  reason: 'http_status',
  detail: 'the collector answered 503',
  status: 503,
  code: 'service.unavailable',
  refused: false,
  batchId: '0192f7b4-0000-7000-8000-000000000001',
  traceId: '0af7651916cd43dd8448eb211c80319c',
  firstSeq: 1,
  lastSeq: 12,
};
const circuit: CircuitSnapshot = { state: 'open', consecutiveFailures: 5, openUntil: AT };
const lastReceipt: LastReceipt = {
  batchId: '0192f7b4-0000-7000-8000-000000000001',
  epoch: 1,
  highestSeq: 12,
  accepted: 11,
  duplicates: 1,
  ledger: { first: 100, last: 110 },
  checkpoint: { size: 111, root: ROOT },
  receivedAt: AT,
  verifiedAt: AT,
};
const alarm: WitnessAlarm = {
  reason: 'inconsistent',
  detail: 'the consistency proof does not verify',
  previous: { size: 10, root: ROOT },
  offered: { size: 20, root: ROOT },
  raisedAt: AT,
  record: { id: '0192f7b4-0000-7000-8000-000000000002', epoch: 1, seq: 13 },
  batchId: '0192f7b4-0000-7000-8000-000000000001',
};
const witnessError: WitnessErrorInfo = { at: AT, reason: 'timeout', detail: 'no answer in 10 s', offered: { size: 20, root: ROOT }, retryAt: AT };
const dropped = countRefusal(undefined, 'system.health', 'soft', AT, DEFAULT_BUFFER_CAP);

/** Sets every accessor but `pins` (which `init` wrote) to its example value. */
function setAll(outbox: SqliteOutbox): void {
  outbox.state.sync.lastError.set(lastError);
  outbox.state.sync.nextAttemptAt.set(AT);
  outbox.state.sync.circuit.set(circuit);
  outbox.state.sync.lastReceipt.set(lastReceipt);
  outbox.state.witness.alarm.set(alarm);
  outbox.state.witness.lastError.set(witnessError);
  outbox.state.buffer.dropped.set(dropped);
}

function rawState(outbox: SqliteOutbox): { [key: string]: string } {
  const rows = outbox.db.prepare('SELECT key, value FROM state ORDER BY key').all() as { key: string; value: string }[];
  return Object.fromEntries(rows.map((row) => [row.key, row.value]));
}

describe('agent/outbox/state-table', () => {
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

  it('reads undefined for every key nothing has written yet, and the pins that init wrote', () => {
    assert.deepEqual(outbox.state.pins.get(), agent.pins);
    for (const slot of [
      outbox.state.sync.lastError,
      outbox.state.sync.nextAttemptAt,
      outbox.state.sync.circuit,
      outbox.state.sync.lastReceipt,
      outbox.state.witness.alarm,
      outbox.state.witness.lastError,
      outbox.state.buffer.dropped,
    ]) {
      assert.equal(slot.get(), undefined, slot.key);
    }
  });

  it('gives back each value as it was set, in this connection and in another one', () => {
    setAll(outbox);
    const other = agent.open();
    try {
      for (const state of [outbox.state, other.state]) {
        assert.deepEqual(state.sync.lastError.get(), lastError);
        assert.equal(state.sync.nextAttemptAt.get(), AT);
        assert.deepEqual(state.sync.circuit.get(), circuit);
        assert.deepEqual(state.sync.lastReceipt.get(), lastReceipt);
        assert.deepEqual(state.witness.alarm.get(), alarm);
        assert.deepEqual(state.witness.lastError.get(), witnessError);
        assert.deepEqual(state.buffer.dropped.get(), dropped);
      }
    } finally {
      other.close();
    }
  });

  it('stores each value as JSON under the key other processes and versions read', () => {
    setAll(outbox);
    assert.deepEqual(rawState(outbox), {
      'buffer.dropped': JSON.stringify(dropped),
      pins: JSON.stringify(agent.pins),
      'sync.circuit': JSON.stringify(circuit),
      'sync.lastError': JSON.stringify(lastError),
      'sync.lastReceipt': JSON.stringify(lastReceipt),
      'sync.nextAttemptAt': JSON.stringify(AT),
      'witness.alarm': JSON.stringify(alarm),
      'witness.lastError': JSON.stringify(witnessError),
    });
  });

  it('replaces a value on set, and deletes only its own row on clear', () => {
    setAll(outbox);
    const closed: CircuitSnapshot = { state: 'closed', consecutiveFailures: 0, openUntil: null };
    outbox.state.sync.circuit.set(closed);
    assert.deepEqual(outbox.state.sync.circuit.get(), closed);
    outbox.state.sync.lastError.clear();
    outbox.state.sync.lastError.clear(); // clearing an absent key is no error
    assert.equal(outbox.state.sync.lastError.get(), undefined);
    assert.equal('sync.lastError' in rawState(outbox), false);
    assert.equal(Object.keys(rawState(outbox)).length, 7, 'the other keys stay');
  });

  it('commits writes made inside outbox.transaction together, or none of them', () => {
    assert.throws(
      () =>
        outbox.transaction(() => {
          outbox.state.witness.alarm.set(alarm);
          outbox.state.witness.lastError.set(witnessError);
          throw new Error('abandoned');
        }),
      /abandoned/,
    );
    assert.equal(outbox.state.witness.alarm.get(), undefined);
    assert.equal(outbox.state.witness.lastError.get(), undefined);
    outbox.transaction(() => {
      outbox.state.witness.alarm.set(alarm);
      outbox.state.witness.lastError.clear();
    });
    assert.deepEqual(outbox.state.witness.alarm.get(), alarm);
  });

  it('is what the outbox itself reads and writes: pins, the drop counter and the last receipt', () => {
    assert.deepEqual(outbox.pins(), outbox.state.pins.get());
    outbox.state.buffer.dropped.set(dropped);
    assert.deepEqual(outbox.dropCounter(), dropped);
    assert.deepEqual(outbox.bufferStatus().dropped, dropped);
    outbox.append({ kind: 'audit', type: 'a.b', body: {} }, agent.key);
    const receivedAt = new Date().toISOString();
    const verifiedAt = new Date();
    outbox.markAcknowledged(
      {
        receipt: {
          v: 1,
          collector: agent.pins.origin,
          batchId: '0192f7b4-0000-7000-8000-000000000003',
          agent: agent.pins.agent,
          epoch: 1,
          accepted: 1,
          duplicates: 0,
          highestSeq: 1,
          ledger: { first: 0, last: 0 },
          checkpoint: { size: 1, root: ROOT },
          receivedAt,
        },
        signature: 'not-checked-by-the-outbox',
      },
      { verifiedAt },
    );
    assert.deepEqual(outbox.state.sync.lastReceipt.get(), {
      batchId: '0192f7b4-0000-7000-8000-000000000003',
      epoch: 1,
      highestSeq: 1,
      accepted: 1,
      duplicates: 0,
      ledger: { first: 0, last: 0 },
      checkpoint: { size: 1, root: ROOT },
      receivedAt,
      verifiedAt: verifiedAt.toISOString(),
    });
  });
});
