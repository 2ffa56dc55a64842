/**
 * `sakshya-collector ledger verify` against an intruder with write access to the SQLite file.
 *
 * One real collector database is built through the HTTP API (three agents, interleaved
 * batches, a duplicates-only batch), then the collector is stopped. Each test copies it, drops
 * the append-only triggers (as an intruder would), changes one table — one byte of one row,
 * one deleted row, or two rows swapped — and runs the real CLI on the copy: it must exit
 * non-zero and name the table and the row, without blaming intact tables.
 */
import { sqliteOnly } from '../../helpers/postgres.ts';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { SignedReceipt } from '../../../shared/protocol.ts';
import type { AuditFinding, AuditTable } from '../../../collector/services/ledger-audit.ts';
import { runCollectorCli, startCollectorInProcess } from '../../helpers/collector-process.ts';
import { APPEND_ONLY_TRIGGER_NAMES, ledgerVerify, tamperedCopy as tamperedCollectorCopy } from '../../helpers/tampered-collector.ts';
import { TestAgent } from './test-agent.ts';

type Db = Database.Database;

const TRIGGERS = APPEND_ONLY_TRIGGER_NAMES;

/** Returns `text` with the character at `index` replaced by a different one of the same class. */
function changeOneByte(text: string, index: number): string {
  const old = text[index]!;
  const replacement = /[0-9]/.test(old) ? String((Number(old) + 1) % 10) : old === 'A' ? 'B' : 'A';
  return text.slice(0, index) + replacement + text.slice(index + 1);
}

function flipByte(bytes: Buffer, index = 0): Buffer {
  const copy = Buffer.from(bytes);
  copy[index]! ^= 0x01;
  return copy;
}

describe('sakshya-collector ledger verify against a tampered database', function () {
  before(function () {
    sqliteOnly(this, 'it tampers with the SQLite file itself; its PostgreSQL twin is test/integration/collector/postgres-collector.test.ts');
  });
  this.timeout(60_000);
  let pristine: string;
  const receipts: { [name: string]: SignedReceipt } = {};
  const agents: { [name: string]: string } = {};

  before(async () => {
    const collector = await startCollectorInProcess();
    try {
      const enroll = async (name: string, id: string) => {
        const agent = new TestAgent(id, collector.url, collector.origin);
        const { token } = await collector.container.enrollment.issueToken(id);
        assert.equal((await agent.enroll(token)).status, 200);
        agents[name] = id;
        return agent;
      };
      const a = await enroll('a', 'AS-TMP-001');
      const b = await enroll('b', 'AS-TMP-002');
      const c = await enroll('c', 'AS-TMP-003');
      const aFirst = a.records(4);
      receipts.a1 = await a.sendOk(a.batch(aFirst)); // ledger 6…9
      receipts.b1 = await b.sendOk(b.batch(b.records(3))); // 10…12
      receipts.a2 = await a.sendOk(a.batch(a.records(2))); // 13…14
      receipts.c1 = await c.sendOk(c.batch(c.records(5))); // 15…19
      receipts.b2 = await b.sendOk(b.batch(b.records(1))); // 20
      receipts.aDup = await a.sendOk(a.batch(aFirst.slice(0, 2))); // duplicates only: no entries
      receipts.a3 = await a.sendOk(a.batch(a.records(3))); // 21…23
      assert.deepEqual(receipts.c1!.receipt.ledger, { first: 15, last: 19 });
      assert.equal(receipts.aDup!.receipt.ledger, null);
    } finally {
      await collector.stop();
    }
    pristine = collector.dir;
  });

  /** A copy of the collector directory whose database `tamper` changed, triggers dropped first. */
  function tamperedCopy(tamper: (db: Db) => void, options: { dropTriggers?: boolean } = {}): string {
    return tamperedCollectorCopy(pristine, tamper, { dropTriggers: options.dropTriggers !== false });
  }

  const verify = ledgerVerify;

  /** Verifies a tampered copy: non-zero exit, and the findings other than the dropped triggers. */
  async function verifyTampered(tamper: (db: Db) => void): Promise<AuditFinding[]> {
    const { code, report } = await verify(tamperedCopy(tamper));
    assert.notEqual(code, 0);
    assert.equal(report.intact, false);
    const guards = report.findings.filter((f) => f.table === 'schema');
    assert.deepEqual(guards.map((f) => f.row.name).sort(), [...TRIGGERS].sort(), 'the dropped triggers are reported');
    return report.findings.filter((f) => f.table !== 'schema');
  }

  function named(findings: AuditFinding[], table: AuditTable, row: AuditFinding['row'], check?: string): AuditFinding {
    const found = findings.find(
      (f) => f.table === table && (check === undefined || f.check === check) && Object.entries(row).every(([key, value]) => f.row[key as keyof typeof row] === value),
    );
    assert.ok(found, `no finding for ${table} ${JSON.stringify(row)}${check ? ` (${check})` : ''} in:\n${JSON.stringify(findings, null, 1)}`);
    return found;
  }

  function onlyIn(findings: AuditFinding[], ...tables: AuditTable[]): void {
    const others = findings.filter((f) => !tables.includes(f.table));
    assert.deepEqual(others, [], `findings outside ${tables.join(', ')}`);
  }

  function recordAt(db: Db, agent: string, seq: number): { ledger_index: number; id: string; canonical: string } {
    return db.prepare('SELECT ledger_index, id, canonical FROM records WHERE agent = ? AND seq = ?').get(agent, seq) as {
      ledger_index: number;
      id: string;
      canonical: string;
    };
  }

  it('exits 0 and reports intact for the untouched database, in JSON and as text', async () => {
    const { code, report } = await verify(pristine);
    assert.equal(code, 0, JSON.stringify(report.findings));
    assert.equal(report.intact, true);
    assert.deepEqual(report.findings, []);
    assert.deepEqual(report.checked, { records: 24, chains: 4, subtrees: 2 * 24 - 2, checkpoints: 13, receipts: 7 });
    assert.deepEqual(report.ledger, { size: 24, root: receipts.a3!.receipt.checkpoint.root });
    const text = await runCollectorCli(['ledger', 'verify'], { SAKSHYA_COLLECTOR_DIR: pristine });
    assert.equal(text.code, 0);
    assert.match(text.stdout, /^ledger intact: 24 records in 4 chains/);
  });

  it('reports dropped append-only triggers even when no data changed', async () => {
    const { code, report } = await verify(tamperedCopy(() => {}));
    assert.notEqual(code, 0);
    assert.deepEqual(report.findings.map((f) => `${f.table}/${f.check}/${f.row.name}`).sort(), TRIGGERS.map((t) => `schema/guard_missing/${t}`).sort());
  });

  describe('records', () => {
    it('names the record whose canonical text lost one byte: its hashes and signature no longer match', async () => {
      let target!: { ledger_index: number; id: string };
      const findings = await verifyTampered((db) => {
        const row = recordAt(db, agents.a!, 2);
        target = row;
        const at = row.canonical.indexOf('Z"', row.canonical.indexOf('"at":"'));
        db.prepare('UPDATE records SET canonical = ? WHERE ledger_index = ?').run(changeOneByte(row.canonical, at - 1), row.ledger_index);
      });
      const rowRef = { ledger_index: target.ledger_index, id: target.id, agent: agents.a!, seq: 2 };
      for (const check of ['record_hash', 'leaf_hash', 'signature']) named(findings, 'records', rowRef, check);
      const signedRoot = named(findings, 'records', {}, 'signed_root');
      const [, from, to] = /an entry in (\d+)…(\d+)/.exec(signedRoot.message)!;
      assert.ok(Number(from) <= target.ledger_index && target.ledger_index <= Number(to), signedRoot.message);
      onlyIn(findings, 'records');
      const hash = findings.find((f) => f.check === 'record_hash')!;
      assert.notEqual(hash.expected, hash.found);
    });

    it('names the hole left by a deleted record, the broken chain after it, and agents list shows the gap', async () => {
      let deleted!: number;
      const dir = tamperedCopy((db) => {
        deleted = recordAt(db, agents.b!, 2).ledger_index;
        db.prepare('DELETE FROM records WHERE ledger_index = ?').run(deleted);
      });
      const { code, report } = await verify(dir);
      assert.notEqual(code, 0);
      const findings = report.findings.filter((f) => f.table !== 'schema');
      const hole = named(findings, 'records', { ledger_index: deleted + 1 }, 'ledger_index');
      assert.match(hole.message, new RegExp(`index ${deleted} is missing`));
      const chain = named(findings, 'records', { agent: agents.b!, seq: 3 }, 'chain_seq');
      assert.match(chain.message, /seqs 2…2 are missing/);
      // The per-kind counter still counts the deleted record.
      const counter = named(findings, 'ledger_kind_counts', { kind: 'audit' }, 'count');
      assert.equal(Number(counter.found) - Number(counter.expected), 1);
      onlyIn(findings, 'records', 'ledger_kind_counts');

      const list = await runCollectorCli(['agents', 'list', '--json'], { SAKSHYA_COLLECTOR_DIR: dir });
      assert.equal(list.code, 0, list.stderr);
      const row = (JSON.parse(list.stdout) as { agent: string; gaps: unknown }[]).find((entry) => entry.agent === agents.b)!;
      assert.deepEqual(row.gaps, [{ from: 2, to: 2 }]);
    });

    it('names both records of two rows swapped in ledger order', async () => {
      let first!: { ledger_index: number; id: string };
      let second!: { ledger_index: number; id: string };
      const findings = await verifyTampered((db) => {
        first = recordAt(db, agents.a!, 3);
        second = recordAt(db, agents.c!, 2);
        const move = db.prepare('UPDATE records SET ledger_index = ? WHERE ledger_index = ?');
        move.run(1_000_000, first.ledger_index);
        move.run(first.ledger_index, second.ledger_index);
        move.run(second.ledger_index, 1_000_000);
      });
      named(findings, 'records', { ledger_index: first.ledger_index, id: second.id }, 'merkle_leaf');
      named(findings, 'records', { ledger_index: second.ledger_index, id: first.id }, 'merkle_leaf');
      named(findings, 'records', { id: second.id }, 'chain_seq');
      named(findings, 'records', {}, 'signed_root');
      assert.equal(findings.some((f) => f.table === 'merkle_subtrees' || f.table === 'checkpoints'), false, 'the tree and checkpoints are not blamed');
    });
  });

  describe('merkle_subtrees', () => {
    for (const [level, index] of [
      [0, 9],
      [2, 3],
    ] as const) {
      it(`names the stored node (level ${level}, index ${index}) with one changed byte, and nothing else`, async () => {
        const findings = await verifyTampered((db) => {
          const hash = db.prepare('SELECT hash FROM merkle_subtrees WHERE level = ? AND idx = ?').pluck().get(level, index) as Buffer;
          db.prepare('UPDATE merkle_subtrees SET hash = ? WHERE level = ? AND idx = ?').run(flipByte(hash, 31), level, index);
        });
        const finding = named(findings, 'merkle_subtrees', { level, idx: index }, 'hash');
        assert.equal(Buffer.from(finding.found!, 'hex')[31]! ^ Buffer.from(finding.expected!, 'hex')[31]!, 0x01);
        assert.equal(findings.length, 1, JSON.stringify(findings));
      });
    }

    it('names a deleted node', async () => {
      const findings = await verifyTampered((db) => db.exec('DELETE FROM merkle_subtrees WHERE level = 1 AND idx = 5'));
      named(findings, 'merkle_subtrees', { level: 1, idx: 5 }, 'missing');
      onlyIn(findings, 'merkle_subtrees');
    });

    it('names both leaf nodes of two swapped hashes, not the records', async () => {
      const findings = await verifyTampered((db) => {
        const read = db.prepare('SELECT hash FROM merkle_subtrees WHERE level = 0 AND idx = ?').pluck();
        const write = db.prepare('UPDATE merkle_subtrees SET hash = ? WHERE level = 0 AND idx = ?');
        const [x, y] = [read.get(3) as Buffer, read.get(17) as Buffer];
        write.run(y, 3);
        write.run(x, 17);
      });
      named(findings, 'merkle_subtrees', { level: 0, idx: 3 }, 'hash');
      named(findings, 'merkle_subtrees', { level: 0, idx: 17 }, 'hash');
      onlyIn(findings, 'merkle_subtrees');
    });
  });

  describe('checkpoints', () => {
    it('names the checkpoint whose signed note lost one byte', async () => {
      const size = receipts.a2!.receipt.checkpoint.size;
      const findings = await verifyTampered((db) => {
        const note = db.prepare('SELECT note FROM checkpoints WHERE size = ?').pluck().get(size) as string;
        const rootLine = note.indexOf('\n', note.indexOf('\n') + 1) + 1;
        db.prepare('UPDATE checkpoints SET note = ? WHERE size = ?').run(changeOneByte(note, rootLine + 5), size);
      });
      named(findings, 'checkpoints', { size }, 'signature');
      onlyIn(findings, 'checkpoints');
    });

    it('names a checkpoint whose root column lost one byte', async () => {
      const size = receipts.b1!.receipt.checkpoint.size;
      const findings = await verifyTampered((db) => {
        const root = db.prepare('SELECT root FROM checkpoints WHERE size = ?').pluck().get(size) as Buffer;
        db.prepare('UPDATE checkpoints SET root = ? WHERE size = ?').run(flipByte(root), size);
      });
      named(findings, 'checkpoints', { size }, 'root');
      onlyIn(findings, 'checkpoints');
    });

    it('names a deleted checkpoint that a receipt names and a chain boundary needs', async () => {
      const size = receipts.a2!.receipt.checkpoint.size;
      const findings = await verifyTampered((db) => db.prepare('DELETE FROM checkpoints WHERE size = ?').run(size));
      const missing = findings.filter((f) => f.table === 'checkpoints' && f.check === 'missing' && f.row.size === size);
      assert.ok(missing.length >= 1, JSON.stringify(findings));
      onlyIn(findings, 'checkpoints');
    });

    it('names both checkpoints of two rows with swapped root and note', async () => {
      const [x, y] = [receipts.b1!.receipt.checkpoint.size, receipts.b2!.receipt.checkpoint.size];
      const findings = await verifyTampered((db) => {
        const read = db.prepare('SELECT root, note FROM checkpoints WHERE size = ?');
        const write = db.prepare('UPDATE checkpoints SET root = ?, note = ? WHERE size = ?');
        const [rx, ry] = [read.get(x) as { root: Buffer; note: string }, read.get(y) as { root: Buffer; note: string }];
        write.run(ry.root, ry.note, x);
        write.run(rx.root, rx.note, y);
      });
      for (const size of [x, y]) {
        named(findings, 'checkpoints', { size }, 'note_size');
        named(findings, 'checkpoints', { size }, 'root');
      }
      onlyIn(findings, 'checkpoints');
    });
  });

  describe('agent_epochs (chain heads)', () => {
    it('names the chain whose head hash lost one byte', async () => {
      const findings = await verifyTampered((db) => {
        const hash = db.prepare('SELECT highest_hash FROM agent_epochs WHERE agent = ?').pluck().get(agents.b) as string;
        db.prepare('UPDATE agent_epochs SET highest_hash = ? WHERE agent = ?').run(changeOneByte(hash, 10), agents.b);
      });
      named(findings, 'agent_epochs', { agent: agents.b!, epoch: 1 }, 'chain_head');
      onlyIn(findings, 'agent_epochs');
    });

    it('names a deleted chain row, whose records can no longer be checked', async () => {
      const findings = await verifyTampered((db) => db.prepare('DELETE FROM agent_epochs WHERE agent = ?').run(agents.c));
      const missing = named(findings, 'agent_epochs', { agent: agents.c!, epoch: 1 }, 'missing_row');
      assert.match(missing.message, /5 ledger entries/);
      onlyIn(findings, 'agent_epochs');
    });

    it('names both chains of two swapped heads', async () => {
      const findings = await verifyTampered((db) => {
        const read = db.prepare('SELECT highest_seq, highest_hash FROM agent_epochs WHERE agent = ?');
        const write = db.prepare('UPDATE agent_epochs SET highest_seq = ?, highest_hash = ? WHERE agent = ?');
        const [ha, hb] = [read.get(agents.a) as { highest_seq: number; highest_hash: string }, read.get(agents.b) as { highest_seq: number; highest_hash: string }];
        write.run(hb.highest_seq, hb.highest_hash, agents.a);
        write.run(ha.highest_seq, ha.highest_hash, agents.b);
      });
      named(findings, 'agent_epochs', { agent: agents.a! }, 'chain_head');
      named(findings, 'agent_epochs', { agent: agents.b! }, 'chain_head');
      onlyIn(findings, 'agent_epochs');
    });
  });

  describe('receipts', () => {
    it('names the receipt whose signature lost one byte', async () => {
      const batchId = receipts.b1!.receipt.batchId;
      const findings = await verifyTampered((db) => {
        const signature = db.prepare('SELECT signature FROM receipts WHERE batch_id = ?').pluck().get(batchId) as string;
        db.prepare('UPDATE receipts SET signature = ? WHERE batch_id = ?').run(changeOneByte(signature, signature.length - 10), batchId);
      });
      named(findings, 'receipts', { batch_id: batchId }, 'signature');
      onlyIn(findings, 'receipts');
    });

    it('names the ledger entries a deleted receipt covered', async () => {
      const { batchId, ledger } = receipts.c1!.receipt;
      const findings = await verifyTampered((db) => db.prepare('DELETE FROM receipts WHERE batch_id = ?').run(batchId));
      const missing = named(findings, 'receipts', { ledger_index: ledger!.first }, 'missing');
      assert.match(missing.message, new RegExp(`5 agent ledger entries in ${ledger!.first}…${ledger!.last}`));
      onlyIn(findings, 'receipts');
    });

    it('names both receipts of two rows with swapped contents', async () => {
      const [x, y] = [receipts.a1!.receipt.batchId, receipts.b2!.receipt.batchId];
      const findings = await verifyTampered((db) => {
        const read = db.prepare('SELECT receipt_json, signature FROM receipts WHERE batch_id = ?');
        const write = db.prepare('UPDATE receipts SET receipt_json = ?, signature = ? WHERE batch_id = ?');
        const [rx, ry] = [read.get(x) as { receipt_json: string; signature: string }, read.get(y) as { receipt_json: string; signature: string }];
        write.run(ry.receipt_json, ry.signature, x);
        write.run(rx.receipt_json, rx.signature, y);
      });
      named(findings, 'receipts', { batch_id: x }, 'batch_id');
      named(findings, 'receipts', { batch_id: y }, 'batch_id');
      onlyIn(findings, 'receipts');
    });
  });

  it('keeps going: several tables changed at once are all named, and the text output names each table and row', async () => {
    const dir = tamperedCopy((db) => {
      db.exec(`UPDATE merkle_subtrees SET hash = zeroblob(32) WHERE level = 3 AND idx = 1`);
      db.prepare('DELETE FROM checkpoints WHERE size = ?').run(receipts.b2!.receipt.checkpoint.size);
      db.prepare(`UPDATE agent_epochs SET highest_seq = highest_seq + 1 WHERE agent = ?`).run(agents.c);
    });
    const result = await runCollectorCli(['ledger', 'verify'], { SAKSHYA_COLLECTOR_DIR: dir });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stdout, /^LEDGER NOT INTACT: \d+ problems/);
    assert.match(result.stdout, /^merkle_subtrees\[level=3 idx=1\] hash: /m);
    assert.match(result.stdout, new RegExp(`^checkpoints\\[size=${receipts.b2!.receipt.checkpoint.size}\\] missing: `, 'm'));
    assert.match(result.stdout, new RegExp(`^agent_epochs\\[agent=${agents.c} epoch=1\\] chain_head: .*expected seq 5 hash \\S+, found seq 6 hash`, 'm'));
    assert.match(result.stdout, /^schema\[name=records_no_update\] guard_missing: /m);
  });
});
