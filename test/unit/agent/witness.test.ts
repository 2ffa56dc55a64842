import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { signCheckpoint } from '../../../shared/checkpoint.ts';
import { fromBase64Url, generateSigningKey, sha256, toBase64Url } from '../../../shared/crypto.ts';
import { createLogger, type Logger } from '../../../shared/logger.ts';
import { noteSignerFromSigningKey } from '../../../shared/signed-note.ts';
import type { SqliteOutbox } from '../../../agent/outbox/sqlite-outbox.ts';
import { readAgentStatus } from '../../../agent/status.ts';
import { LogClient } from '../../../agent/witness/log-client.ts';
import { clearWitnessAlarm } from '../../../agent/witness/witness-alarm.ts';
import { readWitnessAlarm, type CheckpointRef, type WitnessAlarmReason } from '../../../agent/witness/witness-state.ts';
import { Witness, type WitnessOptions } from '../../../agent/witness/witness.ts';
import { makeTestAgentDir, type TestAgentDir } from './support/agent-dir.ts';
import { FakeLog, type LogBehaviour } from './support/fake-log.ts';

interface LogLine {
  level: number;
  msg: string;
  alert?: string;
  reason?: string;
  [key: string]: unknown;
}

const ERROR = 50;

describe('agent/witness against a fake log', function () {
  this.timeout(10_000);
  let log: FakeLog;
  let agent: TestAgentDir;
  let outbox: SqliteOutbox;
  let lines: LogLine[];
  let logger: Logger;
  const witnesses: Witness[] = [];

  beforeEach(async () => {
    log = new FakeLog('witness.test/log');
    await log.serve();
    agent = makeTestAgentDir({ collector: log.url, origin: log.origin, logKey: log.verifierKey });
    outbox = agent.open();
    lines = [];
    logger = createLogger('test-witness', 'debug', { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  });

  afterEach(async () => {
    for (const w of witnesses.splice(0)) {
      w.stop();
      await w.settle();
    }
    outbox.close();
    await log.stop();
    agent.remove();
  });

  function witness(overrides: Partial<WitnessOptions> = {}): Witness {
    const w = new Witness({
      outbox,
      log: new LogClient({ collectorUrl: log.url, timeouts: { connectMs: 500, responseMs: 300 } }),
      key: agent.key,
      logger,
      backoff: { baseMs: 5, maxMs: 20 },
      ...overrides,
    });
    witnesses.push(w);
    return w;
  }

  async function check(w: Witness, offered: CheckpointRef): Promise<void> {
    w.observe(offered, { traceId: 'trace-under-test', batchId: 'batch-under-test' });
    await w.settle();
  }

  /** Witnesses the log at its current size (first checkpoint: signature and root only). */
  async function verifiedAt(w: Witness, grow: number): Promise<CheckpointRef> {
    log.grow(grow);
    const ref = log.ref();
    await check(w, ref);
    assert.equal(outbox.witnessCheckpoint()?.size, ref.size, `verified ${ref.size}: ${JSON.stringify(lines.at(-1))}`);
    return ref;
  }

  function agentRecords(type: string): Array<{ seq: number; body: { [key: string]: unknown } }> {
    return (outbox.db.prepare("SELECT canonical FROM records WHERE kind = 'agent' ORDER BY seq").pluck().all() as string[])
      .map((text) => JSON.parse(text) as { seq: number; type: string; body: { [key: string]: unknown } })
      .filter((record) => record.type === type);
  }

  function assertAlarm(reason: WitnessAlarmReason, previous: CheckpointRef | null, offered: CheckpointRef): void {
    const alarm = readWitnessAlarm(outbox);
    assert.ok(alarm, `an alarm is raised; log: ${JSON.stringify(lines.slice(-3))}`);
    assert.equal(alarm.reason, reason, alarm.detail);
    assert.deepEqual(alarm.previous, previous);
    assert.deepEqual(alarm.offered, offered);
    assert.equal(alarm.batchId, 'batch-under-test');
    const records = agentRecords('witness.alarm');
    assert.equal(records.length, 1, 'one witness.alarm record in the agent\u2019s own chain');
    assert.deepEqual({ ...records[0]!.body, detail: undefined }, { reason, detail: undefined, previous, offered });
    assert.equal(records[0]!.seq, alarm.record.seq);
    assert.equal(outbox.chain().headSeq, alarm.record.seq, 'the alarm record is chained and pending');
    const loud = lines.filter((line) => line.level === ERROR && line.alert === 'witness' && line.reason === reason);
    assert.equal(loud.length, 1, 'logged once at error with alert: witness');
    assert.deepEqual(loud[0]!.previous, previous);
    assert.deepEqual(loud[0]!.offered, offered);
    assert.equal(loud[0]!.traceId, 'trace-under-test');
    assert.deepEqual(readAgentStatus(outbox).witnessAlarm, alarm, 'status --json shows it');
    assert.deepEqual(
      outbox.witnessCheckpoint() && { size: outbox.witnessCheckpoint()!.size, root: outbox.witnessCheckpoint()!.root },
      previous ?? undefined,
      'the verified checkpoint did not move',
    );
  }

  it('verifies the first checkpoint by its signature and root alone, then each newer one by a consistency proof from the last', async () => {
    const w = witness();
    const first = await verifiedAt(w, 5);
    assert.deepEqual(log.requests, ['/api/v1/checkpoints?size=5']);
    assert.equal(outbox.witnessCheckpoint()?.note, log.notes.get(5), 'the signed note is kept as served');
    assert.equal(first.size, 5);

    await verifiedAt(w, 7);
    assert.deepEqual(log.requests.slice(1), ['/api/v1/checkpoints?size=12', '/api/v1/proofs/consistency?from=5&to=12']);
    const status = readAgentStatus(outbox);
    assert.deepEqual(status.witness.verified && { size: status.witness.verified.size, root: status.witness.verified.root }, log.ref(12));
    assert.equal(status.witness.lastError, null);
    assert.equal(status.witnessAlarm, null);
    assert.equal(agentRecords('witness.alarm').length, 0);
  });

  it('does nothing for a checkpoint it already verified', async () => {
    const w = witness();
    const ref = await verifiedAt(w, 4);
    await check(w, ref);
    assert.equal(log.requests.length, 1);
  });

  it('coalesces checkpoints that arrive while a check runs, and proves consistency only to the newest', async () => {
    const w = witness();
    log.grow(3);
    w.observe(log.ref());
    for (let i = 0; i < 17; i++) {
      log.grow(1);
      w.observe(log.ref());
    }
    await w.settle();
    assert.equal(outbox.witnessCheckpoint()?.size, 20);
    assert.deepEqual(log.requests, ['/api/v1/checkpoints?size=3', '/api/v1/checkpoints?size=20', '/api/v1/proofs/consistency?from=3&to=20']);
  });

  describe('raises the alarm', () => {
    const other = toBase64Url(sha256('another tree'));

    it('for a checkpoint signed by another key under the log\u2019s name', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 5);
      const offered = log.grow(3);
      const forger = noteSignerFromSigningKey(log.origin, generateSigningKey().key);
      log.behaviours.push({ kind: 'note', note: signCheckpoint({ origin: log.origin, size: 8, rootHash: fromBase64Url(offered.root), extensions: [] }, forger) });
      await check(w, offered);
      assertAlarm('bad_signature', previous, offered);
    });

    it('for a checkpoint whose text was changed after it was signed', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 5);
      const offered = log.grow(3);
      const note = log.notes.get(8)!;
      log.behaviours.push({ kind: 'note', note: note.replace(`\n8\n`, `\n9\n`) });
      await check(w, offered);
      assertAlarm('bad_signature', previous, offered);
    });

    it('for a checkpoint signed by the log key for another origin', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 5);
      const offered = log.grow(3);
      log.behaviours.push({ kind: 'note', note: signCheckpoint({ origin: 'elsewhere/log', size: 8, rootHash: fromBase64Url(offered.root), extensions: [] }, log.signer) });
      await check(w, offered);
      assertAlarm('bad_checkpoint', previous, offered);
    });

    it('for a signed checkpoint of another size than the receipt named', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 5);
      log.grow(2);
      const seven = log.notes.get(7)!;
      const offered = log.grow(1);
      log.behaviours.push({ kind: 'note', note: seven });
      await check(w, offered);
      assertAlarm('size_mismatch', previous, offered);
    });

    it('for a signed checkpoint whose root is not the one the receipt named', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 5);
      log.grow(3);
      const offered = { size: 8, root: other };
      await check(w, offered);
      assertAlarm('root_mismatch', previous, offered);
    });

    it('for a history rewritten below the verified checkpoint and re-signed with the real key', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 5);
      log.rewrite(2);
      const offered = log.grow(3);
      await check(w, offered);
      assertAlarm('inconsistent', previous, offered);
      assert.ok(log.requests.includes('/api/v1/proofs/consistency?from=5&to=8'));
    });

    it('for a consistency proof with one bit flipped', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 6);
      const offered = log.grow(5);
      log.behaviours.push({ kind: 'truth' }, { kind: 'flip_proof_bit' });
      await check(w, offered);
      assertAlarm('inconsistent', previous, offered);
    });

    it('for a consistency proof answer for other sizes', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 5);
      const offered = log.grow(3);
      log.behaviours.push({ kind: 'truth' }, { kind: 'proof', answer: { from: 4, to: 8, path: [other] } });
      await check(w, offered);
      assertAlarm('bad_proof', previous, offered);
    });

    it('for a consistency proof that is not a list of hashes', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 5);
      const offered = log.grow(3);
      log.behaviours.push({ kind: 'truth' }, { kind: 'proof', answer: { from: 5, to: 8, path: 'none' } });
      await check(w, offered);
      assertAlarm('bad_proof', previous, offered);
    });

    it('for a receipt naming a smaller checkpoint that is not a prefix of the verified one (a log cut back)', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 8);
      // Restored from a backup of size 6, which then took other entries: size 6 exists again, 8 is another tree.
      log.truncate(6);
      const offered = log.ref(6);
      await check(w, offered);
      assertAlarm('rolled_back', previous, offered);
    });

    it('for another root of the size it verified', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 5);
      const offered = { size: 5, root: other };
      await check(w, offered);
      assertAlarm('equivocation', previous, offered);
      assert.equal(log.requests.length, 1, 'no request was needed');
    });

    it('when the collector refuses the checkpoint its receipt named', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 5);
      log.grow(3);
      const offered = log.ref();
      log.notes.delete(8);
      await check(w, offered);
      assertAlarm('refused', previous, offered);
    });

    it('when the collector refuses the consistency proof', async () => {
      const w = witness();
      const previous = await verifiedAt(w, 5);
      const offered = log.grow(3);
      log.behaviours.push({ kind: 'truth' }, { kind: 'problem', code: 'resource.not_found' });
      await check(w, offered);
      assertAlarm('refused', previous, offered);
    });

    it('for a first checkpoint that does not verify (nothing verified before)', async () => {
      const w = witness();
      const offered = log.grow(3);
      log.behaviours.push({ kind: 'note', note: log.notes.get(3)!.replace('\u2014 ', '\u2014 x') });
      await check(w, offered);
      assertAlarm('bad_signature', null, offered);
    });

    it('when the pinned log key cannot be parsed', async () => {
      outbox.close();
      agent.remove();
      agent = makeTestAgentDir({ collector: log.url, origin: log.origin, logKey: `${log.origin}+00000000+AAAA` });
      outbox = agent.open();
      const w = witness();
      const offered = log.grow(3);
      await check(w, offered);
      assertAlarm('pinned_key_invalid', null, offered);
    });
  });

  describe('does not raise the alarm, and retries later', () => {
    const transient: Array<[string, LogBehaviour, string]> = [
      ['a 503 with Retry-After', { kind: 'problem', code: 'service.unavailable', retryAfter: '1' }, 'server_error'],
      ['a 500', { kind: 'status', status: 500, body: 'oops', contentType: 'text/plain' }, 'server_error'],
      ['a 429', { kind: 'problem', code: 'rate.limited' }, 'rate_limited'],
      ['a request that times out', { kind: 'hang' }, 'timeout'],
      ['a connection reset', { kind: 'reset' }, 'network'],
      ['an HTML page answered with 200 (a captive portal)', { kind: 'status', status: 200 }, 'unexpected_response'],
    ];
    for (const [what, behaviour, reason] of transient) {
      it(`after ${what}`, async () => {
        const w = witness();
        const previous = await verifiedAt(w, 5);
        const offered = log.grow(3);
        log.behaviours.push(behaviour);
        w.observe(offered);
        await w.settle();
        const status = readAgentStatus(outbox);
        assert.equal(status.witnessAlarm, null);
        assert.equal(status.witness.lastError?.reason, reason, JSON.stringify(status.witness.lastError));
        assert.deepEqual(status.witness.lastError?.offered, offered);
        assert.equal(outbox.witnessCheckpoint()?.size, previous.size);
        assert.ok(lines.some((line) => line.msg === 'witness check could not be made; will retry'));
        // The retry (backoff of at most 20 ms) finds the log answering again.
        for (let i = 0; i < 100 && outbox.witnessCheckpoint()?.size !== 8; i++) await sleep(10);
        assert.equal(outbox.witnessCheckpoint()?.size, 8);
        assert.equal(readAgentStatus(outbox).witness.lastError, null, 'cleared by the success');
        assert.equal(agentRecords('witness.alarm').length, 0);
      });
    }

    it('for a smaller checkpoint that is a prefix of the verified one (a receipt another process received earlier)', async () => {
      const w = witness();
      await verifiedAt(w, 5);
      const seven = log.grow(2);
      await verifiedAt(w, 4);
      await check(w, seven);
      assert.equal(readWitnessAlarm(outbox), null);
      assert.equal(outbox.witnessCheckpoint()?.size, 11);
      assert.deepEqual(log.requests.slice(-2), ['/api/v1/checkpoints?size=7', '/api/v1/proofs/consistency?from=7&to=11']);
    });
  });

  describe('the alarm', () => {
    async function forked(w: Witness): Promise<{ previous: CheckpointRef; offered: CheckpointRef }> {
      const previous = await verifiedAt(w, 5);
      log.rewrite(1);
      const offered = log.grow(2);
      await check(w, offered);
      assert.equal(readWitnessAlarm(outbox)?.reason, 'inconsistent');
      return { previous, offered };
    }

    it('survives a restart, freezes the witness, and is never written twice', async () => {
      const { previous } = await forked(witness());
      outbox.close();
      outbox = agent.open();
      const requests = log.requests.length;
      const w = witness();
      w.start();
      assert.ok(lines.some((line) => line.level === ERROR && line.alert === 'witness' && /witness alarm active/.test(line.msg)), 'reported at start');
      await check(w, log.grow(4));
      assert.equal(log.requests.length, requests, 'nothing checked while the alarm is active');
      assert.equal(agentRecords('witness.alarm').length, 1);
      assert.deepEqual(readAgentStatus(outbox).witnessAlarm?.previous, previous);
      assert.equal(outbox.witnessCheckpoint()?.size, previous.size);
    });

    it('is cleared by the operator with a signed witness.cleared record, and comes back while the collector still serves the fork', async () => {
      const w = witness();
      const { previous, offered } = await forked(w);
      const cleared = clearWitnessAlarm(outbox, agent.key, { resetTrust: false });
      assert.equal(cleared.cleared?.reason, 'inconsistent');
      assert.equal(readWitnessAlarm(outbox), null);
      const clearedRecords = agentRecords('witness.cleared');
      assert.equal(clearedRecords.length, 1);
      assert.deepEqual(clearedRecords[0]!.body.alarm, { reason: 'inconsistent', raisedAt: cleared.cleared!.raisedAt, record: cleared.cleared!.record.id, previous, offered });
      assert.equal(outbox.witnessCheckpoint()?.size, previous.size, 'trust is kept');

      await check(w, log.grow(1));
      assert.equal(readWitnessAlarm(outbox)?.reason, 'inconsistent', 'the fork is found again');
      assert.equal(agentRecords('witness.alarm').length, 2);
    });

    it('with --reset-trust, forgets the verified checkpoint so the next one is trusted on first use', async () => {
      const w = witness();
      await forked(w);
      const cleared = clearWitnessAlarm(outbox, agent.key, { resetTrust: true });
      assert.deepEqual(cleared.forgotten?.size, 5);
      assert.equal(outbox.witnessCheckpoint(), undefined);
      await check(w, log.grow(1));
      assert.equal(readWitnessAlarm(outbox), null);
      assert.equal(outbox.witnessCheckpoint()?.size, 8);
    });

    it('clearing with no alarm active writes nothing', () => {
      const head = outbox.chain().headSeq;
      assert.deepEqual(clearWitnessAlarm(outbox, agent.key, { resetTrust: false }), { cleared: null, resetTrust: false, forgotten: null, record: null });
      assert.equal(outbox.chain().headSeq, head);
    });
  });

  it('re-offers the checkpoint of the last stored receipt when it starts', async () => {
    log.grow(9);
    const at = new Date().toISOString();
    outbox.state.sync.lastReceipt.set({ batchId: 'b', epoch: 1, highestSeq: 9, accepted: 9, duplicates: 0, ledger: null, checkpoint: log.ref(), receivedAt: at, verifiedAt: at });
    const w = witness();
    w.start();
    await w.settle();
    assert.equal(outbox.witnessCheckpoint()?.size, 9);
  });
});
