/**
 * The copy and its proof (services/database-copy.ts) between two SQLite files, without a
 * PostgreSQL server: the same code path as SQLite to PostgreSQL but for the target's backend.
 * A source that a collector writes to between the copy and its proof is caught — as `db copy`
 * runs them, on one DatabaseCopy — and a copy whose keys directory is not the source's is
 * refused before anything is written.
 */
import { sqliteOnly } from '../../helpers/postgres.ts';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadCollectorConfig } from '../../../collector/config.ts';
import { createContainer } from '../../../collector/container.ts';
import { ensureCollectorKeys, loadCollectorKeys } from '../../../collector/keys.ts';
import { CollectorKeyMismatchError } from '../../../collector/services/collector-identity.ts';
import { CopyRefusedError, DatabaseCopy } from '../../../collector/services/database-copy.ts';
import { formatProof } from '../../../collector/services/database-copy/report.ts';
import { createLogger } from '../../../shared/logger.ts';
import { makeTempDir, startCollectorInProcess, TEST_ORIGIN } from '../../helpers/collector-process.ts';
import { TestAgent } from './test-agent.ts';

describe('db copy between SQLite files: the copy, its proof, and a source that moves on', function () {
  before(function () {
    sqliteOnly(this, 'it copies between SQLite files');
  });
  this.timeout(60_000);
  let dir: string;
  let source: string;
  const logger = createLogger('collector', 'warn', { write: () => {} });

  const copyInto = (target: string, keysDir = dir) =>
    new DatabaseCopy({
      from: { url: `sqlite:${source}` },
      to: { url: `sqlite:${target}` },
      origin: TEST_ORIGIN,
      keys: loadCollectorKeys(keysDir),
      openTarget: () => createContainer(loadCollectorConfig({ SAKSHYA_COLLECTOR_ORIGIN: TEST_ORIGIN }, { dir: keysDir, database: `sqlite:${target}` }), { logger, mode: 'existing' }),
    });

  before(async () => {
    const collector = await startCollectorInProcess();
    try {
      for (const id of ['AS-SQL-001', 'AS-SQL-002']) {
        const agent = new TestAgent(id, collector.url, collector.origin);
        assert.equal((await agent.enroll((await collector.container.enrollment.issueToken(id)).token)).status, 200);
        await agent.sendOk(agent.batch(agent.records(3)));
        await agent.sendOk(agent.batch(agent.records(2)));
      }
    } finally {
      await collector.stop();
    }
    dir = collector.dir;
    source = join(dir, 'collector.db');
  });

  it('copies into a new file and proves it; then a write to the source fails the proof, named as such', async () => {
    const target = join(makeTempDir(), 'copy.db');
    const copy = copyInto(target);
    const copied = await copy.copy();
    assert.equal(copied.tables.records, copied.ledger.size);
    assert.equal(copied.tables.receipts, 4);
    const proof = await copy.prove();
    assert.equal(proof.proved, true, formatProof(proof));
    assert.ok(proof.checks.some((c) => c.name === 'source_unchanged' && c.ok));

    // A collector still running on the source: it takes one more write after the copy.
    const writer = await startCollectorInProcess({ dir });
    try {
      await writer.container.enrollment.issueToken('AS-SQL-003');
    } finally {
      await writer.stop();
    }
    const after = await copy.prove();
    assert.equal(after.proved, false);
    const unchanged = after.checks.find((c) => c.name === 'source_unchanged')!;
    assert.equal(unchanged.ok, false);
    assert.match(unchanged.detail, new RegExp(`ledger size ${copied.ledger.size} in the copy's snapshot, ${copied.ledger.size + 1} now; a collector is still writing to it`));
    // The token's COLLECTOR record: its entry, Merkle nodes, checkpoint, count, the chain's head; and the token.
    assert.deepEqual(
      after.tables.filter((t) => !t.identical).map((t) => t.table),
      ['agent_epochs', 'records', 'merkle_subtrees', 'checkpoints', 'ledger_kind_counts', 'enrollment_tokens'],
    );
    assert.match(formatProof(after), /COPY NOT PROVED/);
  });

  it('refuses a keys directory that did not write the source, before creating the target', async () => {
    const strangerDir = makeTempDir();
    ensureCollectorKeys(strangerDir);
    const target = join(makeTempDir(), 'copy.db');
    await assert.rejects(copyInto(target, strangerDir).copy(), (err: unknown) => err instanceof CollectorKeyMismatchError && /log key .* is not the one the database was initialised with/.test(err.message));
    assert.equal(existsSync(target), false);
  });

  it('refuses to copy a database onto itself', async () => {
    await assert.rejects(copyInto(source).copy(), (err: unknown) => err instanceof CopyRefusedError && /--from and --to name the same database/.test(err.message));
  });
});
