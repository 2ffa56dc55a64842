/**
 * Replicas of one database must sign with the keys it was initialised with
 * (services/collector-identity.ts): a collector started on an existing database with another
 * keys directory refuses to start, naming both fingerprints, and so does every command; one
 * given a copy of the first replica's keys starts.
 */
import { sqliteOnly } from '../../helpers/postgres.ts';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { makeTempDir, runCollectorCli, startCollectorProcess } from '../../helpers/collector-process.ts';

function recordedKeys(path: string): { role: string; kid: string }[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(`SELECT role, kid FROM collector_keys ORDER BY role`).all() as { role: string; kid: string }[];
  } finally {
    db.close();
  }
}

describe('collector replicas share one set of keys', function () {
  before(function () {
    sqliteOnly(this, 'it reads and rewrites the SQLite file; replicas on PostgreSQL are test/integration/collector/replicas-shared-state.test.ts and test/e2e/replicas.test.ts');
  });
  this.timeout(60_000);

  it('a replica with another log key refuses to start on the database, naming both fingerprints; one with the copied keys directory starts', async () => {
    const first = await startCollectorProcess();
    await first.stop();
    const database = `sqlite:${join(first.dir, 'collector.db')}`;
    const recorded = recordedKeys(join(first.dir, 'collector.db'));
    assert.deepEqual(recorded.map((k) => k.role), ['chain', 'log', 'receipt'], 'the first start records the three public keys');

    // A second replica with a fresh keys directory: `serve` creates new keys, then refuses.
    const stranger = makeTempDir();
    const refused = await runCollectorCli(['serve'], { SAKSHYA_COLLECTOR_DIR: stranger, SAKSHYA_COLLECTOR_DATABASE: database, SAKSHYA_COLLECTOR_PORT: '0' });
    assert.equal(refused.code, 1, refused.stderr);
    const databaseLogKid = recorded.find((k) => k.role === 'log')!.kid;
    assert.match(refused.stderr, /log key \(keys\/log-key\.jwk, fingerprint ([^)]+)\) is not the one the database was initialised with \(fingerprint ([^)]+)\)/);
    const [, mine, theirs] = /log key \(keys\/log-key\.jwk, fingerprint ([^)]+)\)[^(]*\(fingerprint ([^)]+)\)/.exec(refused.stderr)!;
    assert.equal(theirs, databaseLogKid);
    assert.notEqual(mine, databaseLogKid);
    assert.match(refused.stderr, /receipt key .* chain key /, 'every differing key is named');
    // Read-only commands refuse too.
    const stats = await runCollectorCli(['ledger', 'stats'], { SAKSHYA_COLLECTOR_DIR: stranger, SAKSHYA_COLLECTOR_DATABASE: database });
    assert.equal(stats.code, 1);
    assert.match(stats.stderr, /is not the one the database was initialised with/);

    // The keys directory copied from the first replica: it starts and serves the same log.
    const replica = makeTempDir();
    cpSync(join(first.dir, 'keys'), join(replica, 'keys'), { recursive: true });
    const second = await startCollectorProcess({ dir: replica, env: { SAKSHYA_COLLECTOR_DATABASE: database } });
    try {
      const health = await fetch(`${second.url}/readyz`);
      assert.equal(health.status, 200);
    } finally {
      await second.stop();
    }
    assert.deepEqual(recordedKeys(join(first.dir, 'collector.db')), recorded, 'nothing re-recorded');
  });

  it('a database from before the keys were recorded adopts the keys of its next start only if they signed its newest checkpoint', async () => {
    const first = await startCollectorProcess();
    await first.stop();
    const path = join(first.dir, 'collector.db');
    const original = recordedKeys(path);
    // As a version 10 database had it: no keys recorded.
    const db = new Database(path);
    db.exec(`DROP TRIGGER collector_keys_no_delete; DELETE FROM collector_keys;
             CREATE TRIGGER collector_keys_no_delete BEFORE DELETE ON collector_keys BEGIN SELECT RAISE(ABORT, 'collector keys are append-only'); END;`);
    db.close();

    const stranger = makeTempDir();
    const refused = await runCollectorCli(['serve'], { SAKSHYA_COLLECTOR_DIR: stranger, SAKSHYA_COLLECTOR_DATABASE: `sqlite:${path}`, SAKSHYA_COLLECTOR_PORT: '0' });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /did not sign the newest checkpoint in the database/);
    const none = new Database(path, { readonly: true });
    assert.equal(none.prepare(`SELECT count(*) FROM collector_keys`).pluck().get(), 0, 'nothing recorded by the refused start');
    none.close();

    const again = await startCollectorProcess({ dir: first.dir });
    await again.stop();
    assert.deepEqual(recordedKeys(path), original, 'the keys that signed its checkpoints are recorded again');
  });
});
