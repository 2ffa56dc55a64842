import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { SqliteStore } from '../../../collector/store/sqlite/sqlite-store.ts';
import { StoreUnavailableError } from '../../../collector/store/store.ts';
import { makeTempDir } from '../../helpers/collector-process.ts';

describe('collector SQLite store', () => {
  async function storeWith(setup: (db: Database.Database) => void): Promise<SqliteStore> {
    const path = join(makeTempDir(), 'collector.db');
    const store = new SqliteStore({ path });
    await store.migrate();
    const db = new Database(path);
    try {
      setup(db);
    } finally {
      db.close();
    }
    return store;
  }

  it('lists the seq ranges missing below the chain head, between stored records and above the highest one', async () => {
    const store = await storeWith((db) => {
      db.exec(`INSERT INTO agents VALUES ('AS-GAP-1', 'now');
               INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at, highest_seq, highest_hash) VALUES ('AS-GAP-1', 1, '{}', 'k', 'now', 10, 'h');
               INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at, highest_seq, highest_hash) VALUES ('AS-GAP-1', 2, '{}', 'k', 'now', 2, 'h')`);
      const insert = db.prepare(`INSERT INTO records VALUES (?, ?, 'AS-GAP-1', ?, ?, 'audit', 'a.b', 'at', 'rx', '{}', 'h', zeroblob(32))`);
      let index = 0;
      for (const seq of [2, 5, 6, 8]) insert.run(index++, `e1-${seq}`, 1, seq);
      for (const seq of [1, 2]) insert.run(index++, `e2-${seq}`, 2, seq);
    });
    try {
      const rows = await store.listAgentEpochs();
      assert.deepEqual(
        rows.map((row) => [row.epoch, row.ledgerEntries, row.gaps]),
        [
          [1, 4, [{ from: 1, to: 1 }, { from: 3, to: 4 }, { from: 7, to: 7 }, { from: 9, to: 10 }]],
          [2, 2, []],
        ],
      );
    } finally {
      await store.close();
    }
  });

  it('moves a witness report only forward and counts quarantined records per epoch', async () => {
    const store = await storeWith((db) => {
      db.exec(`INSERT INTO agents VALUES ('AS-WIT-1', 'now');
               INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at) VALUES ('AS-WIT-1', 1, '{}', 'k', 'now');
               INSERT INTO quarantine (agent, epoch, seq, record_id, record_hash, stored_hash, canonical, batch_id, trace_id, received_at)
                 VALUES ('AS-WIT-1', 1, 1, 'r', 'x', 'y', '{}', 'b', 't', 'now'), ('AS-WIT-1', 1, 1, 'r2', 'z', 'y', '{}', 'b', 't', 'now')`);
    });
    try {
      const results = [];
      for (const [size, at] of [[5, 't1'], [3, 't2'], [5, 't3'], [9, 't4']] as const) {
        results.push(await store.write((tx) => tx.recordWitness('AS-WIT-1', 1, { size, at })));
      }
      assert.deepEqual(results, [true, false, true, true]);
      const [row] = await store.listAgentEpochs();
      assert.deepEqual([row!.witnessedSize, row!.witnessedAt, row!.quarantined], [9, 't4', 2]);
    } finally {
      await store.close();
    }
  });

  /** Limits the size of any file this process writes (RLIMIT_FSIZE): like a disk that is full. Node ignores SIGXFSZ. */
  function limitFileSize(limit: string): void {
    const result = spawnSync('prlimit', ['--pid', String(process.pid), `--fsize=${limit}:`], { encoding: 'utf8' });
    assert.equal(result.status, 0, `prlimit: ${result.stderr}`);
  }

  it('maps a write the disk refuses to StoreUnavailableError, keeps nothing of it, and is not ready until a write succeeds again', async () => {
    const store = await storeWith(() => {});
    const insertAgent = (agent: string) =>
      store.write(async (tx) => {
        await tx.createAgentEpoch({ agent, epoch: 1, publicJwk: { kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) }, kid: `kid-${agent}`, enrolledAt: 'now' });
        // Enough rows to need new pages in the WAL, beyond the limit below.
        for (let i = 0; i < 50; i++) await tx.putEnrollmentToken({ tokenHash: `${agent}-${i}-${'x'.repeat(200)}`, agent, createdAt: 'now', expiresAt: 'later', usedAt: null });
      });
    try {
      await insertAgent('AS-DSK-001');
      await store.ping();
      limitFileSize('4096');
      try {
        await assert.rejects(insertAgent('AS-DSK-002'), (err: unknown) => err instanceof StoreUnavailableError && /^SQLITE_(IOERR|FULL)/.test(err.reason));
        await assert.rejects(store.ping(), StoreUnavailableError, 'reads still work, but the store is not ready while it cannot write');
      } finally {
        limitFileSize('unlimited');
      }
      assert.equal(await store.currentEpoch('AS-DSK-002'), undefined, 'the refused transaction left nothing');
      await store.ping(); // the probe write succeeds: ready again
      await insertAgent('AS-DSK-002');
      assert.equal((await store.currentEpoch('AS-DSK-002'))?.kid, 'kid-AS-DSK-002');
    } finally {
      await store.close();
    }
  });
});
