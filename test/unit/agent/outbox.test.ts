import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { generateSigningKey, publicKeyFromJwk } from '../../../shared/crypto.ts';
import { recordSchema, type SignedReceipt } from '../../../shared/protocol.ts';
import { GENESIS_PREV, recordHash, verifyRecordSignature, type SignedRecord } from '../../../shared/record.ts';
import { canonicalJson } from '../../../shared/canonical-json.ts';
import {
  OutboxError,
  OutboxNotInitialisedError,
  OutboxSchemaError,
  RecordRejectedError,
  SqliteOutbox,
} from '../../../agent/outbox/sqlite-outbox.ts';
import { CURRENT_SCHEMA_VERSION, MIGRATIONS } from '../../../agent/outbox/migrations/migration-list.ts';
import { migration0001 } from '../../../agent/outbox/migrations/0001-initial.ts';
import { runAgentCli } from '../../helpers/agent-process.ts';
import { makeTestAgentDir, TEST_AGENT, type TestAgentDir } from './support/agent-dir.ts';

const APPEND_LOOP = fileURLToPath(new URL('./support/append-loop.ts', import.meta.url));

/** Reads every record of epoch 1 and checks seq 1..n gapless, prev links and signatures. */
function assertChain(outbox: SqliteOutbox, expectedCount: number): SignedRecord[] {
  const records: SignedRecord[] = [];
  const publicKey = publicKeyFromJwk(outbox.pins().kid === agentKid ? agentJwk : undefined);
  let prev = GENESIS_PREV;
  for (let seq = 1; seq <= expectedCount; seq++) {
    const stored = outbox.record(seq);
    assert.ok(stored, `record ${seq} exists`);
    const record = JSON.parse(stored.canonical) as SignedRecord;
    assert.equal(canonicalJson(record), stored.canonical, 'stored text is canonical');
    assert.equal(record.seq, seq);
    assert.equal(record.prev, prev, `record ${seq} links to record ${seq - 1}`);
    assert.equal(recordHash(record), stored.hash);
    assert.equal(verifyRecordSignature(record, publicKey), true, `record ${seq} signature verifies`);
    assert.equal(recordSchema.safeParse(record).success, true);
    prev = stored.hash;
    records.push(record);
  }
  assert.equal(outbox.record(expectedCount + 1), undefined, 'nothing past the head');
  assert.equal(outbox.chain().headSeq, expectedCount);
  assert.equal(outbox.chain().headHash, expectedCount === 0 ? GENESIS_PREV : prev);
  return records;
}

/** The public key of the agent under test (set per test). */
let agentJwk: unknown;
let agentKid: string;

function signedReceipt(outbox: SqliteOutbox, highestSeq: number, batchId = crypto.randomUUID()): SignedReceipt {
  const pins = outbox.pins();
  return {
    receipt: {
      v: 1,
      collector: pins.origin,
      batchId,
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
}

function runChild(args: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
}

describe('agent/outbox/sqlite-outbox', () => {
  let agent: TestAgentDir;
  let outbox: SqliteOutbox;

  beforeEach(() => {
    agent = makeTestAgentDir();
    outbox = agent.open();
    agentJwk = agent.key.publicJwk;
    agentKid = agent.key.kid;
  });

  afterEach(() => {
    outbox.close();
    agent.remove();
  });

  it('assigns gapless seqs chained by prev hashes, and keeps them across a reopen', () => {
    const first = outbox.append({ kind: 'audit', type: 'certificate.issued', body: { n: 1 } }, agent.key);
    assert.equal(first.seq, 1);
    assert.equal(first.record.prev, GENESIS_PREV);
    for (let i = 2; i <= 5; i++) outbox.append({ kind: 'audit', type: 'certificate.issued', body: { n: i } }, agent.key);
    outbox.close();
    outbox = agent.open();
    const sixth = outbox.append({ kind: 'telemetry', type: 'system.health', body: {} }, agent.key);
    assert.equal(sixth.seq, 6);
    const records = assertChain(outbox, 6);
    assert.equal(records[0]!.agent, TEST_AGENT);
    assert.equal(records[0]!.kid, agent.key.kid);
  });

  it('uses the given at, and otherwise the time of the append', () => {
    const given = outbox.append({ kind: 'audit', type: 'a.b', at: '2026-11-22T04:33:05.123Z', body: {} }, agent.key);
    assert.equal(given.record.at, '2026-11-22T04:33:05.123Z');
    const now = new Date('2027-01-02T03:04:05.006Z');
    assert.equal(outbox.append({ kind: 'audit', type: 'a.b', body: {} }, agent.key, now).record.at, now.toISOString());
  });

  it('refuses a bad kind, type, at or body with a clear error and stores nothing', () => {
    const bad = [
      { kind: 'gossip', type: 'a.b', body: {} },
      { kind: 'audit', type: 'NotDotted', body: {} },
      { kind: 'audit', type: 'a.b', at: 'yesterday', body: {} },
      { kind: 'audit', type: 'a.b', body: [1, 2] },
      { kind: 'audit', type: 'a.b', body: { big: 'x'.repeat(70 * 1024) } },
      { kind: 'audit', type: 'a.b', body: {}, extra: true },
    ];
    for (const input of bad) {
      assert.throws(() => outbox.append(input as never, agent.key), RecordRejectedError, JSON.stringify(input).slice(0, 80));
    }
    assert.equal(outbox.chain().headSeq, 0);
    assert.equal(outbox.append({ kind: 'audit', type: 'a.b', body: {} }, agent.key).seq, 1);
  });

  it('refuses to sign with a key other than the enrolled one', () => {
    assert.throws(() => outbox.append({ kind: 'audit', type: 'a.b', body: {} }, generateSigningKey().key), OutboxError);
    assert.equal(outbox.chain().headSeq, 0);
  });

  it('keeps the chain gapless when two processes append at the same time', async function () {
    this.timeout(30_000);
    const perProcess = 150;
    const codes = await Promise.all(['a', 'b'].map((tag) => runChild([APPEND_LOOP, agent.dir, String(perProcess), tag])));
    assert.deepEqual(codes, [0, 0]);
    const records = assertChain(outbox, 2 * perProcess);
    const tags = records.map((r) => r.body.tag);
    assert.equal(tags.filter((t) => t === 'a').length, perProcess);
    assert.equal(tags.filter((t) => t === 'b').length, perProcess);
    assert.equal(new Set(records.map((r) => r.id)).size, 2 * perProcess, 'ids are unique');
  });

  it('keeps the chain gapless when two `emit` command loops run at the same time', async function () {
    this.timeout(30_000);
    const perLoop = 4;
    const loop = async (tag: string) => {
      const seqs: number[] = [];
      for (let i = 0; i < perLoop; i++) {
        const result = await runAgentCli(['emit', '--kind', 'audit', '--type', 'test.emit', '--body', JSON.stringify({ tag, i })], { SAKSHYA_AGENT_DIR: agent.dir });
        assert.equal(result.code, 0, result.stderr);
        seqs.push((JSON.parse(result.stdout) as { seq: number }).seq);
      }
      return seqs;
    };
    const [a, b] = await Promise.all([loop('a'), loop('b')]);
    assert.deepEqual([...a!, ...b!].sort((x, y) => x - y), Array.from({ length: 2 * perLoop }, (_, i) => i + 1));
    assertChain(outbox, 2 * perLoop);
  });

  it('reads batches oldest first, bounded by record count and by bytes', () => {
    for (let i = 0; i < 20; i++) outbox.append({ kind: 'audit', type: 'a.b', body: { pad: 'x'.repeat(100), i } }, agent.key);
    const byCount = outbox.readBatch(1, { maxRecords: 7, maxBytes: 1 << 20 })!;
    assert.equal(byCount.firstSeq, 1);
    assert.equal(byCount.lastSeq, 7);
    assert.equal(byCount.records.length, 7);
    assert.equal((JSON.parse(byCount.records[0]!) as SignedRecord).seq, 1);

    const size = outbox.record(1)!.canonical.length + 1;
    const byBytes = outbox.readBatch(5, { maxRecords: 100, maxBytes: size * 3 + 10 })!;
    assert.equal(byBytes.firstSeq, 5);
    assert.equal(byBytes.records.length, 3);
    assert.ok(byBytes.bytes <= size * 3 + 10);

    const tiny = outbox.readBatch(1, { maxRecords: 100, maxBytes: 10 })!;
    assert.equal(tiny.records.length, 1, 'a record larger than the byte bound still goes alone');
    assert.equal(outbox.readBatch(21, { maxRecords: 10, maxBytes: 1 << 20 }), undefined);
  });

  it('reads a batch through an index range, not a scan of the backlog', () => {
    const plan = outbox.db
      .prepare('EXPLAIN QUERY PLAN SELECT seq, canonical, bytes FROM records WHERE epoch = ? AND seq >= ? ORDER BY seq LIMIT ?')
      .all(1, 1, 10) as Array<{ detail: string }>;
    const details = plan.map((row) => row.detail).join(' | ');
    assert.match(details, /SEARCH records USING INDEX/);
    assert.doesNotMatch(details, /TEMP B-TREE/);
  });

  it('acknowledges the prefix a receipt covers, keeps the records and the receipt, and never moves back', () => {
    for (let i = 0; i < 10; i++) outbox.append({ kind: 'audit', type: 'a.b', body: { i } }, agent.key);
    assert.deepEqual(outbox.backlog().pending, 10);
    const first = outbox.markAcknowledged(signedReceipt(outbox, 4));
    assert.deepEqual(first, { ackedSeq: 4, newlyAcked: 4 });
    assert.equal(outbox.backlog().pending, 6);
    assert.equal(outbox.backlog().oldestAt, (JSON.parse(outbox.record(5)!.canonical) as SignedRecord).at);
    assert.ok(outbox.record(4)!.ackedBatch);
    assert.equal(outbox.record(5)!.ackedBatch, null);

    const older = outbox.markAcknowledged(signedReceipt(outbox, 2));
    assert.deepEqual(older, { ackedSeq: 4, newlyAcked: 0 });
    const beyond = outbox.markAcknowledged(signedReceipt(outbox, 99));
    assert.deepEqual(beyond, { ackedSeq: 10, newlyAcked: 6 }, 'capped at the chain head');
    assert.deepEqual(outbox.backlog(), { pending: 0, oldestAt: null });
    assert.equal(outbox.acknowledgedCount(), 10);
    assert.equal(outbox.receiptCount(), 3);
    assert.ok(outbox.record(1), 'acknowledged records are kept');
  });

  it('refuses a receipt for another agent', () => {
    outbox.append({ kind: 'audit', type: 'a.b', body: {} }, agent.key);
    const receipt = signedReceipt(outbox, 1);
    receipt.receipt.agent = 'AS-OTHER-9';
    assert.throws(() => outbox.markAcknowledged(receipt), OutboxError);
    assert.equal(outbox.backlog().pending, 1);
  });

  it('keeps state values for other processes to read', () => {
    const lastError = { at: new Date().toISOString(), reason: 'network', detail: 'ECONNREFUSED', refused: false, batchId: 'b', traceId: 't', firstSeq: 1, lastSeq: 2 };
    outbox.state.sync.lastError.set(lastError);
    const other = agent.open();
    try {
      assert.deepEqual(other.state.sync.lastError.get(), lastError);
      other.state.sync.lastError.clear();
    } finally {
      other.close();
    }
    assert.equal(outbox.state.sync.lastError.get(), undefined);
  });

  it('refuses to pin a second enrollment', () => {
    assert.throws(() => outbox.pin(agent.pins), /already initialised/);
  });
});

describe('agent/outbox migrations', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'sakshya-outbox-schema-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('migrates an empty database to the expected schema, in WAL mode with synchronous FULL', () => {
    const outbox = SqliteOutbox.open(join(root, 'outbox.db'), { create: true });
    try {
      assert.equal(outbox.schemaVersion(), CURRENT_SCHEMA_VERSION);
      assert.equal(outbox.db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(outbox.db.pragma('synchronous', { simple: true }), 2);
      const columns = (table: string) => (outbox.db.pragma(`table_info(${table})`) as Array<{ name: string }>).map((c) => c.name);
      const tables = (outbox.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[]);
      assert.deepEqual(tables, ['chains', 'receipts', 'records', 'signing_keys', 'state', 'witness_checkpoint']);
      assert.deepEqual(columns('records'), ['epoch', 'seq', 'id', 'kind', 'at', 'hash', 'canonical', 'bytes', 'stored_at', 'acked_batch']);
      assert.deepEqual(columns('chains'), ['epoch', 'head_seq', 'head_hash', 'acked_seq', 'pending_bytes']);
      assert.deepEqual(columns('receipts'), ['batch_id', 'epoch', 'highest_seq', 'accepted', 'duplicates', 'receipt', 'signature', 'trace_id', 'verified_at']);
      assert.deepEqual(columns('state'), ['key', 'value']);
      assert.deepEqual(columns('witness_checkpoint'), ['slot', 'size', 'root', 'note', 'verified_at']);
      assert.deepEqual(columns('signing_keys'), ['epoch', 'from_seq', 'kid', 'public_jwk', 'key_file', 'added_at']);
    } finally {
      outbox.close();
    }
  });

  it('migrates a version 1 outbox holding records to the same schema as a fresh install, keeping every row', () => {
    const schemaOf = (db: Database.Database) =>
      db.prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").all();
    const oldPath = join(root, 'v1.db');
    const v1 = new Database(oldPath);
    v1.pragma('journal_mode = WAL');
    v1.transaction(() => {
      migration0001.up(v1);
      v1.pragma('user_version = 1');
    })();
    v1.prepare("INSERT INTO state (key, value) VALUES ('pins', '{}')").run();
    v1.prepare("INSERT INTO chains (epoch, head_seq, head_hash, acked_seq) VALUES (1, 1, 'h', 0)").run();
    v1.prepare(
      "INSERT INTO records (epoch, seq, id, kind, at, hash, canonical, bytes, stored_at) VALUES (1, 1, 'r1', 'audit', 'a', 'h', '{}', 2, 's')",
    ).run();
    v1.close();

    const migrated = SqliteOutbox.open(oldPath);
    const fresh = SqliteOutbox.open(join(root, 'fresh.db'), { create: true });
    try {
      assert.equal(migrated.schemaVersion(), CURRENT_SCHEMA_VERSION);
      assert.deepEqual(schemaOf(migrated.db), schemaOf(fresh.db));
      assert.equal(migrated.db.prepare('SELECT count(*) FROM records').pluck().get(), 1);
      assert.equal(migrated.db.prepare("SELECT value FROM state WHERE key = 'pins'").pluck().get(), '{}');
      assert.equal(migrated.witnessCheckpoint(), undefined);
      assert.equal(migrated.pendingBytes(), 2, 'the buffer total counts the unacknowledged record (migration 0004)');
    } finally {
      migrated.close();
      fresh.close();
    }
  });

  it('migrates from every earlier version to the same schema as a fresh install', () => {
    const schemaOf = (db: Database.Database) =>
      db.prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").all();
    const fresh = SqliteOutbox.open(join(root, 'fresh.db'), { create: true });
    try {
      for (let version = 1; version < CURRENT_SCHEMA_VERSION; version++) {
        const path = join(root, `v${version}.db`);
        const old = new Database(path);
        old.transaction(() => {
          for (const migration of MIGRATIONS.slice(0, version)) migration.up(old);
          old.pragma(`user_version = ${version}`);
        })();
        old.close();
        const migrated = SqliteOutbox.open(path);
        try {
          assert.equal(migrated.schemaVersion(), CURRENT_SCHEMA_VERSION);
          assert.deepEqual(schemaOf(migrated.db), schemaOf(fresh.db), `from version ${version}`);
          assert.equal(migrated.db.prepare('SELECT count(*) FROM signing_keys').pluck().get(), 0, 'no rotated key before a rotation');
        } finally {
          migrated.close();
        }
      }
    } finally {
      fresh.close();
    }
  });

  it('keeps one witness checkpoint, which only moves forward', () => {
    const outbox = SqliteOutbox.open(join(root, 'outbox.db'), { create: true });
    try {
      const cp = (size: number) => ({ size, root: 'R'.repeat(43), note: `note ${size}`, verifiedAt: new Date(0).toISOString() });
      outbox.setWitnessCheckpoint(cp(5));
      outbox.setWitnessCheckpoint(cp(9));
      assert.deepEqual(outbox.witnessCheckpoint(), cp(9));
      assert.throws(() => outbox.setWitnessCheckpoint(cp(9)), /not newer than the stored 9/);
      assert.throws(() => outbox.setWitnessCheckpoint(cp(4)), OutboxError);
      assert.deepEqual(outbox.witnessCheckpoint(), cp(9));
      assert.equal(outbox.db.prepare('SELECT count(*) FROM witness_checkpoint').pluck().get(), 1);
      assert.throws(() => outbox.db.prepare("INSERT INTO witness_checkpoint VALUES (2, 1, 'x', 'n', 't')").run(), /CHECK constraint/);
      outbox.clearWitnessCheckpoint();
      assert.equal(outbox.witnessCheckpoint(), undefined);
    } finally {
      outbox.close();
    }
  });

  it('opens a database at the current version again without changing it', () => {
    const path = join(root, 'outbox.db');
    SqliteOutbox.open(path, { create: true }).close();
    const again = SqliteOutbox.open(path);
    assert.equal(again.schemaVersion(), CURRENT_SCHEMA_VERSION);
    again.close();
  });

  it('refuses a database written by a newer agent, with a clear message, and leaves it alone', () => {
    const path = join(root, 'outbox.db');
    SqliteOutbox.open(path, { create: true }).close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${CURRENT_SCHEMA_VERSION + 1}`);
    raw.close();
    assert.throws(() => SqliteOutbox.open(path), (err: unknown) => {
      assert.ok(err instanceof OutboxSchemaError);
      assert.match(err.message, new RegExp(`schema version ${CURRENT_SCHEMA_VERSION + 1}, newer than this agent supports \\(${CURRENT_SCHEMA_VERSION}\\)`));
      return true;
    });
    const check = new Database(path);
    assert.equal(check.pragma('user_version', { simple: true }), CURRENT_SCHEMA_VERSION + 1);
    check.close();
  });

  it('says the agent is not initialised when there is no outbox', () => {
    assert.throws(() => SqliteOutbox.open(join(root, 'missing.db')), OutboxNotInitialisedError);
    const outbox = SqliteOutbox.open(join(root, 'empty.db'), { create: true });
    try {
      assert.throws(() => outbox.pins(), OutboxNotInitialisedError);
    } finally {
      outbox.close();
    }
  });
});
