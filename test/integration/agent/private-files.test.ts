/**
 * The agent's files on disk: its directory, outbox (with -wal and -shm), keys and local token are
 * private to the user running it whatever the umask it was started with, and an agent directory
 * that others can write to is refused by every command that opens it (shared/private-files.ts).
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initAgent, runAgentCli, startAgentProcess } from '../../helpers/agent-process.ts';
import { FakeCollector } from '../../unit/agent/support/fake-collector.ts';

const AGENT = 'AS-FILES-001';

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

describe('sakshya-agent files on disk', function () {
  this.timeout(60_000);
  let collector: FakeCollector;
  let root: string;

  beforeEach(async () => {
    collector = await FakeCollector.start();
    root = mkdtempSync(join(tmpdir(), 'sakshya-agent-files-'));
  });
  afterEach(async () => {
    await collector.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('an agent outbox created under umask 000 is not readable by other users', async () => {
    const dir = join(root, 'agent');
    const init = await runAgentCli(['init', '--collector', collector.url, '--agent', AGENT, '--token', collector.issueToken(AGENT), '--dir', dir], {}, { umask: '000' });
    assert.equal(init.code, 0, init.stderr);
    const agent = await startAgentProcess({ dir, umask: '000' });
    try {
      const written = await fetch(`http://127.0.0.1:${agent.port}/v1/records`, {
        method: 'POST',
        headers: { authorization: `Bearer ${agent.localToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ kind: 'audit', type: 'certificate.issued', body: { n: 1 } }),
      });
      assert.equal(written.status, 201);
      // Checked while `run` has the outbox open: SQLite keeps the -wal and -shm files until it closes.
      assert.equal(mode(dir), 0o700, 'agent directory');
      for (const file of ['outbox.db', 'outbox.db-wal', 'outbox.db-shm', 'agent-key.jwk', 'local-token']) assert.equal(mode(join(dir, file)), 0o600, file);
    } finally {
      await agent.stop();
    }
  });

  it('a group-writable agent directory is refused at start by every command that opens it', async () => {
    const { dir } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir: join(root, 'agent') });
    chmodSync(dir, 0o770);
    const env = { SAKSHYA_AGENT_DIR: dir };
    const commands = [['run'], ['emit', '--kind', 'audit', '--type', 'a.b', '--body', '{}'], ['sync', '--once'], ['status', '--json'], ['verify'], ['rotate-key'], ['witness', 'clear']];
    for (const args of commands) {
      const refused = await runAgentCli(args, env, { timeoutMs: 20_000 });
      assert.equal(refused.code, 1, `${args[0]}: ${refused.stderr}`);
      assert.match(refused.stderr, new RegExp(`sakshya-agent: the data directory ${dir} has mode 0770: group or others can write to it.*chmod 700 ${dir}`), args[0]);
    }
    assert.equal(mode(dir), 0o770, 'the mode is the operator\u2019s to fix, not changed behind their back');
    assert.equal(collector.stored(AGENT).length, 0);
  });

  it('init refuses an existing agent directory that others can write to, and writes nothing into it', async () => {
    const dir = join(root, 'agent');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const refused = await runAgentCli(['init', '--collector', collector.url, '--agent', AGENT, '--token', collector.issueToken(AGENT), '--dir', dir]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`data directory ${dir} has mode 0777.*chmod 700 ${dir}`));
    assert.equal(existsSync(join(dir, 'agent-key.jwk')), false);
  });
});
