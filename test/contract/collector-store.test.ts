/**
 * The collector's storage contract (collector/store/store.ts), held by one suite that every
 * backend runs. A backend is a factory: a fresh, migrated store, and a way to make its
 * database refuse writes for a while (to prove StoreUnavailableError). The suite talks only to
 * the contract — no SQL, no file paths — so a second backend passes it or is wrong.
 *
 * PostgreSQL runs when SAKSHYA_TEST_POSTGRES_URL names a throwaway server (test/helpers/postgres.ts):
 * each test gets a database of its own, dropped after it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openSqliteStore } from '../../collector/store/sqlite/sqlite-store.ts';
import { PostgresStore } from '../../collector/store/postgres/postgres-store.ts';
import { WRITER_LOCK_KEY } from '../../collector/store/postgres/connection.ts';
import {
  DuplicateRecordIdError,
  StoreUnavailableError,
  type AgentEpochSummary,
  type CollectorStore,
  type FleetQuery,
  type LedgerEntry,
  type WriteTransaction,
} from '../../collector/store/store.ts';
import type { RecordKind } from '../../shared/record.ts';
import { makeTempDir } from '../helpers/collector-process.ts';
import { createTestDatabase, requirePostgres } from '../helpers/postgres.ts';

interface StoreBackend {
  name: string;
  /** Skips the suite (with a line saying why) when this machine cannot run the backend. */
  require?(context: Mocha.Context): void;
  /** A new, empty, migrated store, and how to remove its database once the store is closed. */
  open(): Promise<{ store: CollectorStore; location: string; dispose?: () => Promise<void> }>;
  /** Holds the database's write lock from outside the store until the returned release is called. */
  blockWrites(location: string): Promise<() => void | Promise<void>>;
}

const sqliteBackend: StoreBackend = {
  name: 'SQLite',
  async open() {
    const location = join(makeTempDir('sakshya-contract-'), 'collector.db');
    const store = openSqliteStore(location);
    await store.migrate();
    return { store, location };
  },
  async blockWrites(location) {
    const db = new Database(location);
    db.exec('BEGIN EXCLUSIVE');
    return () => {
      db.exec('ROLLBACK');
      db.close();
    };
  },
};

let postgresAdminUrl = '';
const postgresBackend: StoreBackend = {
  name: 'PostgreSQL',
  require(context) {
    postgresAdminUrl = requirePostgres(context);
  },
  async open() {
    const database = await createTestDatabase(postgresAdminUrl);
    // A short lock timeout: a write that waits for the writer lock longer is refused sooner.
    const store = new PostgresStore({ url: database.url, lockTimeoutMs: 300, poolSize: 4 });
    await store.migrate();
    return { store, location: database.url, dispose: database.drop };
  },
  async blockWrites(location) {
    // Another process's writer: the advisory lock every write transaction takes first.
    const client = new pg.Client({ connectionString: location });
    await client.connect();
    await client.query(`BEGIN; SELECT pg_advisory_xact_lock(${WRITER_LOCK_KEY})`);
    return async () => {
      await client.query('ROLLBACK');
      await client.end();
    };
  },
};

const BACKENDS: StoreBackend[] = [sqliteBackend, postgresBackend];

const AT = '2026-11-22T04:00:00.000Z';
const JWK = { kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) } as const;

function entry(ledgerIndex: number, seq: number, options: { id?: string; agent?: string; kind?: RecordKind } = {}): LedgerEntry {
  return {
    ledgerIndex,
    id: options.id ?? `rec-${ledgerIndex}`,
    agent: options.agent ?? 'AS-CON-001',
    epoch: 1,
    seq,
    kind: options.kind ?? 'audit',
    type: 'certificate.issued',
    at: AT,
    receivedAt: AT,
    canonical: `{"n":${ledgerIndex}}`,
    recordHash: `hash-${ledgerIndex}`,
    leafHash: Buffer.alloc(32, ledgerIndex),
  };
}

async function enroll(tx: WriteTransaction, agent = 'AS-CON-001', epoch = 1): Promise<void> {
  await tx.createAgentEpoch({ agent, epoch, publicJwk: JWK, kid: `kid-${agent}-${epoch}`, enrolledAt: AT });
}

for (const backend of BACKENDS) {
  describe(`collector store contract: ${backend.name}`, function () {
    this.timeout(60_000);
    let store: CollectorStore;
    let location: string;
    let dispose: (() => Promise<void>) | undefined;

    before(function () {
      backend.require?.(this);
    });
    beforeEach(async () => {
      ({ store, location, dispose } = await backend.open());
    });
    afterEach(async () => {
      await store?.close();
      await dispose?.();
    });

    it('migrates to the current schema once; a second migrate applies nothing', async () => {
      await store.assertSchemaCurrent();
      const again = await store.migrate();
      assert.deepEqual(again.applied, []);
      assert.equal(again.from, again.to);
    });

    it('creates an epoch with an empty chain and its enrolled key from seq 1, and answers the current epoch', async () => {
      await store.write(async (tx) => {
        await enroll(tx);
        await enroll(tx, 'AS-CON-001', 2);
        assert.equal(await tx.highestEpoch('AS-CON-001'), 2);
        assert.deepEqual(await tx.chainHead('AS-CON-001', 2), { highestSeq: 0, highestHash: null });
      });
      const current = await store.currentEpoch('AS-CON-001');
      assert.equal(current?.epoch, 2);
      assert.equal(current?.revokedAt, null);
      assert.deepEqual((await store.agentKeys('AS-CON-001', 1)).map((k) => [k.fromSeq, k.kid, k.reason]), [[1, 'kid-AS-CON-001-1', 'enrolled']]);
      assert.equal(await store.currentEpoch('AS-NONE-01'), undefined);
    });

    it('appends entries, moves the chain head only from the stored head, and counts them by kind', async () => {
      await store.write(async (tx) => {
        await enroll(tx);
        await tx.appendRecords([entry(0, 1), entry(1, 2, { kind: 'telemetry' })]);
        await tx.advanceChainHead('AS-CON-001', 1, { highestSeq: 0, highestHash: null }, { highestSeq: 2, highestHash: 'hash-1' });
        assert.deepEqual([...(await tx.recordHashes('AS-CON-001', 1, 1, 2))], [[1, 'hash-0'], [2, 'hash-1']]);
        assert.equal(await tx.ledgerSize(), 2);
      });
      await assert.rejects(
        store.write((tx) => tx.advanceChainHead('AS-CON-001', 1, { highestSeq: 1, highestHash: 'hash-0' }, { highestSeq: 3, highestHash: 'x' })),
        'a head moved from a stale value is refused',
      );
      const counts = await store.ledgerCounts();
      assert.equal(counts.size, 2);
      assert.deepEqual(counts.byKind, { audit: 1, telemetry: 1, agent: 0 });
      const found = await store.findLedgerRecord('rec-1');
      assert.equal(found?.ledgerIndex, 1);
      assert.equal(found?.canonical, '{"n":1}');
    });

    it('finds a stored record id by the insert itself, leaves the transaction usable, and stores nothing of the refused batch', async () => {
      await store.write(async (tx) => {
        await enroll(tx);
        await enroll(tx, 'AS-CON-002');
        await tx.appendRecords([entry(0, 1)]);
      });
      const before = await store.ledgerCounts();
      const refusal = new Error('refused');
      await assert.rejects(
        store.write(async (tx) => {
          const clash = await tx.appendRecords([entry(1, 1, { agent: 'AS-CON-002', id: 'fresh' }), entry(2, 2, { agent: 'AS-CON-002', id: 'rec-0' })]).then(
            () => undefined,
            (err: unknown) => err,
          );
          assert.ok(clash instanceof DuplicateRecordIdError);
          assert.equal(clash.id, 'rec-0');
          // Still usable for reads, as the ingest's answer needs.
          assert.deepEqual((await tx.findRecordsById(['rec-0'])).map((r) => [r.agent, r.seq]), [['AS-CON-001', 1]]);
          throw refusal;
        }),
        refusal,
      );
      assert.deepEqual(await store.ledgerCounts(), before);
      assert.equal(await store.findLedgerRecord('fresh'), undefined);
    });

    it('reads what a batch needs in one call and writes an accepted batch in one call', async () => {
      const checkpoint = (size: number) => ({ size, root: Buffer.alloc(32, size), note: `n${size}`, createdAt: AT });
      await store.write(async (tx) => {
        await enroll(tx);
        await tx.putCheckpoint(checkpoint(0));
      });
      const receipt = { batchId: 'b-1', agent: 'AS-CON-001', recordsDigest: 'd', receiptJson: '{}', signature: 's', createdAt: AT };
      const committed = await store.write(async (tx) => {
        const state = await tx.batchState('AS-CON-001', 1, 'b-1', 0);
        assert.equal(state.receipt, undefined);
        assert.equal(state.currentEpoch?.epoch, 1);
        assert.deepEqual(state.head, { highestSeq: 0, highestHash: null });
        assert.equal(state.keyCount, 1);
        assert.equal(state.clockSkew, undefined);
        assert.equal(state.ledgerSize, 0);
        assert.equal(state.witnessCheckpoint?.note, 'n0');
        return tx.commitBatch({
          agent: 'AS-CON-001',
          epoch: 1,
          append: {
            entries: [entry(0, 1), entry(1, 2)],
            subtrees: [{ level: 0, index: 0, hash: Buffer.alloc(32, 1) }],
            checkpoint: checkpoint(2),
            chain: { agent: 'AS-CON-001', epoch: 1, from: { highestSeq: 0, highestHash: null }, to: { highestSeq: 2, highestHash: 'hash-1' } },
          },
          rotatedKeys: [{ agent: 'AS-CON-001', epoch: 1, fromSeq: 3, kid: 'kid-2', publicJwk: JWK, addedAt: AT, reason: 'rotated' }],
          contact: { lastSeenAt: AT, backlog: { pending: 5, oldestAt: AT }, version: '1.4.0' },
          clockSkew: undefined,
          witness: { size: 0, at: AT },
          receipt,
        });
      });
      assert.deepEqual(committed, { witnessRecorded: true });
      const after = await store.write((tx) => tx.batchState('AS-CON-001', 1, 'b-1'));
      assert.deepEqual(after.receipt, receipt);
      assert.deepEqual(after.head, { highestSeq: 2, highestHash: 'hash-1' });
      assert.equal(after.keyCount, 2);
      assert.equal(after.ledgerSize, 2);
      assert.equal((await store.latestCheckpoint())?.size, 2);
      const [listed] = await store.listAgentEpochs();
      assert.deepEqual([listed?.backlog.pending, listed?.witnessedSize, listed?.version], [5, 0, '1.4.0']);
    });

    it('refuses to write an append whose chain head moved, and stores nothing of it', async () => {
      await store.write(async (tx) => {
        await enroll(tx);
        await tx.appendRecords([entry(0, 1)]);
        await tx.advanceChainHead('AS-CON-001', 1, { highestSeq: 0, highestHash: null }, { highestSeq: 1, highestHash: 'hash-0' });
      });
      await assert.rejects(
        store.write((tx) =>
          tx.appendLedger({
            entries: [entry(1, 2)],
            subtrees: [],
            checkpoint: { size: 2, root: Buffer.alloc(32), note: 'n', createdAt: AT },
            chain: { agent: 'AS-CON-001', epoch: 1, from: { highestSeq: 0, highestHash: null }, to: { highestSeq: 2, highestHash: 'hash-1' } },
          }),
        ),
      );
      assert.equal((await store.ledgerCounts()).size, 1);
    });

    it('refuses a second entry for the same (agent, epoch, seq) in the database itself', async () => {
      await assert.rejects(
        store.write(async (tx) => {
          await enroll(tx);
          await tx.appendRecords([entry(0, 1), entry(1, 1, { id: 'other' })]);
        }),
      );
      assert.equal((await store.ledgerCounts()).size, 0, 'the whole transaction rolled back');
    });

    it('stores subtrees and checkpoints, reads them committed, and serves the subtree reader inside a write', async () => {
      const node = (level: number, index: number) => ({ level, index, hash: Buffer.alloc(32, level * 16 + index) });
      await store.write(async (tx) => {
        await tx.putSubtrees([node(0, 0), node(0, 1), node(1, 0)]);
        const read = await tx.subtreeReader(2);
        assert.deepEqual(read(1, 0), node(1, 0).hash);
        await tx.putCheckpoint({ size: 2, root: node(1, 0).hash, note: 'note-2', createdAt: AT });
      });
      assert.deepEqual(await store.readSubtrees([{ level: 0, index: 1 }, { level: 2, index: 0 }]), [node(0, 1).hash, undefined]);
      assert.equal((await store.latestCheckpoint())?.size, 2);
      assert.equal((await store.checkpointOfSize(2))?.note, 'note-2');
      assert.equal(await store.checkpointOfSize(3), undefined);
    });

    it('keeps a receipt per batch id and a quarantined conflict once', async () => {
      const receipt = { batchId: 'b-1', agent: 'AS-CON-001', recordsDigest: 'd', receiptJson: '{"r":1}', signature: 's', createdAt: AT };
      const conflict = { agent: 'AS-CON-001', epoch: 1, seq: 1, recordId: 'r', recordHash: 'x', storedHash: 'y', canonical: '{}', batchId: 'b', traceId: 't', receivedAt: AT };
      await store.write(async (tx) => {
        await enroll(tx);
        await tx.putReceipt(receipt);
        await tx.quarantine(conflict);
        await tx.quarantine(conflict);
      });
      assert.deepEqual(await store.findReceipt('b-1'), receipt);
      assert.equal(await store.findReceipt('b-2'), undefined);
      assert.equal((await store.ledgerCounts()).quarantined, 1);
    });

    it('rolls back everything a write did when its function rejects', async () => {
      await assert.rejects(
        store.write(async (tx) => {
          await enroll(tx);
          await tx.appendRecords([entry(0, 1)]);
          throw new Error('changed my mind');
        }),
        /changed my mind/,
      );
      assert.equal(await store.currentEpoch('AS-CON-001'), undefined);
      assert.equal((await store.ledgerCounts()).size, 0);
    });

    it('remembers a JWT id once until it expires, and forgets expired ones', async () => {
      assert.equal(await store.rememberJti('j-1', 'AS-CON-001', 100, 50), true);
      assert.equal(await store.rememberJti('j-1', 'AS-CON-001', 100, 60), false);
      assert.equal(await store.rememberJti('j-2', 'AS-CON-001', 200, 150), true, 'forgets j-1 past its expiry');
      assert.equal(await store.rememberJti('j-1', 'AS-CON-001', 300, 150), true);
    });

    it('admits a remembered JWT id again only with the same agent and request key (the same request sent again)', async () => {
      assert.equal(await store.rememberJti('j-3', 'AS-CON-001', 100, 50, 'batch-a'), true);
      assert.equal(await store.rememberJti('j-3', 'AS-CON-001', 100, 60, 'batch-a'), true, 'the same request again');
      assert.equal(await store.rememberJti('j-3', 'AS-CON-001', 100, 60, 'batch-b'), false, 'another request: a replay');
      assert.equal(await store.rememberJti('j-3', 'AS-CON-001', 100, 60), false, 'a request without a key: a replay');
      assert.equal(await store.rememberJti('j-3', 'AS-CON-002', 100, 60, 'batch-a'), false, 'another agent');
      assert.equal(await store.rememberJti('j-4', 'AS-CON-001', 100, 60), true);
      assert.equal(await store.rememberJti('j-4', 'AS-CON-001', 100, 60), false, 'no key matches no key');
    });

    it('uses an enrollment token once, never after it is voided, and revokes an epoch once with its ledger index', async () => {
      const token = { tokenHash: 'a'.repeat(64), agent: 'AS-CON-001', createdAt: AT, expiresAt: AT, usedAt: null, forReplacement: false, voidedAt: null };
      await store.write(async (tx) => {
        await tx.putEnrollmentToken(token);
        await tx.putEnrollmentToken({ ...token, tokenHash: 'b'.repeat(64), forReplacement: true });
        assert.equal(await tx.useEnrollmentToken(token.tokenHash, AT), true);
        assert.equal(await tx.useEnrollmentToken(token.tokenHash, AT), false);
        assert.deepEqual(await tx.voidEnrollmentTokens('AS-CON-001', AT), ['b'.repeat(64)]);
        assert.equal(await tx.useEnrollmentToken('b'.repeat(64), AT), false);
        assert.equal((await tx.findEnrollmentToken('b'.repeat(64)))?.forReplacement, true);
        await enroll(tx);
        const revocation = { revokedAt: AT, revokedIndex: 7, supersededBy: null };
        assert.equal(await tx.revokeAgentEpoch('AS-CON-001', 1, revocation), true);
        assert.equal(await tx.revokeAgentEpoch('AS-CON-001', 1, revocation), false);
      });
      const epoch = await store.currentEpoch('AS-CON-001');
      assert.deepEqual([epoch?.revokedAt, epoch?.revokedIndex, epoch?.supersededBy], [AT, 7, null]);
    });

    it('keeps human tokens by hash, lists them, and revokes by id or name', async () => {
      const base = { role: 'auditor' as const, createdAt: AT, expiresAt: null, revokedAt: null, createdBy: 'cli:test' };
      await store.write(async (tx) => {
        await tx.putApiToken({ ...base, id: 'tok_1', name: 'Ravi', tokenHash: '1'.repeat(64) });
        await tx.putApiToken({ ...base, id: 'tok_2', name: 'Ravi', tokenHash: '2'.repeat(64) });
        await tx.putApiToken({ ...base, id: 'tok_3', name: 'Asha', tokenHash: '3'.repeat(64) });
      });
      assert.equal((await store.findApiToken('3'.repeat(64)))?.id, 'tok_3');
      assert.deepEqual((await store.write((tx) => tx.revokeApiTokens({ name: 'Ravi' }, AT))).map((t) => t.id).sort(), ['tok_1', 'tok_2']);
      assert.deepEqual(await store.write((tx) => tx.revokeApiTokens({ id: 'tok_1' }, AT)), []);
      assert.deepEqual((await store.listApiTokens()).map((t) => [t.id, t.revokedAt]), [['tok_1', AT], ['tok_2', AT], ['tok_3', null]]);
    });

    it('records each collector key role once (the first writer wins), in and outside a write', async () => {
      const key = (role: 'log' | 'receipt' | 'chain', kid: string) => ({ role, kid, publicJwk: JWK, recordedAt: AT });
      assert.deepEqual(await store.collectorKeys(), []);
      await store.write(async (tx) => {
        await tx.putCollectorKeys([key('log', 'log-1'), key('receipt', 'receipt-1'), key('chain', 'chain-1')]);
        assert.equal((await tx.collectorKeys()).length, 3, 'a write sees its own keys');
      });
      await store.write((tx) => tx.putCollectorKeys([key('log', 'log-2')]));
      assert.deepEqual(
        (await store.collectorKeys()).map((k) => [k.role, k.kid, k.publicJwk.x]).sort(),
        [['chain', 'chain-1', JWK.x], ['log', 'log-1', JWK.x], ['receipt', 'receipt-1', JWK.x]],
      );
    });

    it('ends a report job once, and at a replica\u2019s start fails its running jobs (and those of no replica), never another replica\u2019s', async () => {
      const job = { id: 'job-1', status: 'running' as const, owner: 'tok_1', actor: 'auditor:x', filterJson: '{}', checkpointSize: 1, createdAt: AT, finishedAt: null, countsJson: null, manifestSha256: null, bundleBytes: null, problemJson: null, expiredAt: null, replica: 'replica-a' };
      await store.write(async (tx) => {
        await tx.putReportJob(job);
        await tx.putReportJob({ ...job, id: 'job-2' });
        await tx.putReportJob({ ...job, id: 'job-3', replica: null });
        await tx.putReportJob({ ...job, id: 'job-4', replica: 'replica-b' });
      });
      assert.equal((await store.findReportJob('job-4'))?.replica, 'replica-b');
      const done = { status: 'done' as const, finishedAt: AT, countsJson: '{}', manifestSha256: 'ab', bundleBytes: 10 };
      assert.equal(await store.write((tx) => tx.finishReportJob('job-1', done)), true);
      assert.equal(await store.write((tx) => tx.finishReportJob('job-1', done)), false);
      assert.deepEqual((await store.write((tx) => tx.failRunningReportJobs({ status: 'failed', finishedAt: AT, problemJson: '{}' }, 'replica-a'))).sort(), ['job-2', 'job-3']);
      assert.equal((await store.findReportJob('job-2'))?.status, 'failed');
      assert.equal((await store.findReportJob('job-4'))?.status, 'running', 'another replica\u2019s job is left running');
    });

    it('gives a report one snapshot bound to its checkpoint size, and none for a size with no checkpoint', async () => {
      await store.write(async (tx) => {
        await enroll(tx);
        await tx.appendRecords([entry(0, 1), entry(1, 2), entry(2, 3)]);
        await tx.putCheckpoint({ size: 2, root: Buffer.alloc(32), note: 'n2', createdAt: AT });
        await tx.putCheckpoint({ size: 3, root: Buffer.alloc(32), note: 'n3', createdAt: AT });
      });
      assert.equal(await store.openReport(5), undefined);
      const report = (await store.openReport(2))!;
      try {
        await store.write((tx) => tx.appendRecords([entry(3, 4)]));
        const rows = [];
        const day = { from: '2026-11-22T00:00:00.000Z', to: '2026-11-23T00:00:00.000Z', kind: null, type: null };
        for await (const row of report.records({ ...day, agentPrefix: null })) rows.push(row.ledgerIndex);
        assert.deepEqual(rows, [0, 1]);
        const narrowed = [];
        for await (const row of report.records({ ...day, agentPrefix: 'AS-OTHER' })) narrowed.push(row.ledgerIndex);
        assert.deepEqual(narrowed, [], 'an agent prefix no record has narrows to nothing');
        assert.equal(report.checkpoint.size, 2);
      } finally {
        await report.close();
      }
    });

    it('gives an audit one read-only snapshot, streamed, however long it runs', async () => {
      await store.write(async (tx) => {
        await enroll(tx);
        await tx.appendRecords([entry(0, 1), entry(1, 2)]);
      });
      const audit = await store.openAudit();
      try {
        await store.write((tx) => tx.appendRecords([entry(2, 3)]));
        const seen = [];
        for await (const row of audit.records()) seen.push(row.ledgerIndex);
        assert.deepEqual(seen, [0, 1]);
        assert.deepEqual(await audit.missingAppendOnlyGuards(), []);
        const epochs = [];
        for await (const row of audit.agentEpochs()) epochs.push([row.agent, row.epoch]);
        assert.deepEqual(epochs, [['AS-CON-001', 1]]);
      } finally {
        await audit.close();
      }
    });

    describe('listFleet', () => {
      const SEEN = ['2026-11-20T00:00:00.000Z', '2026-11-21T12:00:00.000Z', '2026-11-22T03:00:00.000Z'];

      /**
       * A fleet of every kind of epoch: active, revoked, superseded (and their replacements),
       * never seen or seen at different times, backlogs reported or not, one clock-skew row, one
       * witness report, and the COLLECTOR chain.
       */
      async function seedFleet(): Promise<void> {
        await store.write(async (tx) => {
          await enroll(tx, 'COLLECTOR');
          for (let i = 0; i < 14; i++) {
            const agent = `AS-FLT-${String(i).padStart(3, '0')}`;
            await enroll(tx, agent);
            if (i % 3 === 0) {
              await tx.revokeAgentEpoch(agent, 1, { revokedAt: AT, revokedIndex: i, supersededBy: i % 2 === 0 ? 2 : null });
              if (i % 2 === 0) await enroll(tx, agent, 2);
            }
            const epoch = i % 6 === 0 ? 2 : 1;
            if (i % 4 !== 1) {
              await tx.recordAgentContact(agent, epoch, { lastSeenAt: SEEN[i % 3]!, backlog: { pending: i * 10, oldestAt: i > 5 ? AT : null }, version: i % 5 === 0 ? null : `1.${i % 3}.0` });
            }
          }
          await tx.putClockSkew('AS-FLT-002', 1, {
            lastSeq: 0, lastAt: null, caughtUpSeq: null, caughtUpAt: null, implausible: 2, ahead: 1, backwards: 0, behind: 1,
            maxAheadMs: 9000, maxBackwardsMs: null, maxBehindMs: 4000, lastSkew: { seq: 3, at: AT, receivedAt: AT, rule: 'behind', offsetMs: 4000 },
          });
          await tx.recordWitness('AS-FLT-004', 1, { size: 0, at: AT });
        });
      }

      function statusOf(row: AgentEpochSummary): string {
        return row.revokedAt === null ? 'active' : row.supersededBy === null ? 'revoked' : 'superseded';
      }

      /** What listFleet must give: listAgentEpochs, filtered by the contract's words. */
      function expected(all: AgentEpochSummary[], query: Omit<FleetQuery, 'limit' | 'after'>): AgentEpochSummary[] {
        return all.filter(
          (row) =>
            (query.agent === undefined || row.agent === query.agent) &&
            (query.excludeAgent === undefined || row.agent !== query.excludeAgent) &&
            (query.status === undefined || statusOf(row) === query.status) &&
            (query.silentBefore === undefined || row.lastSeenAt === null || row.lastSeenAt < query.silentBefore) &&
            (query.backlogOver === undefined || (row.backlog.pending !== null && row.backlog.pending > query.backlogOver)),
        );
      }

      /** Every page of `query`, `limit` rows at a time, each page after the last row of the one before. */
      async function allPages(query: Omit<FleetQuery, 'limit' | 'after'>, limit: number): Promise<AgentEpochSummary[][]> {
        const pages: AgentEpochSummary[][] = [];
        let after: FleetQuery['after'];
        for (;;) {
          const page = await store.listFleet({ ...query, limit, ...(after ? { after } : {}) });
          if (page.length === 0) return pages;
          assert.ok(page.length <= limit);
          pages.push(page);
          after = { agent: page.at(-1)!.agent, epoch: page.at(-1)!.epoch };
        }
      }

      it('gives exactly the rows of listAgentEpochs that match each filter, in (agent, epoch) order, as the same summaries', async () => {
        await seedFleet();
        const all = await store.listAgentEpochs();
        assert.equal(all.length, 1 + 14 + 3, 'the seeded fleet: COLLECTOR, 14 agents, 3 replacements');
        const queries: Omit<FleetQuery, 'limit' | 'after'>[] = [
          {},
          { excludeAgent: 'COLLECTOR' },
          { status: 'active' },
          { status: 'revoked' },
          { status: 'superseded' },
          { silentBefore: SEEN[1] },
          { silentBefore: SEEN[0] },
          { backlogOver: 0 },
          { backlogOver: 70 },
          { agent: 'AS-FLT-006' },
          { agent: 'AS-NONE-01' },
          { excludeAgent: 'COLLECTOR', status: 'active', silentBefore: SEEN[2], backlogOver: 15 },
        ];
        for (const query of queries) {
          const want = expected(all, query);
          assert.deepEqual(await store.listFleet({ ...query, limit: 500 }), want, JSON.stringify(query));
        }
        assert.ok(expected(all, { status: 'superseded' }).length === 3 && expected(all, { status: 'revoked' }).length === 2, 'the fleet has every state');
        const row = (await store.listFleet({ agent: 'AS-FLT-002', limit: 1 }))[0]!;
        assert.deepEqual([row.clockSkew?.implausible, row.clockSkew?.lastSkew?.rule, row.version, row.backlog.pending], [2, 'behind', '1.2.0', 20]);
        assert.equal((await store.listFleet({ agent: 'AS-FLT-004', limit: 1 }))[0]!.witnessedSize, 0);
        assert.equal((await store.listFleet({ agent: 'AS-FLT-005', limit: 1 }))[0]!.version, null, 'a batch that named no version');
      });

      it('pages by (agent, epoch): every page size gives each matching row once, in order, with no row lost', async () => {
        await seedFleet();
        const all = await store.listAgentEpochs();
        for (const query of [{ excludeAgent: 'COLLECTOR' }, { status: 'superseded' as const }, { backlogOver: 30 }]) {
          for (const limit of [1, 2, 5, 500]) {
            const pages = await allPages(query, limit);
            assert.deepEqual(pages.flat(), expected(all, query), `${JSON.stringify(query)} by ${limit}`);
          }
        }
        const afterEpochOne = await store.listFleet({ agent: 'AS-FLT-000', after: { agent: 'AS-FLT-000', epoch: 1 }, limit: 10 });
        assert.deepEqual(afterEpochOne.map((r) => r.epoch), [2], 'the cursor sits between two epochs of one agent');
        assert.deepEqual(await store.listFleet({ after: { agent: 'ZZZ', epoch: 1 }, limit: 10 }), []);
      });

      it('answers a page from committed data only, and sees the next commit', async () => {
        await seedFleet();
        const before = await store.listFleet({ agent: 'AS-FLT-001', limit: 1 });
        assert.equal(before[0]!.lastSeenAt, null);
        await assert.rejects(
          store.write(async (tx) => {
            await tx.recordAgentContact('AS-FLT-001', 1, { lastSeenAt: AT, backlog: { pending: 1, oldestAt: AT }, version: '9.9.9' });
            assert.equal((await store.listFleet({ agent: 'AS-FLT-001', limit: 1 }))[0]!.version, null, 'not before the commit');
            throw new Error('rolled back');
          }),
          /rolled back/,
        );
        assert.equal((await store.listFleet({ agent: 'AS-FLT-001', limit: 1 }))[0]!.version, null);
        await store.write((tx) => tx.recordAgentContact('AS-FLT-001', 1, { lastSeenAt: AT, backlog: { pending: 1, oldestAt: AT }, version: '9.9.9' }));
        assert.equal((await store.listFleet({ agent: 'AS-FLT-001', limit: 1 }))[0]!.version, '9.9.9');
      });
    });

    it('answers StoreUnavailableError while its database refuses writes, commits nothing, and is ready again after', async () => {
      await store.write((tx) => enroll(tx));
      const release = await backend.blockWrites(location);
      try {
        await assert.rejects(
          store.write((tx) => tx.appendRecords([entry(0, 1)])),
          (err: unknown) => err instanceof StoreUnavailableError,
        );
      } finally {
        await release();
      }
      await store.ping();
      assert.equal((await store.ledgerCounts()).size, 0);
      await store.write((tx) => tx.appendRecords([entry(0, 1)]));
      assert.equal((await store.ledgerCounts()).size, 1);
    });
  });
}
