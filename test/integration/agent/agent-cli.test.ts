/**
 * The real `sakshya-agent` commands and `run` process, against an in-process fake collector
 * (test/unit/agent/support/fake-collector.ts). sync.test.ts covers the real collector.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initAgent, runAgentCli, startAgentProcess, type AgentProcess } from '../../helpers/agent-process.ts';
import { FakeCollector } from '../../unit/agent/support/fake-collector.ts';
import type { SignedRecord } from '../../../shared/record.ts';

const AGENT = 'AS-CLI-001';

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

function assertOneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n').filter((line) => !line.startsWith('{'));
  assert.ok(lines.length >= 1, `an error line on stderr: ${stderr}`);
  assert.match(lines.join('\n'), pattern);
  assert.doesNotMatch(stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace');
}

describe('sakshya-agent commands against a fake collector', function () {
  this.timeout(60_000);
  let collector: FakeCollector;
  let root: string;

  beforeEach(async () => {
    collector = await FakeCollector.start();
    root = mkdtempSync(join(tmpdir(), 'sakshya-agent-cli-'));
  });

  afterEach(async () => {
    await collector.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('init enrolls, pins the collector and creates the directory, key and token with private modes', async () => {
    const dir = join(root, 'agent');
    const { result } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir });
    assert.deepEqual(JSON.parse(result.stdout).agent, AGENT);
    assert.equal(mode(dir), 0o700);
    assert.equal(mode(join(dir, 'agent-key.jwk')), 0o600);
    assert.equal(mode(join(dir, 'local-token')), 0o600);
    const status = await runAgentCli(['status', '--json'], { SAKSHYA_AGENT_DIR: dir });
    assert.equal(status.code, 0, status.stderr);
    const parsed = JSON.parse(status.stdout) as { agent: string; epoch: number; collector: string; pending: number; acked: number };
    assert.deepEqual([parsed.agent, parsed.epoch, parsed.collector, parsed.pending, parsed.acked], [AGENT, 1, collector.url, 0, 0]);
    assert.ok(!result.stderr.includes(readFileSync(join(dir, 'local-token'), 'utf8').trim()), 'the local token is not logged');
  });

  it('init with a refused token prints the collector\u2019s problem, leaves nothing behind, and a retry with a good token works', async () => {
    const dir = join(root, 'agent');
    const refused = await runAgentCli(['init', '--collector', collector.url, '--agent', AGENT, '--token', 'not-a-real-token-0000', '--dir', dir]);
    assert.notEqual(refused.code, 0);
    assertOneLineError(refused.stderr, /enrollment refused by the collector \(401 enroll\.token_invalid\): the enrollment token is unknown/);
    assert.equal(existsSync(dir), false, 'no half-initialised directory');
    await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir });
  });

  it('init cleans up after an unreachable collector, in a directory that already existed', async () => {
    const refused = await runAgentCli(['init', '--collector', 'http://127.0.0.1:9', '--agent', AGENT, '--token', 'x'.repeat(20), '--dir', root]);
    assert.notEqual(refused.code, 0);
    assertOneLineError(refused.stderr, /cannot reach the collector at http:\/\/127\.0\.0\.1:9/);
    assert.deepEqual(existsSync(join(root, 'agent-key.jwk')), false);
    assert.ok(existsSync(root), 'a directory it did not create is kept');
  });

  it('init refuses an initialised directory and changes nothing', async () => {
    const dir = join(root, 'agent');
    await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir });
    const key = readFileSync(join(dir, 'agent-key.jwk'), 'utf8');
    const again = await runAgentCli(['init', '--collector', collector.url, '--agent', AGENT, '--token', collector.issueToken(AGENT), '--dir', dir]);
    assert.notEqual(again.code, 0);
    assertOneLineError(again.stderr, /already initialised \(agent AS-CLI-001, epoch 1/);
    assert.equal(readFileSync(join(dir, 'agent-key.jwk'), 'utf8'), key);
  });

  it('lists every configuration problem at once and exits non-zero', async () => {
    const result = await runAgentCli(['status', '--json'], { SAKSHYA_AGENT_PORT: 'seventy', SAKSHYA_AGENT_BATCH_MAX_RECORDS: '0', SAKSHYA_AGENT_TELEMETRY_CRON: 'every minute' });
    assert.equal(result.code, 2);
    for (const name of ['SAKSHYA_AGENT_DIR', 'SAKSHYA_AGENT_PORT', 'SAKSHYA_AGENT_BATCH_MAX_RECORDS', 'SAKSHYA_AGENT_TELEMETRY_CRON']) {
      assert.match(result.stderr, new RegExp(name), name);
    }
    assert.equal(result.stdout, '');
  });

  it('emit prints the id and seq, refuses bad input with one clear line, and sync --once drains the outbox', async () => {
    const { dir } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir: join(root, 'agent') });
    const env = { SAKSHYA_AGENT_DIR: dir, SAKSHYA_AGENT_BATCH_MAX_RECORDS: '2' };
    for (let i = 1; i <= 5; i++) {
      const emitted = await runAgentCli(['emit', '--kind', 'audit', '--type', 'certificate.issued', '--body', JSON.stringify({ i })], env);
      assert.equal(emitted.code, 0, emitted.stderr);
      const out = JSON.parse(emitted.stdout) as { id: string; seq: number };
      assert.equal(out.seq, i);
      assert.match(out.id, /^[0-9a-f-]{36}$/);
    }
    const badJson = await runAgentCli(['emit', '--kind', 'audit', '--type', 'a.b', '--body', '{oops'], env);
    assert.equal(badJson.code, 2);
    assertOneLineError(badJson.stderr, /--body is not valid JSON/);
    const badKind = await runAgentCli(['emit', '--kind', 'gossip', '--type', 'a.b', '--body', '{}'], env);
    assert.notEqual(badKind.code, 0);
    assertOneLineError(badKind.stderr, /kind/);
    const forged = await runAgentCli(['emit', '--kind', 'agent', '--type', 'witness.alarm', '--body', '{}'], env);
    assert.equal(forged.code, 2);
    assertOneLineError(forged.stderr, /witness records are written by the agent itself/);
    const withAt = await runAgentCli(['emit', '--kind', 'telemetry', '--type', 'app.health', '--body', '{}', '--at', '2026-11-22T04:33:05.123Z'], env);
    assert.equal(JSON.parse(withAt.stdout).seq, 6);

    const synced = await runAgentCli(['sync', '--once'], env);
    assert.equal(synced.code, 0, synced.stderr);
    assert.deepEqual(JSON.parse(synced.stdout), { acknowledged: 6, batches: 3, pending: 0 });
    const stored = collector.stored(AGENT).map((text) => JSON.parse(text) as SignedRecord);
    assert.deepEqual(stored.map((r) => r.seq), [1, 2, 3, 4, 5, 6]);
    assert.equal(stored[5]!.at, '2026-11-22T04:33:05.123Z');
    const status = JSON.parse((await runAgentCli(['status', '--json'], env)).stdout) as { pending: number; acked: number; lastReceipt: { highestSeq: number } };
    assert.equal(status.pending, 0);
    assert.equal(status.acked, 6);
    assert.equal(status.lastReceipt.highestSeq, 6);
  });

  it('sync --once fails with a message when the collector is down, and status shows the error', async () => {
    const { dir } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir: join(root, 'agent') });
    const env = { SAKSHYA_AGENT_DIR: dir };
    await runAgentCli(['emit', '--kind', 'audit', '--type', 'a.b', '--body', '{}'], env);
    await collector.stop();
    const failed = await runAgentCli(['sync', '--once'], env);
    assert.equal(failed.code, 1);
    assertOneLineError(failed.stderr, /sync failed \(network\) for records 1\.\.1: ECONNREFUSED/);
    const status = JSON.parse((await runAgentCli(['status', '--json'], env)).stdout) as { pending: number; lastError: { reason: string }; nextAttemptAt: string };
    assert.equal(status.pending, 1);
    assert.equal(status.lastError.reason, 'network');
    assert.ok(status.nextAttemptAt);
  });

  it('sync --once acknowledges nothing when the receipt is not signed by the pinned key', async () => {
    const { dir } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir: join(root, 'agent') });
    const env = { SAKSHYA_AGENT_DIR: dir };
    await runAgentCli(['emit', '--kind', 'audit', '--type', 'a.b', '--body', '{}'], env);
    collector.behaviours.push({ kind: 'foreign_signature' });
    const failed = await runAgentCli(['sync', '--once'], env);
    assert.equal(failed.code, 1);
    assertOneLineError(failed.stderr, /receipt signature does not verify/);
    const status = JSON.parse((await runAgentCli(['status', '--json'], env)).stdout) as { pending: number; acked: number; lastError: { reason: string } };
    assert.deepEqual([status.pending, status.acked, status.lastError.reason], [1, 0, 'bad_receipt']);
  });

  it('sync --once witnesses the log; a forked history raises an alarm that status shows until `witness clear`', async () => {
    const { dir } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir: join(root, 'agent') });
    const env = { SAKSHYA_AGENT_DIR: dir };
    const status = async () => JSON.parse((await runAgentCli(['status', '--json'], env)).stdout) as {
      witness: { verified: { size: number } | null };
      witnessAlarm: { reason: string; previous: { size: number } } | null;
    };
    await runAgentCli(['emit', '--kind', 'audit', '--type', 'a.b', '--body', '{"n":1}'], env);
    assert.equal((await runAgentCli(['sync', '--once'], env)).code, 0);
    const honest = await status();
    assert.equal(honest.witness.verified?.size, 1);
    assert.equal(honest.witnessAlarm, null);

    collector.log.rewrite(0);
    await runAgentCli(['emit', '--kind', 'audit', '--type', 'a.b', '--body', '{"n":2}'], env);
    const synced = await runAgentCli(['sync', '--once'], env);
    assert.equal(synced.code, 4, 'exit 4: delivered, but the witness alarm is active');
    assert.equal(JSON.parse(synced.stdout).acknowledged, 1, 'the records are acknowledged all the same');
    assert.ok(synced.stderr.split('\n').some((line) => line.includes('"level":50') && line.includes('"alert":"witness"')), 'logged at error');
    const alarmed = await status();
    assert.equal(alarmed.witnessAlarm?.reason, 'inconsistent');
    assert.equal(alarmed.witnessAlarm?.previous.size, 1);
    assert.equal(alarmed.witness.verified?.size, 1);
    assert.match((await runAgentCli(['status'], env)).stdout, /^WITNESS ALARM since \S+: inconsistent: /m);

    const cleared = await runAgentCli(['witness', 'clear'], env);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.match(cleared.stdout, /^cleared the witness alarm \(inconsistent, raised \S+\); recorded as seq 4$/m);
    assert.equal((await status()).witnessAlarm, null);
    assert.equal((await runAgentCli(['witness', 'clear'], env)).stdout, 'no witness alarm to clear\n');
    const verified = await runAgentCli(['verify'], env);
    assert.equal(verified.code, 0, verified.stdout);
    assert.match(verified.stdout, /^outbox intact: 4 records in 1 epoch\(s\), 2 acknowledged, 2 receipts$/m);
  });

  it('refuses to use a private key that others can read', async () => {
    const { dir } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir: join(root, 'agent') });
    chmodSync(join(dir, 'agent-key.jwk'), 0o644);
    const result = await runAgentCli(['emit', '--kind', 'audit', '--type', 'a.b', '--body', '{}'], { SAKSHYA_AGENT_DIR: dir });
    assert.equal(result.code, 1);
    assertOneLineError(result.stderr, /must not be readable by group or others/);
  });

  describe('run', () => {
    let agentProcess: AgentProcess | undefined;
    afterEach(async () => {
      await agentProcess?.kill9();
      agentProcess = undefined;
    });

    async function postRecord(port: number, token: string, body: unknown): Promise<{ id: string; seq: number }> {
      const response = await fetch(`http://127.0.0.1:${port}/v1/records`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ kind: 'audit', type: 'certificate.issued', body }),
      });
      assert.equal(response.status, 201, await response.clone().text());
      return (await response.json()) as { id: string; seq: number };
    }

    async function waitForStatus(port: number, token: string, predicate: (s: { pending: number; acked: number }) => boolean, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const status = (await (await fetch(`http://127.0.0.1:${port}/v1/status`, { headers: { authorization: `Bearer ${token}` } })).json()) as { pending: number; acked: number };
        if (predicate(status)) return status;
        if (Date.now() > deadline) throw new Error(`status never matched: ${JSON.stringify(status)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    it('serves the local API on a free port, syncs what it receives, and stops cleanly on SIGTERM', async () => {
      const { dir } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir: join(root, 'agent') });
      agentProcess = await startAgentProcess({ dir });
      const { port, localToken } = agentProcess;
      assert.ok(port > 0);
      for (let i = 0; i < 5; i++) await postRecord(port, localToken, { i });
      await waitForStatus(port, localToken, (s) => s.acked === 5 && s.pending === 0);
      assert.equal(collector.stored(AGENT).length, 5);
      assert.ok(agentProcess.logs.some((l) => l.msg === 'effective config'), 'logs its effective config');
      assert.ok(agentProcess.logs.some((l) => l.msg === 'batch acknowledged' && typeof l.traceId === 'string'));
      for (const line of agentProcess.logs) assert.ok(!JSON.stringify(line).includes(localToken), 'token never logged');
      assert.equal(await agentProcess.stop(), 0);
      assert.equal(agentProcess.stdout(), '', 'logs go to stderr only');
    });

    it('writes system telemetry on its cron schedule', async () => {
      const { dir } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir: join(root, 'agent') });
      agentProcess = await startAgentProcess({ dir, env: { SAKSHYA_AGENT_TELEMETRY_CRON: '* * * * * *' } });
      await waitForStatus(agentProcess.port, agentProcess.localToken, (s) => s.acked >= 1, 10_000);
      const [first] = collector.stored(AGENT).map((text) => JSON.parse(text) as SignedRecord);
      assert.equal(first!.kind, 'telemetry');
      assert.equal(first!.type, 'system.health');
      const body = first!.body as { load: object; memory: { totalBytes: number }; disk: { freeBytes: number }; uptime: object; backlog: { pending: number } };
      assert.ok(body.memory.totalBytes > 0);
      assert.ok(body.disk.freeBytes > 0);
      assert.ok('1m' in body.load);
      assert.equal(typeof body.backlog.pending, 'number');
    });

    it('loses and duplicates nothing when killed with SIGKILL while records are being written and synced', async () => {
      const { dir } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir: join(root, 'agent') });
      const env = { SAKSHYA_AGENT_BATCH_MAX_RECORDS: '3' };
      agentProcess = await startAgentProcess({ dir, env });
      const answered: Array<{ id: string; seq: number }> = [];
      // Every fourth batch: committed at the collector, but the answer is lost.
      for (let i = 0; i < 20; i++) collector.behaviours.push(i % 4 === 3 ? { kind: 'commit_then_drop' } : { kind: 'none' });
      // The writer keeps going until the kill cuts it off mid-request.
      const writer = (async () => {
        for (let i = 0; i < 10_000; i++) {
          try {
            answered.push(await postRecord(agentProcess!.port, agentProcess!.localToken, { i }));
          } catch {
            return; // the process was killed mid-request: that record got no 201
          }
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await agentProcess.kill9();
      await writer;
      agentProcess = await startAgentProcess({ dir, env });
      const final = await waitForStatus(agentProcess.port, agentProcess.localToken, (s) => s.pending === 0);
      const stored = collector.stored(AGENT).map((text) => JSON.parse(text) as SignedRecord);
      assert.equal(stored.length, final.acked);
      assert.deepEqual(stored.map((r) => r.seq), Array.from({ length: stored.length }, (_, i) => i + 1), 'gapless, each seq once');
      const ids = new Set(stored.map((r) => r.id));
      assert.equal(ids.size, stored.length, 'no record twice');
      for (const { id, seq } of answered) assert.ok(ids.has(id) && stored[seq - 1]!.id === id, `answered record ${seq} delivered`);
      assert.ok(answered.length > 0 && answered.length < 10_000, `${answered.length} records answered before the kill`);
      assert.ok(final.acked >= answered.length);
    });
  });
});
