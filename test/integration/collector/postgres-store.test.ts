/**
 * What the PostgreSQL store promises beyond the contract suite's cases: several collector
 * processes (here: stores with pools of their own) on one database write one at a time, streams
 * of a snapshot stay consistent across pages while lookups run between them, record text comes
 * back byte for byte, and a database that cannot answer is StoreUnavailableError. Needs
 * SAKSHYA_TEST_POSTGRES_URL (test/helpers/postgres.ts).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { appendLeaves, leafHash, rootFromSubtrees, rootHash } from '../../../shared/merkle.ts';
import { PostgresStore } from '../../../collector/store/postgres/postgres-store.ts';
import { redactPostgresUrl, urlWithPassword } from '../../../collector/store/postgres/connection.ts';
import { rightEdge } from '../../../collector/store/postgres/right-edge.ts';
import { describeDatabase } from '../../../collector/store/open-store.ts';
import { StoreUnavailableError, type LedgerEntry, type WriteTransaction } from '../../../collector/store/store.ts';
import { createTestDatabase, requirePostgres, sqlOn, type TestDatabase } from '../../helpers/postgres.ts';

const AT = '2026-11-22T04:00:00.000Z';
const JWK = { kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) } as const;

function entry(ledgerIndex: number, agent: string, seq: number, canonical: string | Uint8Array = `{"n":${ledgerIndex}}`): LedgerEntry {
  return {
    ledgerIndex, id: `rec-${agent}-${seq}`, agent, epoch: 1, seq, kind: 'audit', type: 't.t', at: AT, receivedAt: AT, canonical,
    recordHash: `h-${ledgerIndex}`, leafHash: leafHash(Buffer.from(`leaf ${ledgerIndex}`)),
  };
}

async function enroll(tx: WriteTransaction, agent: string): Promise<void> {
  await tx.createAgentEpoch({ agent, epoch: 1, publicJwk: JWK, kid: `kid-${agent}`, enrolledAt: AT });
}

/** A local port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('collector store on PostgreSQL', function () {
  this.timeout(60_000);
  let adminUrl: string;
  let database: TestDatabase;
  const stores: PostgresStore[] = [];
  const open = async () => {
    const store = new PostgresStore({ url: database.url, poolSize: 4 });
    stores.push(store);
    await store.migrate();
    return store;
  };

  before(function () {
    adminUrl = requirePostgres(this);
  });
  beforeEach(async () => {
    database = await createTestDatabase(adminUrl);
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    await database.drop();
  });

  it('serialises the writes of two collectors on one database: each append sees the other\'s, and the ledger indexes have no gap or clash', async () => {
    const [a, b] = [await open(), await open()];
    await a.write(async (tx) => {
      await enroll(tx, 'AS-A');
      await enroll(tx, 'AS-B');
    });
    const appendNext = (store: PostgresStore, agent: string) =>
      store.write(async (tx) => {
        const size = await tx.ledgerSize();
        const head = (await tx.chainHead(agent, 1))!;
        // A pause inside the transaction: without one writer at a time, the other store would read the same size now.
        await new Promise((resolve) => setTimeout(resolve, 5));
        await tx.appendLedger({
          entries: [entry(size, agent, head.highestSeq + 1)],
          subtrees: [],
          checkpoint: { size: size + 1, root: Buffer.alloc(32), note: `n${size + 1}`, createdAt: AT },
          chain: { agent, epoch: 1, from: head, to: { highestSeq: head.highestSeq + 1, highestHash: `h-${size}` } },
        });
        return size;
      });
    const sizes = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? appendNext(a, 'AS-A') : appendNext(b, 'AS-B'))));
    assert.deepEqual([...sizes].sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i));
    assert.equal((await b.ledgerCounts()).size, 20);
    assert.deepEqual((await a.listAgentEpochs()).map((e) => [e.agent, e.highestSeq, e.ledgerEntries, e.gaps]), [
      ['AS-A', 10, 10, []],
      ['AS-B', 10, 10, []],
    ]);
  });

  it('keeps canonical text byte for byte, given as text or as UTF-8 bytes, and writes a large batch in one call', async () => {
    const store = await open();
    const texts = ['{"name":"Śrī Gaṇeśa 🙏","q":"\\"\\\\\\u0000"}', '{"a":"line\\nbreak","b":"\u2028"}'];
    const entries = Array.from({ length: 3000 }, (_, i) => entry(i, 'AS-BIG', i + 1, i < 2 ? (i === 0 ? texts[0]! : new TextEncoder().encode(texts[1]!)) : `{"i":${i}}`));
    await store.write(async (tx) => {
      await enroll(tx, 'AS-BIG');
      await tx.appendRecords(entries);
    });
    assert.equal((await store.findLedgerRecord('rec-AS-BIG-1'))?.canonical, texts[0]);
    assert.equal((await store.findLedgerRecord('rec-AS-BIG-2'))?.canonical, texts[1]);
    assert.deepEqual((await store.ledgerCounts()).byKind, { audit: 3000, telemetry: 0, agent: 0 });
  });

  it('streams an audit page by page from one snapshot while lookups run between the pages', async () => {
    const store = await open();
    const leaves = Array.from({ length: 700 }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));
    await store.write(async (tx) => {
      await enroll(tx, 'AS-AUD');
      await tx.appendRecords(leaves.map((_, i) => entry(i, 'AS-AUD', i + 1)));
      const nodes = appendLeaves(0, leaves, await tx.subtreeReader(0));
      await tx.putSubtrees(nodes);
      await tx.putCheckpoint({ size: 700, root: rootHash(leaves), note: 'n700', createdAt: AT });
    });
    const audit = await store.openAudit();
    try {
      await store.write((tx) => tx.appendRecords([entry(700, 'AS-AUD', 701)]));
      const records = audit.records()[Symbol.asyncIterator]();
      const subtrees = audit.subtrees()[Symbol.asyncIterator]();
      let seenRecords = 0;
      let seenSubtrees = 0;
      for (;;) {
        const [record, subtree] = await Promise.all([records.next(), subtrees.next()]);
        if (!record.done) {
          assert.equal(record.value.ledgerIndex, seenRecords++);
          assert.ok(await audit.checkpointOfSize(700), 'a lookup between pages');
        }
        if (!subtree.done) seenSubtrees++;
        if (record.done && subtree.done) break;
      }
      assert.equal(seenRecords, 700, 'the entry appended after the snapshot is not seen');
      assert.equal(seenSubtrees, 2 * 700 - 6, 'every complete subtree of 700 leaves: 2n minus one per set bit of n (700 = 512 + 128 + 32 + 16 + 8 + 4)');
      assert.deepEqual(await audit.countExceptAgent(0, 699, 'AS-AUD'), { count: 0, first: null, last: null });
    } finally {
      await audit.close();
    }
  });

  it('serves the right edge of the tree to the subtree reader, and says which node is missing', async () => {
    const store = await open();
    const leaves = Array.from({ length: 11 }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));
    await store.write(async (tx) => tx.putSubtrees(appendLeaves(0, leaves.slice(0, 7), await tx.subtreeReader(0))));
    await store.write(async (tx) => {
      const nodes = appendLeaves(7, leaves.slice(7), await tx.subtreeReader(7));
      await tx.putSubtrees(nodes);
    });
    assert.deepEqual(rightEdge(7), [{ level: 2, index: 0 }, { level: 1, index: 2 }, { level: 0, index: 6 }]);
    assert.deepEqual(await store.write(async (tx) => rootFromSubtrees(11, await tx.subtreeReader(11))), rootHash(leaves), 'the root read through the prefetched right edge');
    await assert.rejects(
      store.write(async (tx) => (await tx.subtreeReader(20))(4, 0)),
      /Merkle subtree \(level 4, index 0\) is missing/,
    );
  });

  it('answers StoreUnavailableError naming the cause when the server refuses connections or ends them', async () => {
    const port = await closedPort();
    const refused = new PostgresStore({ url: `postgres://sakshya:secret@127.0.0.1:${port}/sakshya` });
    try {
      await assert.rejects(refused.ping(), (err: unknown) => err instanceof StoreUnavailableError && err.reason === 'ECONNREFUSED' && !err.message.includes('secret'));
      await assert.rejects(refused.write(async () => undefined), (err: unknown) => err instanceof StoreUnavailableError);
    } finally {
      await refused.close();
    }
    const store = await open();
    const audit = await store.openAudit();
    try {
      await sqlOn(adminUrl, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND state = 'idle in transaction'`, [database.name]);
      await assert.rejects(audit.kindCounts(), (err: unknown) => err instanceof StoreUnavailableError && /57P01|CONNECTION/.test(err.reason));
    } finally {
      await audit.close();
    }
    await store.ping();
    assert.equal((await store.ledgerCounts()).size, 0, 'the pool replaced the ended connection');
  });

  it('never shows the password: not in messages, not in the database\'s description; a password file\'s text reaches the server as given', () => {
    const url = 'postgres://sakshya:s3cret@db.example:5432/sakshya?sslmode=verify-full&password=s3cret';
    for (const text of [redactPostgresUrl(url), describeDatabase(url), new PostgresStore({ url }).where]) {
      assert.doesNotMatch(text, /s3cret/);
      assert.match(text, /^postgres:\/\/sakshya:\*\*\*@db\.example:5432\/sakshya\?sslmode=verify-full&password=\*\*\*$/);
    }
    const password = 'p@ss:w%rd/?#\u00e9 ';
    const withPassword = new URL(urlWithPassword({ url: 'postgres://sakshya@db.example/sakshya', password }));
    assert.equal(decodeURIComponent(withPassword.password), password, 'node-postgres decodes the URL password once');
  });
});
