import assert from 'node:assert/strict';
import { createLogger, type Logger } from '../../../shared/logger.ts';
import { parseTraceparent } from '../../../shared/trace.ts';
import type { SqliteOutbox } from '../../../agent/outbox/sqlite-outbox.ts';
import { BatchClient } from '../../../agent/sync/client.ts';
import { Syncer, SyncFailedError, type SyncerOptions } from '../../../agent/sync/syncer.ts';
import { readAgentStatus } from '../../../agent/status.ts';
import { LogClient } from '../../../agent/witness/log-client.ts';
import { Witness } from '../../../agent/witness/witness.ts';
import { makeTestAgentDir, TEST_AGENT, type TestAgentDir } from './support/agent-dir.ts';
import { FakeCollector } from './support/fake-collector.ts';

interface LogLine {
  level: number;
  msg: string;
  traceId?: string;
  batchId?: string;
  [key: string]: unknown;
}

describe('agent/sync/syncer against a fake collector', function () {
  this.timeout(20_000);
  let collector: FakeCollector;
  let agent: TestAgentDir;
  let outbox: SqliteOutbox;
  let lines: LogLine[];
  let logger: Logger;

  beforeEach(async () => {
    collector = await FakeCollector.start();
    agent = makeTestAgentDir({ collector: collector.url, receiptKey: collector.receiptKey, origin: collector.origin, logKey: collector.log.verifierKey });
    // The fake collector must know the agent's key, as after a real enrollment.
    collector.agents.set(TEST_AGENT, { publicJwk: agent.key.publicJwk, epoch: 1, highestSeq: 0, highestHash: 'A'.repeat(43), records: new Map() });
    outbox = agent.open();
    lines = [];
    logger = createLogger('test-agent', 'debug', { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  });

  afterEach(async () => {
    outbox.close();
    await collector.stop();
    agent.remove();
  });

  function emit(n: number): void {
    for (let i = 0; i < n; i++) outbox.append({ kind: 'audit', type: 'certificate.issued', body: { i } }, agent.key);
  }

  function syncer(overrides: Partial<SyncerOptions> = {}): Syncer {
    const client = new BatchClient({
      collectorUrl: collector.url,
      origin: collector.origin,
      agent: TEST_AGENT,
      key: agent.key,
      timeouts: { connectMs: 1000, responseMs: 1000 },
    });
    return new Syncer({
      outbox,
      client,
      key: agent.key,
      logger,
      batch: { maxRecords: 10, maxBytes: 1 << 20 },
      backoff: { baseMs: 10, maxMs: 100 },
      circuit: { failureThreshold: 3, cooldownMs: 60_000 },
      refusedRetryMs: 600_000,
      idleIntervalMs: 10,
      ...overrides,
    });
  }

  function assertCollectorHasExactly(n: number, options: { ledger?: boolean } = {}): void {
    const stored = collector.stored(TEST_AGENT);
    assert.equal(stored.length, n, 'collector record count');
    for (let seq = 1; seq <= n; seq++) assert.equal(stored[seq - 1], outbox.record(seq)!.canonical, `record ${seq} arrived byte for byte`);
    if (options.ledger !== false) assert.equal(collector.ledgerSize, n, 'each record entered the ledger once');
  }

  it('drains the backlog oldest first in bounded batches and acknowledges everything once receipts verify', async () => {
    emit(35);
    const result = await syncer().drain();
    assert.deepEqual(result, { acknowledged: 35, batches: 4 });
    assert.deepEqual(collector.requests.map((r) => [r.firstSeq, r.lastSeq]), [[1, 10], [11, 20], [21, 30], [31, 35]]);
    assertCollectorHasExactly(35);
    assert.deepEqual(outbox.backlog(), { pending: 0, oldestAt: null });
    assert.equal(outbox.receiptCount(), 4);
    const status = readAgentStatus(outbox);
    assert.equal(status.acked, 35);
    assert.equal(status.lastError, null);
    assert.equal((status.lastReceipt as { highestSeq: number }).highestSeq, 35);
  });

  it('sends each batch gzipped, with its id as Idempotency-Key, a traceparent and the backlog', async () => {
    emit(12);
    await syncer().drain();
    const [first] = collector.requests;
    assert.equal(first!.contentEncoding, 'gzip');
    assert.equal(first!.idempotencyKey, first!.batchId);
    assert.ok(parseTraceparent(first!.traceparent), `traceparent ${first!.traceparent}`);
    assert.equal((first!.backlog as { pending: number }).pending, 12);
    const traceId = parseTraceparent(first!.traceparent)!.traceId;
    const aboutBatch = lines.filter((l) => l.batchId === first!.batchId);
    assert.ok(aboutBatch.length >= 2, 'the batch is logged when sent and when acknowledged');
    for (const line of aboutBatch) assert.equal(line.traceId, traceId);
  });

  it('bounds a batch by bytes as well as by count', async () => {
    for (let i = 0; i < 6; i++) outbox.append({ kind: 'audit', type: 'a.b', body: { pad: 'x'.repeat(3000), i } }, agent.key);
    await syncer({ batch: { maxRecords: 100, maxBytes: 7000 } }).drain();
    assert.deepEqual(collector.requests.map((r) => r.count), [2, 2, 2]);
  });

  it('acknowledges nothing when the receipt is signed by a key other than the pinned one, then recovers', async () => {
    emit(3);
    collector.behaviours.push({ kind: 'foreign_signature' });
    const s = syncer();
    const failed = await s.step();
    assert.equal(failed.kind, 'failed');
    assert.equal(outbox.backlog().pending, 3, 'nothing acknowledged');
    assert.equal(outbox.receiptCount(), 0);
    const error = outbox.state.sync.lastError.get()!;
    assert.equal(error.reason, 'bad_receipt');
    assert.ok(lines.some((l) => l.level === 50 && l.msg === 'receipt rejected; nothing acknowledged'), 'logged at error');
    assert.ok(outbox.state.sync.nextAttemptAt.get());

    const ok = await s.step();
    assert.equal(ok.kind, 'acknowledged');
    assert.equal(outbox.backlog().pending, 0);
    assertCollectorHasExactly(3);
    assert.equal(outbox.state.sync.lastError.get(), undefined, 'a success clears the last error');
  });

  it('acknowledges nothing for a receipt altered after signing or naming another batch', async () => {
    emit(2);
    collector.behaviours.push({ kind: 'tamper_receipt' }, { kind: 'wrong_batch' });
    const s = syncer();
    assert.equal((await s.step()).kind, 'failed');
    assert.equal((await s.step()).kind, 'failed');
    assert.equal(outbox.backlog().pending, 2);
    assert.equal(outbox.receiptCount(), 0);
  });

  it('fails `drain` with a clear message and acknowledges nothing when the receipt does not verify', async () => {
    emit(2);
    collector.behaviours.push({ kind: 'foreign_signature' });
    await assert.rejects(syncer().drain(), (err: unknown) => {
      assert.ok(err instanceof SyncFailedError);
      assert.match(err.message, /receipt signature does not verify/);
      return true;
    });
    assert.equal(outbox.backlog().pending, 2);
  });

  it('resends after a response lost once the collector committed, and the collector stores each record once', async () => {
    emit(5);
    collector.behaviours.push({ kind: 'commit_then_drop' });
    const s = syncer();
    const lost = await s.step();
    assert.equal(lost.kind, 'failed');
    assert.equal(outbox.backlog().pending, 5);
    const retried = await s.step();
    assert.equal(retried.kind, 'acknowledged');
    assert.equal(collector.requests.at(-1)!.status, 200);
    assertCollectorHasExactly(5);
    assert.equal(outbox.backlog().pending, 0);
  });

  it('resends from the expected seq when the collector lost records it had acknowledged', async () => {
    emit(10);
    await syncer().drain();
    emit(3);
    collector.behaviours.push({ kind: 'rollback_to', seq: 4 });
    const result = await syncer().drain();
    assert.equal(result.acknowledged, 3);
    assert.deepEqual(collector.requests.slice(-2).map((r) => [r.firstSeq, r.lastSeq, r.status]), [[11, 13, 409], [5, 13, 200]]);
    assertCollectorHasExactly(13, { ledger: false }); // the rolled-back collector re-appends 5..10
    assert.equal(outbox.backlog().pending, 0);
  });

  it('honours Retry-After on 429 without counting it against the circuit', async () => {
    emit(1);
    collector.behaviours.push({ kind: 'problem', code: 'rate.limited', retryAfter: '0' }, { kind: 'problem', code: 'rate.limited', retryAfter: '3' });
    const s = syncer({ backoff: { baseMs: 10, maxMs: 10_000 } });
    const first = await s.step();
    assert.deepEqual(first.kind === 'failed' && first.delayMs, 0);
    const second = await s.step();
    assert.deepEqual(second.kind === 'failed' && second.delayMs, 3000);
    assert.equal(s.circuit.snapshot().consecutiveFailures, 0);
    assert.equal((await s.step()).kind, 'acknowledged');
  });

  it('honours Retry-After on 503 ingest.busy, resending the same batch without counting it against the circuit', async () => {
    emit(3);
    for (let i = 0; i < 3; i++) collector.behaviours.push({ kind: 'problem', code: 'ingest.busy', retryAfter: '2' });
    const s = syncer({ backoff: { baseMs: 10, maxMs: 10_000 } });
    for (let i = 0; i < 3; i++) {
      const r = await s.step();
      assert.deepEqual(r.kind === 'failed' && [r.delayMs, r.error.reason, r.error.refused], [2000, 'collector_busy', false]);
    }
    assert.equal(s.circuit.state, 'closed');
    assert.equal(s.circuit.snapshot().consecutiveFailures, 0);
    assert.equal((await s.step()).kind, 'acknowledged');
    assert.deepEqual(collector.requests.map((r) => [r.firstSeq, r.lastSeq]), [[1, 3], [1, 3], [1, 3], [1, 3]], 'the whole batch, each time');
    assertCollectorHasExactly(3);
  });

  it('backs off with jitter on 5xx, opens the circuit after repeated failures and sends nothing while open', async () => {
    emit(1);
    for (let i = 0; i < 3; i++) collector.behaviours.push({ kind: 'problem', code: 'service.unavailable' });
    const s = syncer({ random: () => 0.5 });
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await s.step();
      assert.equal(r.kind, 'failed');
      if (r.kind === 'failed') delays.push(r.delayMs);
    }
    assert.deepEqual(delays.slice(0, 2), [5, 10], 'half of 10·2^n with random 0.5');
    assert.equal(s.circuit.state, 'open');
    const requests = collector.requests.length;
    const blocked = await s.step();
    assert.equal(blocked.kind, 'circuit_open');
    assert.equal(collector.requests.length, requests, 'no request while open');
    assert.equal(outbox.state.sync.circuit.get()!.state, 'open');
    assert.equal(readAgentStatus(outbox).circuit.state, 'open');
  });

  it('closes the circuit again after a successful trial', async () => {
    emit(1);
    let now = 1_000_000;
    for (let i = 0; i < 3; i++) collector.behaviours.push({ kind: 'problem', code: 'internal.error' });
    const s = syncer({ now: () => now, circuit: { failureThreshold: 3, cooldownMs: 5000 } });
    for (let i = 0; i < 3; i++) await s.step();
    assert.equal((await s.step()).kind, 'circuit_open');
    now += 5000;
    assert.equal((await s.step()).kind, 'acknowledged');
    assert.equal(s.circuit.state, 'closed');
    assert.equal(readAgentStatus(outbox).circuit.state, 'closed');
  });

  it('stops retrying a refused batch, surfaces it, and waits the long delay', async () => {
    emit(2);
    collector.behaviours.push({ kind: 'problem', code: 'record.equivocation', detail: 'record 1 differs' });
    const r = await syncer().step();
    assert.equal(r.kind, 'failed');
    assert.equal(r.kind === 'failed' && r.delayMs, 600_000);
    const status = readAgentStatus(outbox);
    assert.equal(status.lastError!.refused, true);
    assert.equal(status.lastError!.code, 'record.equivocation');
    assert.equal(status.lastError!.detail, 'record 1 differs');
    assert.ok(Date.parse(status.nextAttemptAt!) - Date.now() > 590_000);
    assert.equal(status.pending, 2);
    assert.ok(lines.some((l) => l.level === 50 && l.msg === 'batch refused by the collector'));
  });

  it('halves the batch after a 413 and still delivers everything', async () => {
    emit(10);
    collector.behaviours.push({ kind: 'problem', code: 'batch.too_large' });
    const s = syncer();
    await s.drain();
    assert.deepEqual(collector.requests.map((r) => r.count), [10, 5, 5]);
    assert.equal(s.batchSize, 10, 'grows back after successes');
    assertCollectorHasExactly(10);
  });

  it('shrinks the batch after a timeout and counts it as a failure', async () => {
    emit(8);
    collector.behaviours.push({ kind: 'hang' });
    const client = new BatchClient({ collectorUrl: collector.url, origin: collector.origin, agent: TEST_AGENT, key: agent.key, timeouts: { connectMs: 1000, responseMs: 200 } });
    const timed = syncer({ client, batch: { maxRecords: 8, maxBytes: 1 << 20 } });
    const r = await timed.step();
    assert.equal(r.kind, 'failed');
    assert.equal(r.kind === 'failed' && r.error.reason, 'timeout');
    assert.equal(timed.batchSize, 4);
    assert.equal(timed.circuit.snapshot().consecutiveFailures, 1);
    await timed.drain();
    assertCollectorHasExactly(8);
  });

  it('treats an unreachable collector as a network failure and keeps the records pending', async () => {
    emit(2);
    await collector.stop();
    const r = await syncer().step();
    assert.equal(r.kind, 'failed');
    assert.equal(r.kind === 'failed' && r.error.reason, 'network');
    assert.equal(outbox.backlog().pending, 2);
  });

  it('is idle with nothing pending and sends no request', async () => {
    assert.deepEqual(await syncer().step(), { kind: 'idle' });
    assert.deepEqual(await syncer().drain(), { acknowledged: 0, batches: 0 });
    assert.equal(collector.requests.length, 0);
  });

  it('runs until aborted, picking up records written while it runs', async () => {
    const s = syncer();
    const stop = new AbortController();
    const running = s.run(stop.signal);
    emit(3);
    await waitFor(() => outbox.backlog().pending === 0 && outbox.chain().ackedSeq === 3);
    emit(2);
    await waitFor(() => outbox.chain().ackedSeq === 5);
    stop.abort();
    await running;
    assertCollectorHasExactly(5);
  });

  describe('with a witness', () => {
    function witness(): Witness {
      return new Witness({
        outbox,
        log: new LogClient({ collectorUrl: collector.url, timeouts: { connectMs: 1000, responseMs: 1000 } }),
        key: agent.key,
        logger,
        backoff: { baseMs: 10, maxMs: 100 },
      });
    }

    it('verifies the log behind every receipt and sends the newest verified checkpoint as batch.witness', async () => {
      emit(25);
      const s = syncer({ witness: witness() });
      assert.deepEqual(await s.drain(), { acknowledged: 25, batches: 3 });
      assert.equal(collector.batches[0]!.witness, undefined, 'nothing verified before the first receipt');
      assert.deepEqual(outbox.witnessCheckpoint() && { size: outbox.witnessCheckpoint()!.size, root: outbox.witnessCheckpoint()!.root }, collector.log.ref());
      assert.ok(collector.log.requests.some((path) => path.startsWith('/api/v1/proofs/consistency?')), 'consistency was proved between receipts');

      emit(1);
      await s.drain();
      assert.deepEqual(collector.batches.at(-1)!.witness, collector.log.ref(25));
      assert.equal(readAgentStatus(outbox).witness.verified?.size, 26);
    });

    it('acknowledges records whatever the witness finds, and raises the alarm once for a rewritten history', async () => {
      emit(10);
      const s = syncer({ witness: witness() });
      await s.drain();
      assert.equal(outbox.witnessCheckpoint()?.size, 10);

      collector.log.rewrite(3);
      emit(5);
      assert.deepEqual(await s.drain(), { acknowledged: 5, batches: 1 });
      const alarm = readAgentStatus(outbox).witnessAlarm;
      assert.equal(alarm?.reason, 'inconsistent');
      assert.deepEqual(alarm?.previous?.size, 10);
      assert.deepEqual(alarm?.offered, collector.log.ref(15));
      assert.equal(alarm?.batchId, collector.requests.at(-1)!.batchId, 'the alarm names the batch whose receipt offered the checkpoint');
      assert.ok(lines.some((line) => line.level === 50 && line.alert === 'witness' && line.traceId === alarm?.traceId));

      // The alarm record itself is synced, and its receipt raises nothing more.
      assert.equal(outbox.backlog().pending, 1);
      assert.deepEqual(await s.drain(), { acknowledged: 1, batches: 1 });
      const sent = JSON.parse(collector.stored(TEST_AGENT).at(-1)!) as { kind: string; type: string; body: { reason: string } };
      assert.deepEqual([sent.kind, sent.type, sent.body.reason], ['agent', 'witness.alarm', 'inconsistent']);
      assert.equal(outbox.db.prepare("SELECT count(*) FROM records WHERE kind = 'agent'").pluck().get(), 1);
      assert.equal(outbox.witnessCheckpoint()?.size, 10, 'the verified checkpoint never moves past the failure');
      assert.deepEqual(collector.batches.at(-1)!.witness, { size: 10, root: alarm!.previous!.root });
    });
  });
});

async function waitFor(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
