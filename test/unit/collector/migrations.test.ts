import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SQLITE_MIGRATIONS, SQLITE_SCHEMA_VERSION, SqliteStore } from '../../../collector/store/sqlite/sqlite-store.ts';
import { SchemaVersionError } from '../../../collector/store/migrate.ts';
import { sqliteMigrationRunner } from '../../../collector/store/sqlite/migration-target.ts';
import { makeTempDir, runCollectorCli } from '../../helpers/collector-process.ts';

/** The schema the code expects after every migration: objects and the columns of each table. */
const EXPECTED_OBJECTS = [
  'index api_tokens_by_name',
  'index jti_replay_by_expiry',
  'index report_jobs_by_status',
  'table agent_epochs',
  'table agent_keys',
  'table agents',
  'table api_tokens',
  'table checkpoints',
  'table clock_skew',
  'table collector_keys',
  'table enrollment_tokens',
  'table jti_replay',
  'table ledger_kind_counts',
  'table merkle_subtrees',
  'table quarantine',
  'table rate_buckets',
  'table receipts',
  'table records',
  'table report_jobs',
  'trigger checkpoints_no_delete',
  'trigger checkpoints_no_update',
  'trigger collector_keys_no_delete',
  'trigger collector_keys_no_update',
  'trigger merkle_subtrees_no_delete',
  'trigger merkle_subtrees_no_update',
  'trigger records_no_delete',
  'trigger records_no_update',
];
const EXPECTED_COLUMNS: { [table: string]: string[] } = {
  agent_epochs: [
    'agent', 'epoch', 'public_jwk', 'kid', 'enrolled_at', 'revoked_at', 'highest_seq', 'highest_hash', 'last_seen_at',
    'backlog_pending', 'backlog_oldest_at', 'backlog_reported_at', 'witnessed_size', 'witnessed_at', 'revoked_index', 'superseded_by',
    'agent_version',
  ],
  agent_keys: ['agent', 'epoch', 'from_seq', 'kid', 'public_jwk', 'added_at', 'reason'],
  agents: ['agent', 'created_at'],
  api_tokens: ['id', 'name', 'role', 'token_hash', 'created_at', 'expires_at', 'revoked_at', 'created_by'],
  checkpoints: ['size', 'root', 'note', 'created_at'],
  collector_keys: ['role', 'kid', 'public_jwk', 'recorded_at'],
  clock_skew: [
    'agent', 'epoch', 'last_seq', 'last_at', 'caught_up_seq', 'caught_up_at', 'implausible', 'ahead', 'backwards', 'behind',
    'max_ahead_ms', 'max_backwards_ms', 'max_behind_ms', 'last_skew_json',
  ],
  enrollment_tokens: ['token_hash', 'agent', 'created_at', 'expires_at', 'used_at', 'for_replacement', 'voided_at'],
  jti_replay: ['jti', 'agent', 'expires_at', 'request_key'],
  ledger_kind_counts: ['kind', 'records'],
  merkle_subtrees: ['level', 'idx', 'hash'],
  quarantine: ['id', 'agent', 'epoch', 'seq', 'record_id', 'record_hash', 'stored_hash', 'canonical', 'batch_id', 'trace_id', 'received_at'],
  rate_buckets: ['key', 'tokens', 'at_ms', 'allowed'],
  receipts: ['batch_id', 'agent', 'records_digest', 'receipt_json', 'signature', 'created_at'],
  report_jobs: [
    'id', 'status', 'owner', 'actor', 'filter_json', 'checkpoint_size', 'created_at', 'finished_at', 'counts_json',
    'manifest_sha256', 'bundle_bytes', 'problem_json', 'expired_at', 'replica',
  ],
  records: ['ledger_index', 'id', 'agent', 'epoch', 'seq', 'kind', 'type', 'at', 'received_at', 'canonical', 'record_hash', 'leaf_hash'],
};

function schemaOf(path: string): { objects: string[]; columns: { [table: string]: string[] }; version: number } {
  const { objects, columns, version } = fullSchemaOf(path);
  return { objects, columns: Object.fromEntries(Object.entries(columns).map(([table, cols]) => [table, cols.map((c) => c.name)])), version };
}

interface ColumnInfo {
  name: string;
  type: string;
  notnull: number;
  dflt_value: unknown;
  pk: number;
}

/** Objects with their SQL text, and every column's type, nullability, default and key position. */
function fullSchemaOf(path: string): { objects: string[]; sql: string[]; columns: { [table: string]: ColumnInfo[] }; version: number } {
  const db = new Database(path, { readonly: true });
  try {
    const objects = (db.prepare(`SELECT type || ' ' || name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name`).pluck().all() as string[]);
    const sql = db.prepare(`SELECT sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name`).pluck().all() as string[];
    const columns: { [table: string]: ColumnInfo[] } = {};
    for (const entry of objects.filter((o) => o.startsWith('table '))) {
      const table = entry.slice('table '.length);
      columns[table] = db.prepare('SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)').all(table) as ColumnInfo[];
    }
    return { objects, sql, columns, version: db.pragma('user_version', { simple: true }) as number };
  } finally {
    db.close();
  }
}

/** A new database file migrated by the first `version` migrations only, left open for the test to fill. */
async function databaseAtVersion(version: number): Promise<{ path: string; db: Database.Database }> {
  const path = join(makeTempDir(), 'collector.db');
  const db = new Database(path);
  for (const migration of SQLITE_MIGRATIONS.slice(0, version)) await migration.up(sqliteMigrationRunner(db));
  db.pragma(`user_version = ${version}`);
  return { path, db };
}

describe('collector SQLite migrations', function () {
  this.timeout(30_000);

  it('numbers the migrations 1…n without gaps, each named after its file', () => {
    SQLITE_MIGRATIONS.forEach((migration, i) => {
      assert.equal(migration.version, i + 1);
      assert.match(migration.name, new RegExp(`^${String(i + 1).padStart(4, '0')}-[a-z0-9-]+$`));
    });
    assert.equal(SQLITE_SCHEMA_VERSION, SQLITE_MIGRATIONS.length);
  });

  it('migrates an empty database to exactly the schema the code expects, and a second run changes nothing', async () => {
    const path = join(makeTempDir(), 'collector.db');
    const store = new SqliteStore({ path });
    const first = await store.migrate();
    assert.deepEqual(first, { from: 0, to: SQLITE_SCHEMA_VERSION, applied: SQLITE_MIGRATIONS.map((m) => m.name) });
    const second = await store.migrate();
    assert.deepEqual(second, { from: SQLITE_SCHEMA_VERSION, to: SQLITE_SCHEMA_VERSION, applied: [] });
    await store.close();
    const schema = schemaOf(path);
    assert.deepEqual(schema.objects, EXPECTED_OBJECTS);
    assert.deepEqual(schema.columns, EXPECTED_COLUMNS);
    assert.equal(schema.version, SQLITE_SCHEMA_VERSION);
  });

  it('migrating from every earlier version gives the same schema as a fresh install', async () => {
    const fresh = join(makeTempDir(), 'collector.db');
    const freshStore = new SqliteStore({ path: fresh });
    await freshStore.migrate();
    await freshStore.close();
    for (let version = 0; version < SQLITE_SCHEMA_VERSION; version++) {
      const { path, db } = await databaseAtVersion(version);
      db.close();
      const store = new SqliteStore({ path });
      await store.migrate();
      await store.close();
      assert.deepEqual(fullSchemaOf(path), fullSchemaOf(fresh), `from version ${version}`);
    }
  });

  it('makes the database itself refuse a second copy of a record, and any change to the ledger tables', async () => {
    const path = join(makeTempDir(), 'collector.db');
    const store = new SqliteStore({ path });
    await store.migrate();
    await store.close();
    const db = new Database(path);
    try {
      db.pragma('foreign_keys = ON');
      db.exec(`INSERT INTO agents VALUES ('AS-1', 'now'); INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at) VALUES ('AS-1', 1, '{}', 'k', 'now')`);
      const insert = db.prepare(
        `INSERT INTO records VALUES (?, ?, 'AS-1', 1, ?, 'audit', 'a.b', 'at', 'rx', '{}', 'h', zeroblob(32))`,
      );
      insert.run(0, 'id-1', 1);
      assert.throws(() => insert.run(1, 'id-2', 1), /UNIQUE/);
      assert.throws(() => insert.run(2, 'id-1', 2), /UNIQUE/);
      assert.throws(() => insert.run(0, 'id-3', 3), /UNIQUE|PRIMARY/);
      assert.throws(() => db.exec(`UPDATE records SET canonical = '[]'`), /append-only/);
      assert.throws(() => db.exec(`DELETE FROM records`), /append-only/);
      db.exec(`INSERT INTO merkle_subtrees VALUES (0, 0, zeroblob(32))`);
      assert.throws(() => db.exec(`UPDATE merkle_subtrees SET hash = randomblob(32)`), /append-only/);
    } finally {
      db.close();
    }
  });

  it('migration 0002 keeps every row of a version 1 database and starts every agent with no witness report', async () => {
    const { path, db } = await databaseAtVersion(1);
    db.exec(`INSERT INTO agents VALUES ('AS-OLD-1', 'then');
             INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at, highest_seq, highest_hash) VALUES ('AS-OLD-1', 1, '{}', 'k', 'then', 0, NULL)`);
    db.close();
    const store = new SqliteStore({ path });
    const report = await store.migrate();
    assert.deepEqual(report.applied, SQLITE_MIGRATIONS.slice(1).map((m) => m.name));
    const [row] = await store.listAgentEpochs();
    await store.close();
    assert.equal(row!.agent, 'AS-OLD-1');
    assert.equal(row!.witnessedSize, null);
    assert.equal(row!.witnessedAt, null);
    assert.deepEqual(row!.gaps, []);
    assert.equal(row!.quarantined, 0);
    const check = new Database(path);
    try {
      assert.throws(() => check.exec(`UPDATE agent_epochs SET witnessed_size = -1`), /CHECK/);
    } finally {
      check.close();
    }
  });

  it('migration 0003 gives every existing epoch its enrolled key as its key history from seq 1', async () => {
    const { path, db } = await databaseAtVersion(2);
    db.exec(`INSERT INTO agents VALUES ('AS-OLD-2', 'then');
             INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at) VALUES ('AS-OLD-2', 1, '{"kty":"OKP"}', 'k1', 't1');
             INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at) VALUES ('AS-OLD-2', 2, '{"kty":"OKP"}', 'k2', 't2')`);
    db.close();
    const store = new SqliteStore({ path });
    await store.migrate();
    const keys = await store.listAgentKeys();
    await store.close();
    assert.deepEqual(
      keys.map((k) => [k.agent, k.epoch, k.fromSeq, k.kid, k.addedAt, k.reason]),
      [
        ['AS-OLD-2', 1, 1, 'k1', 't1', 'enrolled'],
        ['AS-OLD-2', 2, 1, 'k2', 't2', 'enrolled'],
      ],
    );
  });

  it('migration 0004 keeps every row of a version 3 database, adds an empty token table, and keeps revocation times', async () => {
    const { path, db } = await databaseAtVersion(3);
    db.exec(`INSERT INTO agents VALUES ('AS-OLD-3', 'then');
             INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at, revoked_at) VALUES ('AS-OLD-3', 1, '{"kty":"OKP"}', 'k1', 't1', 't9')`);
    db.close();
    const store = new SqliteStore({ path });
    await store.migrate();
    const epoch = await store.currentEpoch('AS-OLD-3');
    const tokens = await store.listApiTokens();
    await store.close();
    assert.equal(epoch?.revokedAt, 't9');
    assert.deepEqual(tokens, []);
  });

  it('migration 0005 keeps every row of a version 4 database and adds report jobs whose status and outcome agree', async () => {
    const { path, db } = await databaseAtVersion(4);
    db.exec(`INSERT INTO agents VALUES ('AS-OLD-4', 'then');
             INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at) VALUES ('AS-OLD-4', 1, '{"kty":"OKP"}', 'k1', 't1')`);
    db.close();
    const store = new SqliteStore({ path });
    await store.migrate();
    assert.equal((await store.currentEpoch('AS-OLD-4'))?.kid, 'k1');
    assert.equal(await store.findReportJob('nope'), undefined);
    await store.close();
    const check = new Database(path);
    try {
      const insert = check.prepare(
        `INSERT INTO report_jobs (id, status, owner, actor, filter_json, checkpoint_size, created_at, finished_at, manifest_sha256, problem_json)
         VALUES (?, ?, 'o', 'a', '{}', 1, 't', ?, ?, ?)`,
      );
      insert.run('j1', 'running', null, null, null);
      assert.throws(() => insert.run('j2', 'done', 't2', null, null), /CHECK/);
      assert.throws(() => insert.run('j3', 'failed', 't2', null, null), /CHECK/);
      assert.throws(() => insert.run('j4', 'running', 't2', null, null), /CHECK/);
      insert.run('j5', 'done', 't2', 'ab', null);
    } finally {
      check.close();
    }
  });

  it('migration 0006 keeps every row of a version 5 database and starts each chain\'s clock from its stored head, with no counts', async () => {
    const { path, db } = await databaseAtVersion(5);
    db.exec(`INSERT INTO agents VALUES ('AS-OLD-5', 'then');
             INSERT INTO agents VALUES ('AS-NEW-5', 'then');
             INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at, highest_seq, highest_hash) VALUES ('AS-OLD-5', 1, '{"kty":"OKP"}', 'k1', 't1', 2, 'h2');
             INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at) VALUES ('AS-NEW-5', 1, '{"kty":"OKP"}', 'k2', 't1');`);
    const insert = db.prepare(
      `INSERT INTO records (ledger_index, id, agent, epoch, seq, kind, type, at, received_at, canonical, record_hash, leaf_hash)
       VALUES (?, ?, 'AS-OLD-5', 1, ?, 'audit', 'a.b', ?, 'r', '{}', 'h', zeroblob(32))`,
    );
    insert.run(0, 'r1', 1, '2026-01-01T00:00:00.000Z');
    insert.run(1, 'r2', 2, '2026-01-02T00:00:00.000Z');
    db.close();
    const store = new SqliteStore({ path });
    await store.migrate();
    const listed = await store.listAgentEpochs();
    await store.close();
    const old = listed.find((row) => row.agent === 'AS-OLD-5')!;
    assert.equal(old.ledgerEntries, 2);
    assert.deepEqual(old.clockSkew, {
      lastSeq: 2,
      lastAt: '2026-01-02T00:00:00.000Z',
      caughtUpSeq: null,
      caughtUpAt: null,
      implausible: 0,
      ahead: 0,
      backwards: 0,
      behind: 0,
      maxAheadMs: null,
      maxBackwardsMs: null,
      maxBehindMs: null,
      lastSkew: null,
    });
    assert.equal(listed.find((row) => row.agent === 'AS-NEW-5')!.clockSkew, null, 'a chain with no record has nothing to start from');
  });

  it('migration 0007 counts the entries of a version 6 database per kind, drops the kind index, and the counters then follow every append', async () => {
    const { path, db } = await databaseAtVersion(6);
    db.exec(`INSERT INTO agents VALUES ('AS-OLD-6', 'then');
             INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at, highest_seq, highest_hash) VALUES ('AS-OLD-6', 1, '{"kty":"OKP"}', 'k1', 't1', 3, 'h3');`);
    const insert = db.prepare(
      `INSERT INTO records (ledger_index, id, agent, epoch, seq, kind, type, at, received_at, canonical, record_hash, leaf_hash)
       VALUES (?, ?, 'AS-OLD-6', 1, ?, ?, 'a.b', 't', 'r', '{}', 'h', zeroblob(32))`,
    );
    insert.run(0, 'r1', 1, 'audit');
    insert.run(1, 'r2', 2, 'telemetry');
    insert.run(2, 'r3', 3, 'audit');
    db.close();
    const store = new SqliteStore({ path });
    await store.migrate();
    const counts = await store.ledgerCounts();
    assert.equal(counts.size, 3);
    assert.deepEqual(counts.byKind, { audit: 2, telemetry: 1, agent: 0 });
    await store.write(async (tx) => {
      await tx.appendRecords(
        (['agent', 'audit', 'agent'] as const).map((kind, i) => ({
          ledgerIndex: 3 + i, id: `r${4 + i}`, agent: 'AS-OLD-6', epoch: 1, seq: 4 + i, kind, type: 'a.b', at: 't', receivedAt: 'r',
          canonical: '{}', recordHash: 'h', leafHash: Buffer.alloc(32),
        })),
      );
    });
    assert.deepEqual((await store.ledgerCounts()).byKind, { audit: 3, telemetry: 1, agent: 2 });
    await assert.rejects(
      store.write(async (tx) => {
        await tx.appendRecords([{ ledgerIndex: 6, id: 'r1', agent: 'AS-OLD-6', epoch: 1, seq: 7, kind: 'audit', type: 'a.b', at: 't', receivedAt: 'r', canonical: '{}', recordHash: 'h', leafHash: Buffer.alloc(32) }]);
      }),
    );
    assert.deepEqual((await store.ledgerCounts()).byKind, { audit: 3, telemetry: 1, agent: 2 }, 'a refused append moves no counter');
    await store.close();
    assert.ok(!schemaOf(path).objects.includes('index records_by_kind'));
  });

  it('migration 0008 gives each revoked epoch the ledger index and time of its agent.revoked record, and leaves old tokens ordinary and unvoided', async () => {
    const { path, db } = await databaseAtVersion(7);
    db.exec(`INSERT INTO agents VALUES ('AS-OLD-7', 'then'), ('COLLECTOR', 'then');
             INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at, revoked_at) VALUES
               ('COLLECTOR', 1, '{"kty":"OKP"}', 'kc', 't0', NULL),
               ('AS-OLD-7', 1, '{"kty":"OKP"}', 'k1', 't1', '2026-11-01T00:00:00.005Z'),
               ('AS-OLD-7', 2, '{"kty":"OKP"}', 'k2', 't2', NULL);
             INSERT INTO enrollment_tokens VALUES ('${'a'.repeat(64)}', 'AS-OLD-7', 't1', 't9', NULL);`);
    const insert = db.prepare(
      `INSERT INTO records (ledger_index, id, agent, epoch, seq, kind, type, at, received_at, canonical, record_hash, leaf_hash)
       VALUES (?, ?, 'COLLECTOR', 1, ?, 'agent', ?, ?, 'r', ?, 'h', zeroblob(32))`,
    );
    insert.run(0, 'c1', 1, 'agent.enrolled', '2026-10-01T00:00:00.000Z', JSON.stringify({ type: 'agent.enrolled', body: { agent: 'AS-OLD-7', epoch: 1 } }));
    insert.run(1, 'c2', 2, 'agent.revoked', '2026-11-01T00:00:00.004Z', JSON.stringify({ type: 'agent.revoked', body: { agent: 'AS-OLD-7', epoch: 1 } }));
    db.close();
    const store = new SqliteStore({ path });
    await store.migrate();
    const epochs = (await store.listAgentEpochs()).filter((e) => e.agent === 'AS-OLD-7');
    await store.close();
    assert.deepEqual(
      epochs.map((e) => [e.epoch, e.revokedAt, e.revokedIndex, e.supersededBy]),
      [
        [1, '2026-11-01T00:00:00.004Z', 1, null],
        [2, null, null, null],
      ],
    );
    const check = new Database(path, { readonly: true });
    assert.deepEqual(check.prepare('SELECT for_replacement, voided_at FROM enrollment_tokens').get(), { for_replacement: 0, voided_at: null });
    check.close();
  });

  it('migration 0009 keeps every report job of a version 8 database and lets a done job become expired, keeping what it exported', async () => {
    const { path, db } = await databaseAtVersion(8);
    const insert = db.prepare(
      `INSERT INTO report_jobs (id, status, owner, actor, filter_json, checkpoint_size, created_at, finished_at, counts_json, manifest_sha256, bundle_bytes, problem_json)
       VALUES (?, ?, 'o', 'a', '{}', 1, 't', ?, ?, ?, ?, ?)`,
    );
    insert.run('j1', 'running', null, null, null, null, null);
    insert.run('j2', 'done', '2026-01-01T00:00:00.000Z', '{"records":1}', 'ab', 10, null);
    insert.run('j3', 'failed', '2026-01-01T00:00:00.000Z', null, null, null, '{"detail":"x"}');
    db.close();
    const store = new SqliteStore({ path });
    await store.migrate();
    assert.deepEqual(
      await Promise.all(['j1', 'j2', 'j3'].map(async (id) => [(await store.findReportJob(id))?.status, (await store.findReportJob(id))?.expiredAt])),
      [['running', null], ['done', null], ['failed', null]],
    );
    assert.deepEqual(await store.write((tx) => tx.expireReportJobs('2026-02-01T00:00:00.000Z', '2026-02-02T00:00:00.000Z')), ['j2']);
    assert.equal(await store.write((tx) => tx.forgetFailedReportJobs('2026-02-01T00:00:00.000Z')), 1);
    const expired = await store.findReportJob('j2');
    assert.deepEqual([expired?.status, expired?.expiredAt, expired?.manifestSha256, expired?.bundleBytes], ['expired', '2026-02-02T00:00:00.000Z', 'ab', 10]);
    assert.equal(await store.findReportJob('j3'), undefined);
    await store.close();
    const check = new Database(path);
    try {
      assert.throws(() => check.exec(`UPDATE report_jobs SET status = 'expired' WHERE id = 'j1'`), /CHECK/);
      assert.throws(() => check.exec(`UPDATE report_jobs SET expired_at = NULL WHERE id = 'j2'`), /CHECK/);
    } finally {
      check.close();
    }
  });

  it('migration 0010 keeps every epoch of a version 9 database, with no version until its next batch, then stores the one reported', async () => {
    const { path, db } = await databaseAtVersion(9);
    db.exec(`INSERT INTO agents VALUES ('AS-OLD-9', 'then');
             INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at, last_seen_at, backlog_pending, backlog_oldest_at, backlog_reported_at)
               VALUES ('AS-OLD-9', 1, '{"kty":"OKP"}', 'k1', 't1', '2026-11-01T00:00:00.000Z', 4, NULL, '2026-11-01T00:00:00.000Z');`);
    db.close();
    const store = new SqliteStore({ path });
    await store.migrate();
    const [before] = await store.listAgentEpochs();
    assert.deepEqual([before?.agent, before?.lastSeenAt, before?.backlog.pending, before?.version], ['AS-OLD-9', '2026-11-01T00:00:00.000Z', 4, null]);
    await store.write((tx) => tx.recordAgentContact('AS-OLD-9', 1, { lastSeenAt: '2026-11-02T00:00:00.000Z', backlog: { pending: 0, oldestAt: null }, version: '0.2.0-rc.1+b7' }));
    const [after] = await store.listFleet({ agent: 'AS-OLD-9', limit: 1 });
    assert.deepEqual([after?.lastSeenAt, after?.version], ['2026-11-02T00:00:00.000Z', '0.2.0-rc.1+b7']);
    await store.close();
    const check = new Database(path);
    try {
      assert.throws(() => check.exec(`UPDATE agent_epochs SET agent_version = ''`), /CHECK/);
      assert.throws(() => check.exec(`UPDATE agent_epochs SET agent_version = '${'9'.repeat(65)}'`), /CHECK/);
    } finally {
      check.close();
    }
  });

  it('migration 0011 records the collector keys once, per role, and the database refuses to change or drop them', async () => {
    const { path, db } = await databaseAtVersion(10);
    db.close();
    const store = new SqliteStore({ path });
    await store.migrate();
    assert.deepEqual(await store.collectorKeys(), [], 'an upgraded database has none until its next start records them');
    const jwk = { kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) } as const;
    const key = (role: 'log' | 'receipt' | 'chain', kid: string) => ({ role, kid, publicJwk: jwk, recordedAt: '2026-12-07T00:00:00.000Z' });
    await store.write((tx) => tx.putCollectorKeys([key('log', 'first-log'), key('receipt', 'first-receipt')]));
    // A second writer (another replica starting at the same moment) adds only the missing role.
    await store.write((tx) => tx.putCollectorKeys([key('log', 'second-log'), key('chain', 'second-chain')]));
    assert.deepEqual((await store.collectorKeys()).map((k) => [k.role, k.kid]), [['chain', 'second-chain'], ['log', 'first-log'], ['receipt', 'first-receipt']]);
    await store.close();
    const check = new Database(path);
    try {
      assert.throws(() => check.exec(`UPDATE collector_keys SET kid = 'forged' WHERE role = 'log'`), /append-only/);
      assert.throws(() => check.exec(`DELETE FROM collector_keys`), /append-only/);
      assert.throws(() => check.exec(`INSERT INTO collector_keys VALUES ('admin', 'k', '{}', 'now')`), /CHECK/);
    } finally {
      check.close();
    }
  });

  it('refuses to open a database newer than the code, naming both versions', () => {
    const path = join(makeTempDir(), 'collector.db');
    const db = new Database(path);
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 7}`);
    db.close();
    assert.throws(
      () => new SqliteStore({ path }),
      (err: unknown) =>
        err instanceof SchemaVersionError &&
        err.databaseVersion === SQLITE_SCHEMA_VERSION + 7 &&
        err.codeVersion === SQLITE_SCHEMA_VERSION &&
        err.message.includes(String(SQLITE_SCHEMA_VERSION + 7)) &&
        err.message.includes(`(${SQLITE_SCHEMA_VERSION})`),
    );
  });

  it('makes migrate and serve exit non-zero on a newer database with one clear line and no stack trace', async () => {
    const dir = makeTempDir();
    const db = new Database(join(dir, 'collector.db'));
    db.pragma('user_version = 999');
    db.close();
    for (const command of ['migrate', 'serve']) {
      const result = await runCollectorCli([command], { SAKSHYA_COLLECTOR_DIR: dir, SAKSHYA_COLLECTOR_PORT: '0', SAKSHYA_LOG_LEVEL: 'warn' });
      assert.notEqual(result.code, 0, command);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, new RegExp(`schema version 999, newer than the newest this collector knows \\(${SQLITE_SCHEMA_VERSION}\\)`));
      assert.doesNotMatch(result.stderr, /\n\s+at /);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    }
  });

  it('runs the migrate command on a fresh directory and reports the version', async () => {
    const dir = join(makeTempDir(), 'new-collector');
    const result = await runCollectorCli(['migrate'], { SAKSHYA_COLLECTOR_DIR: dir, SAKSHYA_LOG_LEVEL: 'warn' });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`schema version 0 -> ${SQLITE_SCHEMA_VERSION}`));
    assert.equal(schemaOf(join(dir, 'collector.db')).version, SQLITE_SCHEMA_VERSION);
  });

  it('migrates and then reads the database SAKSHYA_COLLECTOR_DATABASE names, not the one in the data directory', async () => {
    const dir = join(makeTempDir(), 'collector');
    const elsewhere = join(makeTempDir(), 'ledger.db');
    const env = { SAKSHYA_COLLECTOR_DIR: dir, SAKSHYA_COLLECTOR_DATABASE: `sqlite:${elsewhere}`, SAKSHYA_LOG_LEVEL: 'warn' };
    const migrated = await runCollectorCli(['migrate'], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.equal(schemaOf(elsewhere).version, SQLITE_SCHEMA_VERSION);
    assert.equal(existsSync(join(dir, 'collector.db')), false);
    const enrolled = await runCollectorCli(['agents', 'enroll', '--agent', 'AS-DB-001'], env);
    assert.equal(enrolled.code, 0, enrolled.stderr);
    const stats = await runCollectorCli(['ledger', 'stats', '--json'], env);
    assert.equal(stats.code, 0, stats.stderr);
    assert.equal((JSON.parse(stats.stdout) as { size: number }).size, 1, 'the enrollment token record went into that database');
    const refused = await runCollectorCli(['migrate'], { ...env, SAKSHYA_COLLECTOR_DATABASE: 'postgres://sakshya:secret@db.example:5432/' });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /SAKSHYA_COLLECTOR_DATABASE: postgres:\/\/ needs a database name/);
    assert.doesNotMatch(refused.stderr, /secret/);
  });
});
