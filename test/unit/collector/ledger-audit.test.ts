import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { newId } from '../../../shared/ids.ts';
import { appendLeaves, rootHash, type SubtreeNode } from '../../../shared/merkle.ts';
import { CompactRange, completionOrder } from '../../../collector/services/ledger-audit.ts';
import type { AuthenticatedAgent } from '../../../collector/services/agent-auth.ts';
import { startCollectorInProcess } from '../../helpers/collector-process.ts';
import { TestAgent } from '../../integration/collector/test-agent.ts';

describe('ledger audit', function () {
  this.timeout(60_000);

  it('builds, leaf by leaf, exactly the nodes appendLeaves stores, in completion order, and the RFC 9162 root at every size', () => {
    const leaves = Array.from({ length: 300 }, () => randomBytes(32));
    const stored = new Map<string, Buffer>();
    const read = (level: number, index: number) => stored.get(`${level}:${index}`)!;
    const range = new CompactRange();
    let previous: SubtreeNode | undefined;
    for (let i = 0; i < leaves.length; i++) {
      const expected = appendLeaves(i, [leaves[i]!], read);
      for (const node of expected) stored.set(`${node.level}:${node.index}`, node.hash);
      const computed = range.append(leaves[i]!);
      assert.deepEqual(computed, expected, `leaf ${i}`);
      for (const node of computed) {
        if (previous) assert.ok(completionOrder(previous, node) < 0, `order at leaf ${i}`);
        previous = node;
      }
      assert.deepEqual(range.root(), rootHash(leaves.slice(0, i + 1)));
    }
  });

  it('verifies a ledger of thousands of entries in batches of random sizes as intact, then names one changed node high in the tree and nothing else', async () => {
    const collector = await startCollectorInProcess({ env: { SAKSHYA_LOG_LEVEL: 'warn' } });
    try {
      const agents = await Promise.all(
        ['AS-BIG-001', 'AS-BIG-002', 'AS-BIG-003'].map(async (id) => {
          const agent = new TestAgent(id, collector.url, collector.origin);
          const { token } = await collector.container.enrollment.issueToken(id);
          assert.equal((await agent.enroll(token)).status, 200);
          return agent;
        }),
      );
      const log = collector.container.logger;
      let total = 0;
      for (let i = 0; total < 2500; i++) {
        const agent = agents[i % agents.length]!;
        const batch = agent.batch(agent.records(1 + Math.floor(Math.random() * 150)));
        const principal: AuthenticatedAgent = { agent: agent.id, epoch: agent.epoch, kid: agent.key.kid, publicJwk: agent.key.publicJwk, jti: newId() };
        const reply = await collector.container.ingest.ingest({ agent: principal, idempotencyKey: batch.batchId, body: { encoding: 'identity', bytes: Buffer.from(JSON.stringify(batch)) }, traceId: 'test', log });
        total += reply.receipt.accepted;
      }
      const intact = await collector.container.ledgerAudit().run();
      assert.deepEqual(intact.findings, []);
      assert.equal(intact.intact, true);
      assert.equal(intact.checked.records, total + 6);
      const size = intact.ledger.size;
      assert.equal(intact.ledger.root, (await collector.container.ledger.stats()).checkpoint.root);
      let ones = 0;
      for (let n = size; n > 0; n = Math.floor(n / 2)) ones += n % 2;
      assert.equal(intact.checked.subtrees, 2 * size - ones);

      const db = new Database(join(collector.dir, 'collector.db'));
      try {
        db.exec('DROP TRIGGER merkle_subtrees_no_update');
        db.exec(`UPDATE merkle_subtrees SET hash = zeroblob(32) WHERE level = 10 AND idx = 1`);
        db.exec(`CREATE TRIGGER merkle_subtrees_no_update BEFORE UPDATE ON merkle_subtrees
                 BEGIN SELECT RAISE(ABORT, 'merkle subtrees are append-only'); END`);
      } finally {
        db.close();
      }
      const tampered = await collector.container.ledgerAudit().run();
      assert.equal(tampered.intact, false);
      assert.deepEqual(
        tampered.findings.map((f) => [f.table, f.check, f.row]),
        [['merkle_subtrees', 'hash', { level: 10, idx: 1 }]],
      );
      assert.match(tampered.findings[0]!.message, /leaves 1024…2047/);

      // The per-kind counters: `ledger stats` reads them, the audit recounts them from the records.
      const stats = await collector.container.ledger.stats();
      assert.equal(stats.byKind.audit + stats.byKind.telemetry + stats.byKind.agent, size);
      assert.equal(stats.byKind.agent, 6, 'the collector chain and one agent.enrolled record per agent');
      const counts = new Database(join(collector.dir, 'collector.db'));
      try {
        counts.exec(`UPDATE ledger_kind_counts SET records = records + 1 WHERE kind = 'audit'`);
      } finally {
        counts.close();
      }
      const miscounted = await collector.container.ledgerAudit().run();
      assert.deepEqual(
        miscounted.findings.filter((f) => f.table === 'ledger_kind_counts').map((f) => [f.check, f.row, f.expected, f.found]),
        [['count', { kind: 'audit' }, String(stats.byKind.audit), String(stats.byKind.audit + 1)]],
      );
    } finally {
      await collector.stop();
    }
  });
});
