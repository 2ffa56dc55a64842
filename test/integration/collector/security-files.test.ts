/**
 * The collector's files on disk: its database (with -wal and -shm), keys and report spool are
 * private to the user running it whatever the umask it was started with, and a data directory
 * that others can write to is refused at start (shared/private-files.ts).
 */
import { sqliteOnly } from '../../helpers/postgres.ts';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTempDir, runCollectorCli, startCollectorProcess, TEST_ORIGIN } from '../../helpers/collector-process.ts';
import { request } from './test-agent.ts';

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

/** Starts `serve` on `dir`; resolves with its error output if it refuses to start, or 'listening'. */
async function serveOutcome(dir: string): Promise<string> {
  return startCollectorProcess({ dir, timeoutMs: 20_000 }).then(
    async (collector) => {
      await collector.stop();
      return 'listening';
    },
    (err: Error) => err.message,
  );
}

describe('collector security: files on disk', function () {
  before(function () {
    sqliteOnly(this, 'it checks the modes of the SQLite file and its -wal and -shm');
  });
  this.timeout(60_000);
  let root: string;

  beforeEach(() => {
    root = makeTempDir('sakshya-collector-files-');
  });
  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('a collector database created under umask 000 is not readable by other users', async () => {
    const dir = join(root, 'collector');
    const collector = await startCollectorProcess({ dir, umask: '000' });
    try {
      const env = { SAKSHYA_COLLECTOR_DIR: dir };
      const issued = await runCollectorCli(['tokens', 'issue', '--role', 'auditor', '--name', 'files-test'], env);
      assert.equal(issued.code, 0, issued.stderr);
      // An export job makes the report spool directory (reports/) in the running server.
      const started = await request(`${collector.url}/api/v1/reports`, {
        method: 'POST',
        headers: { authorization: `Bearer ${issued.stdout.trim()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ from: '2026-01-01', to: '2027-01-01' }),
      });
      assert.equal(started.status, 202, started.text);
      const { id } = started.body as { id: string };
      const reports = join(dir, 'reports');
      for (let i = 0; i < 100 && !existsSync(join(reports, id)); i++) await sleep(100);

      // Checked while the server runs: SQLite keeps the -wal and -shm files until it closes.
      assert.equal(mode(dir), 0o700, 'data directory');
      for (const file of ['collector.db', 'collector.db-wal', 'collector.db-shm']) assert.equal(mode(join(dir, file)), 0o600, file);
      assert.equal(mode(join(dir, 'keys')), 0o700, 'keys/');
      for (const file of readdirSync(join(dir, 'keys'))) assert.equal(mode(join(dir, 'keys', file)), 0o600, `keys/${file}`);
      assert.equal(mode(reports), 0o700, 'reports/');
      assert.equal(mode(join(reports, id)), 0o700, `reports/${id}`);
    } finally {
      await collector.stop();
    }
  });

  it('a collector database left readable by others by an earlier version is narrowed to 0600 at start', async () => {
    const dir = join(root, 'collector');
    const migrated = await runCollectorCli(['migrate'], { SAKSHYA_COLLECTOR_DIR: dir });
    assert.equal(migrated.code, 0, migrated.stderr);
    chmodSync(join(dir, 'collector.db'), 0o644);
    const collector = await startCollectorProcess({ dir });
    try {
      for (const file of ['collector.db', 'collector.db-wal', 'collector.db-shm']) assert.equal(mode(join(dir, file)), 0o600, file);
    } finally {
      await collector.stop();
    }
  });

  it('a group-writable collector directory is refused at start', async () => {
    const dir = join(root, 'collector');
    const migrated = await runCollectorCli(['migrate'], { SAKSHYA_COLLECTOR_DIR: dir });
    assert.equal(migrated.code, 0, migrated.stderr);
    chmodSync(dir, 0o770);
    const outcome = await serveOutcome(dir);
    assert.match(outcome, /exited with code 1 before listening/);
    assert.match(outcome, new RegExp(`data directory ${dir} has mode 0770: group or others can write to it`));
    assert.match(outcome, new RegExp(`chmod 700 ${dir}`));
    // Every other command that opens the directory refuses it too, and none changes its mode.
    for (const args of [['migrate'], ['checkpoint'], ['agents', 'enroll', '--agent', 'AS-FILES-001']]) {
      const refused = await runCollectorCli(args, { SAKSHYA_COLLECTOR_DIR: dir, SAKSHYA_COLLECTOR_ORIGIN: TEST_ORIGIN });
      assert.equal(refused.code, 1, `${args.join(' ')}: ${refused.stderr}`);
      assert.match(refused.stderr, new RegExp(`sakshya-collector: the data directory ${dir} .*chmod 700 ${dir}`), args.join(' '));
    }
    assert.equal(mode(dir), 0o770);
  });

  it('a collector directory writable by others, or a keys directory writable by its group, is refused at start', async () => {
    const dir = join(root, 'collector');
    const migrated = await runCollectorCli(['agents', 'enroll', '--agent', 'AS-FILES-002'], { SAKSHYA_COLLECTOR_DIR: dir });
    assert.equal(migrated.code, 0, migrated.stderr);
    chmodSync(dir, 0o703);
    assert.match(await serveOutcome(dir), new RegExp(`mode 0703: group or others can write to it.*chmod 700 ${dir}`));
    chmodSync(dir, 0o700);
    chmodSync(join(dir, 'keys'), 0o770);
    assert.match(await serveOutcome(dir), new RegExp(`data directory ${join(dir, 'keys')} has mode 0770.*chmod 700 ${join(dir, 'keys')}`));
    chmodSync(join(dir, 'keys'), 0o750);
    assert.equal(await serveOutcome(dir), 'listening', 'a directory others may only read is accepted');
  });
});
