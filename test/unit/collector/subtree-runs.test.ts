/**
 * The SQLite store writes a batch's Merkle nodes as runs (one statement per level): the runs
 * must partition the nodes exactly, and the rows stored must be the nodes given, run or not.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import fc from 'fast-check';
import { SqliteStore } from '../../../collector/store/sqlite/sqlite-store.ts';
import { consecutiveRuns } from '../../../collector/store/sqlite/subtree-writes.ts';
import { appendLeaves, type SubtreeNode } from '../../../shared/merkle.ts';
import { makeTempDir } from '../../helpers/collector-process.ts';

const node = fc.record({ level: fc.nat({ max: 4 }), index: fc.nat({ max: 40 }), hash: fc.constantFrom(32, 32, 32, 31).map((n) => randomBytes(n)) });

describe('Merkle node runs (SQLite store)', function () {
  this.timeout(30_000);

  it('partitions any nodes into runs of one level, consecutive indices and 32-byte hashes (anything else alone)', () => {
    fc.assert(
      fc.property(fc.array(node, { maxLength: 60 }), (nodes) => {
        const runs = consecutiveRuns(nodes);
        assert.deepEqual(runs.flat().toSorted((a, b) => a.level - b.level || a.index - b.index || Buffer.compare(a.hash, b.hash)),
          [...nodes].sort((a, b) => a.level - b.level || a.index - b.index || Buffer.compare(a.hash, b.hash)));
        for (const run of runs) {
          assert.ok(run.length > 0);
          if (run.length === 1) continue;
          run.forEach((n, i) => {
            assert.equal(n.level, run[0]!.level);
            assert.equal(n.index, run[0]!.index + i);
            assert.equal(n.hash.length, 32);
          });
        }
      }),
    );
  });

  it('makes one run per level of an append, and stores exactly the nodes appendLeaves gives', async () => {
    const store = new SqliteStore({ path: join(makeTempDir(), 'collector.db') });
    await store.migrate();
    try {
      const stored = new Map<string, Buffer>();
      let size = 0;
      for (const count of [1, 7, 500, 3, 256, 90]) {
        const leaves = Array.from({ length: count }, () => randomBytes(32));
        const nodes: SubtreeNode[] = appendLeaves(size, leaves, (level, index) => stored.get(`${level}:${index}`)!);
        assert.equal(consecutiveRuns(nodes).length, new Set(nodes.map((n) => n.level)).size);
        await store.write(async (tx) => tx.putSubtrees(nodes));
        for (const n of nodes) stored.set(`${n.level}:${n.index}`, n.hash);
        size += count;
      }
      const refs = [...stored.keys()].map((key) => ({ level: Number(key.split(':')[0]), index: Number(key.split(':')[1]) }));
      assert.deepEqual(await store.readSubtrees(refs), [...stored.values()]);
      await assert.rejects(store.write(async (tx) => tx.putSubtrees([{ level: 0, index: size, hash: randomBytes(32) }, { level: 0, index: size + 1, hash: randomBytes(31) }])));
      await assert.rejects(store.write(async (tx) => tx.putSubtrees([{ level: 0, index: 0, hash: randomBytes(32) }, { level: 0, index: 1, hash: randomBytes(32) }])), 'a stored node is not written again');
      assert.equal((await store.readSubtrees([{ level: 0, index: size }]))[0], undefined, 'a refused batch of nodes leaves none behind');
    } finally {
      await store.close();
    }
  });
});
