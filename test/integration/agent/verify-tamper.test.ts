/**
 * `sakshya-agent verify` against tampered outboxes. One real outbox is made once (records signed
 * and chained by the outbox, synced to a collector that keeps a real Merkle log, so there are
 * verified receipts, acknowledged and pending records and a witness checkpoint); each test
 * copies it, changes it the way an intruder with file access would — one byte of the SQLite
 * file, one column of one row, a deleted row, two rows swapped — and runs the real command.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createLogger } from '../../../shared/logger.ts';
import { outboxPath } from '../../../agent/outbox/sqlite-outbox.ts';
import { BatchClient } from '../../../agent/sync/client.ts';
import { Syncer } from '../../../agent/sync/syncer.ts';
import { LogClient } from '../../../agent/witness/log-client.ts';
import { Witness } from '../../../agent/witness/witness.ts';
import type { VerifyProblem, VerifyReport } from '../../../agent/verify/verify-report.ts';
import { runAgentCli } from '../../helpers/agent-process.ts';
import { makeTestAgentDir, TEST_AGENT, type TestAgentDir } from '../../unit/agent/support/agent-dir.ts';
import { FakeCollector } from '../../unit/agent/support/fake-collector.ts';

const ACKED = 30;
const PENDING = 5;
const MARKER = 'tamper-target-17';

describe('sakshya-agent verify on a tampered outbox', function () {
  this.timeout(30_000);
  let base: TestAgentDir;
  let scratch: string;
  let copies = 0;

  before(async () => {
    const collector = await FakeCollector.start();
    base = makeTestAgentDir({ collector: collector.url, receiptKey: collector.receiptKey, origin: collector.origin, logKey: collector.log.verifierKey });
    collector.agents.set(TEST_AGENT, { publicJwk: base.key.publicJwk, epoch: 1, highestSeq: 0, highestHash: 'A'.repeat(43), records: new Map() });
    const outbox = base.open();
    const logger = createLogger('tamper-test', 'silent');
    try {
      for (let i = 1; i <= ACKED; i++) {
        outbox.append({ kind: i % 4 === 0 ? 'telemetry' : 'audit', type: 'certificate.issued', body: { note: i === 17 ? MARKER : `record-${i}` } }, base.key);
      }
      const witness = new Witness({ outbox, log: new LogClient({ collectorUrl: collector.url, timeouts: { connectMs: 1000, responseMs: 1000 } }), key: base.key, logger, backoff: { baseMs: 10, maxMs: 100 } });
      const syncer = new Syncer({
        outbox,
        client: new BatchClient({ collectorUrl: collector.url, origin: collector.origin, agent: TEST_AGENT, key: base.key, timeouts: { connectMs: 1000, responseMs: 1000 } }),
        witness,
        key: base.key,
        logger,
        batch: { maxRecords: 10, maxBytes: 1 << 20 },
        backoff: { baseMs: 10, maxMs: 100 },
        circuit: { failureThreshold: 3, cooldownMs: 60_000 },
        refusedRetryMs: 600_000,
        idleIntervalMs: 10,
      });
      assert.deepEqual(await syncer.drain(), { acknowledged: ACKED, batches: 3 });
      assert.equal(outbox.witnessCheckpoint()?.size, ACKED);
      for (let i = 1; i <= PENDING; i++) outbox.append({ kind: 'audit', type: 'certificate.issued', body: { note: `pending-${i}` } }, base.key);
    } finally {
      outbox.close(); // the last connection: the WAL is checkpointed into the main file
      await collector.stop();
    }
    scratch = mkdtempSync(join(tmpdir(), 'sakshya-tamper-'));
  });

  after(() => {
    base?.remove();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** A copy of the agent directory, changed by `tamper` through a plain SQLite connection. */
  function tampered(tamper: (db: Database.Database) => void): string {
    const dir = join(scratch, `agent-${++copies}`);
    cpSync(base.dir, dir, { recursive: true });
    const db = new Database(outboxPath(dir));
    try {
      db.pragma('foreign_keys = OFF'); // an intruder is not bound by the schema's promises
      tamper(db);
    } finally {
      db.close();
    }
    return dir;
  }

  async function verify(dir: string): Promise<{ code: number | null; report: VerifyReport }> {
    const result = await runAgentCli(['verify', '--json'], { SAKSHYA_AGENT_DIR: dir });
    assert.ok(result.stdout.length > 0, result.stderr);
    return { code: result.code, report: JSON.parse(result.stdout) as VerifyReport };
  }

  /** Asserts exit 1 and that the report names each expected problem (a subset of its fields). */
  async function assertDamaged(dir: string, expected: Array<Partial<VerifyProblem>>): Promise<VerifyReport> {
    const { code, report } = await verify(dir);
    assert.equal(code, 1, 'exit code');
    assert.equal(report.ok, false);
    for (const want of expected) {
      const found = report.problems.find((p) => Object.entries(want).every(([k, v]) => (p as unknown as { [k: string]: unknown })[k] === v));
      assert.ok(found, `no problem like ${JSON.stringify(want)} in ${JSON.stringify(report.problems, null, 1)}`);
    }
    return report;
  }

  const row = (db: Database.Database, seq: number) =>
    db.prepare('SELECT id, canonical, hash FROM records WHERE epoch = 1 AND seq = ?').get(seq) as { id: string; canonical: string; hash: string };

  /** The same string with the character at `at` replaced by another of the same byte length. */
  function changeOneChar(text: string, at: number): string {
    const c = text[at]!;
    const replacement = c === 'a' ? 'b' : c === '0' ? '1' : c === 'A' ? 'B' : /[a-z]/.test(c) ? 'a' : /[0-9]/.test(c) ? '0' : 'A';
    return text.slice(0, at) + replacement + text.slice(at + 1);
  }

  it('passes the untouched outbox (exit 0) and says what it checked', async () => {
    const { code, report } = await verify(tampered(() => undefined));
    assert.equal(code, 0, JSON.stringify(report.problems));
    assert.equal(report.ok, true);
    assert.deepEqual(report.checked, { records: ACKED + PENDING, epochs: 1, receipts: 3, acknowledged: ACKED, witnessCheckpoint: ACKED });
    assert.deepEqual(report.problems, []);
    const text = await runAgentCli(['verify'], { SAKSHYA_AGENT_DIR: base.dir });
    assert.equal(text.code, 0);
    assert.match(text.stdout, /^outbox intact: 35 records in 1 epoch\(s\), 30 acknowledged, 3 receipts$/m);
  });

  it('names the record when one byte of the SQLite file itself is changed', async () => {
    const dir = tampered(() => undefined);
    const file = outboxPath(dir);
    const bytes = readFileSync(file);
    const at = bytes.indexOf(MARKER);
    assert.ok(at > 0 && bytes.indexOf(MARKER, at + 1) < 0, 'the marker is stored once');
    bytes[at + MARKER.length - 1] ^= 0x01; // '7' → '6'
    writeFileSync(file, bytes);
    const original = new Database(outboxPath(base.dir), { readonly: true });
    const { id } = row(original, 17);
    original.close();
    await assertDamaged(dir, [
      { table: 'records', seq: 17, id, check: 'bad_signature' },
      { table: 'records', seq: 17, id, check: 'hash_mismatch' },
      { table: 'records', seq: 18, check: 'prev_mismatch' },
    ]);
    const text = await runAgentCli(['verify'], { SAKSHYA_AGENT_DIR: dir });
    assert.equal(text.code, 1);
    assert.match(text.stdout, new RegExp(`^records epoch 1 seq 17 record ${id}: bad_signature: `, 'm'));
    assert.match(text.stdout, /^outbox DAMAGED: \d+ problem\(s\)/m);
  });

  describe('records', () => {
    it('names a record whose canonical text lost one byte of its signed body', async () => {
      let id = '';
      let expectedHash = '';
      const dir = tampered((db) => {
        const r = row(db, 5);
        id = r.id;
        expectedHash = r.hash;
        const changed = r.canonical.replace('record-5', 'record-6');
        db.prepare('UPDATE records SET canonical = ? WHERE seq = 5').run(changed);
      });
      const report = await assertDamaged(dir, [
        { table: 'records', seq: 5, id, check: 'bad_signature' },
        { table: 'records', seq: 5, id, check: 'hash_mismatch', found: expectedHash },
        { table: 'records', seq: 6, check: 'prev_mismatch', found: originalPrevOf6() },
      ]);
      assert.ok(report.problems.every((p) => p.seq === 5 || p.seq === 6), JSON.stringify(report.problems));
    });

    it('names a record whose text is no longer canonical, though every value is the same', async () => {
      const dir = tampered((db) => {
        const r = row(db, 8);
        db.prepare('UPDATE records SET canonical = ? WHERE seq = 8').run(r.canonical.replace('{"agent"', '{ "agent"'));
      });
      await assertDamaged(dir, [{ table: 'records', seq: 8, check: 'not_canonical' }, { table: 'records', seq: 8, check: 'hash_mismatch' }]);
    });

    it('names a record whose stored hash changed by one character', async () => {
      let original = '';
      const dir = tampered((db) => {
        original = row(db, 9).hash;
        db.prepare('UPDATE records SET hash = ? WHERE seq = 9').run(changeOneChar(original, 10));
      });
      const report = await assertDamaged(dir, [{ table: 'records', seq: 9, check: 'hash_mismatch', expected: original }]);
      assert.equal(report.problemCount, 1, 'the chain links are checked against recomputed hashes, so only the row itself is wrong');
    });

    it('names the gap when a record is deleted', async () => {
      const dir = tampered((db) => db.prepare('DELETE FROM records WHERE seq = 12').run());
      await assertDamaged(dir, [{ table: 'records', seq: 13, check: 'seq_gap', expected: 12, found: 13 }]);
    });

    it('names the chain head when the newest record is deleted', async () => {
      const dir = tampered((db) => db.prepare('DELETE FROM records WHERE seq = ?').run(ACKED + PENDING));
      await assertDamaged(dir, [
        { table: 'chains', epoch: 1, check: 'head_seq_mismatch', expected: ACKED + PENDING - 1, found: ACKED + PENDING },
        { table: 'chains', epoch: 1, check: 'head_hash_mismatch' },
      ]);
    });

    it('names both rows when two records swap places', async () => {
      const dir = tampered((db) => {
        const a = db.prepare('SELECT * FROM records WHERE seq = 3').get() as { [k: string]: unknown };
        const b = db.prepare('SELECT * FROM records WHERE seq = 4').get() as { [k: string]: unknown };
        const put = db.prepare('UPDATE records SET id = ?, kind = ?, at = ?, hash = ?, canonical = ?, bytes = ? WHERE seq = ?');
        db.transaction(() => {
          db.prepare("UPDATE records SET id = 'swap' WHERE seq = 3").run();
          put.run(a.id, a.kind, a.at, a.hash, a.canonical, a.bytes, 4);
          put.run(b.id, b.kind, b.at, b.hash, b.canonical, b.bytes, 3);
        })();
      });
      await assertDamaged(dir, [
        { table: 'records', seq: 3, check: 'field_mismatch', expected: 3, found: 4 },
        { table: 'records', seq: 4, check: 'field_mismatch', expected: 4, found: 3 },
        { table: 'records', seq: 3, check: 'prev_mismatch' },
        { table: 'records', seq: 4, check: 'prev_mismatch' },
      ]);
    });

    it('names an acknowledged record that lost its receipt link, and a pending one that gained one', async () => {
      const dir = tampered((db) => {
        const batch = db.prepare('SELECT acked_batch FROM records WHERE seq = 7').pluck().get();
        db.prepare('UPDATE records SET acked_batch = NULL WHERE seq = 7').run();
        db.prepare('UPDATE records SET acked_batch = ? WHERE seq = ?').run(batch, ACKED + 2);
      });
      await assertDamaged(dir, [
        { table: 'records', seq: 7, check: 'not_acknowledged' },
        { table: 'records', seq: ACKED + 2, check: 'acked_beyond_prefix' },
      ]);
    });
  });

  describe('chains', () => {
    it('names a chain head whose hash changed', async () => {
      const dir = tampered((db) => db.prepare("UPDATE chains SET head_hash = (CASE WHEN substr(head_hash, 1, 1) = 'B' THEN 'C' ELSE 'B' END) || substr(head_hash, 2)").run());
      await assertDamaged(dir, [{ table: 'chains', epoch: 1, check: 'head_hash_mismatch' }]);
    });

    it('names an acknowledged prefix moved beyond what any receipt covers', async () => {
      const dir = tampered((db) => db.prepare('UPDATE chains SET acked_seq = ?').run(ACKED + 2));
      await assertDamaged(dir, [
        { table: 'records', seq: ACKED + 1, check: 'not_acknowledged' },
        { table: 'records', seq: ACKED + 2, check: 'not_acknowledged' },
      ]);
    });
  });

  describe('receipts', () => {
    it('names a receipt whose text changed by one byte', async () => {
      let batchId = '';
      const dir = tampered((db) => {
        const r = db.prepare('SELECT batch_id, receipt FROM receipts ORDER BY highest_seq LIMIT 1').get() as { batch_id: string; receipt: string };
        batchId = r.batch_id;
        db.prepare('UPDATE receipts SET receipt = ? WHERE batch_id = ?').run(r.receipt.replace('"duplicates":0', '"duplicates":1'), batchId);
      });
      await assertDamaged(dir, [{ table: 'receipts', batchId, check: 'bad_signature' }, { table: 'receipts', batchId, check: 'field_mismatch', expected: 0, found: 1 }]);
    });

    it('names a receipt whose signature changed by one character', async () => {
      let batchId = '';
      const dir = tampered((db) => {
        const r = db.prepare('SELECT batch_id, signature FROM receipts ORDER BY highest_seq DESC LIMIT 1').get() as { batch_id: string; signature: string };
        batchId = r.batch_id;
        db.prepare('UPDATE receipts SET signature = ? WHERE batch_id = ?').run(changeOneChar(r.signature, r.signature.length - 20), batchId);
      });
      await assertDamaged(dir, [{ table: 'receipts', batchId, check: 'bad_signature' }]);
    });

    it('names the records whose receipt was deleted', async () => {
      const dir = tampered((db) => {
        const batch = db.prepare('SELECT acked_batch FROM records WHERE seq = 15').pluck().get();
        db.prepare('DELETE FROM receipts WHERE batch_id = ?').run(batch);
      });
      await assertDamaged(dir, [{ table: 'records', seq: 11, check: 'receipt_missing' }, { table: 'records', seq: 20, check: 'receipt_missing' }]);
    });

    it('names both receipts when two swap their contents', async () => {
      const dir = tampered((db) => {
        const [a, b] = db.prepare('SELECT batch_id, receipt, signature FROM receipts ORDER BY highest_seq LIMIT 2').all() as Array<{ batch_id: string; receipt: string; signature: string }>;
        const put = db.prepare('UPDATE receipts SET receipt = ?, signature = ? WHERE batch_id = ?');
        put.run(b!.receipt, b!.signature, a!.batch_id);
        put.run(a!.receipt, a!.signature, b!.batch_id);
      });
      const report = await assertDamaged(dir, [{ table: 'receipts', check: 'field_mismatch' }]);
      assert.equal(new Set(report.problems.filter((p) => p.table === 'receipts').map((p) => p.batchId)).size, 2);
    });
  });

  describe('witness_checkpoint', () => {
    it('names a stored checkpoint whose signed note changed', async () => {
      const dir = tampered((db) => db.prepare("UPDATE witness_checkpoint SET note = replace(note, char(10) || '30' || char(10), char(10) || '31' || char(10))").run());
      await assertDamaged(dir, [{ table: 'witness_checkpoint', check: 'bad_signature' }]);
    });

    it('names a stored root that is not the signed checkpoint\u2019s', async () => {
      const dir = tampered((db) => db.prepare("UPDATE witness_checkpoint SET root = (CASE WHEN substr(root, 1, 1) = 'A' THEN 'B' ELSE 'A' END) || substr(root, 2)").run());
      await assertDamaged(dir, [{ table: 'witness_checkpoint', check: 'field_mismatch' }]);
    });
  });

  /** Record 6's prev in the untouched outbox: the hash of the original record 5. */
  function originalPrevOf6(): string {
    const db = new Database(outboxPath(base.dir), { readonly: true });
    try {
      const text = db.prepare('SELECT canonical FROM records WHERE seq = 6').pluck().get() as string;
      return (JSON.parse(text) as { prev: string }).prev;
    } finally {
      db.close();
    }
  }
});
