/**
 * The per-agent rate limit against a REAL agent (`sakshya-agent run`): with a tiny bucket the
 * collector answers 429 + Retry-After, the agent waits that long (not counted as a failure) and
 * still delivers its whole backlog, each record once.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadAgentKey } from '../../../agent/keys.ts';
import { outboxPath, SqliteOutbox } from '../../../agent/outbox/sqlite-outbox.ts';
import { eventually, initAgent, startAgentProcess, type AgentProcess } from '../../helpers/agent-process.ts';
import { makeTempDir, startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';

describe('collector security: the per-agent rate limit and a real agent', function () {
  this.timeout(60_000);
  let collector: InProcessCollector;
  let agent: AgentProcess | undefined;

  before(async () => {
    collector = await startCollectorInProcess({ env: { SAKSHYA_RATE_AGENT_PER_SECOND: '1', SAKSHYA_RATE_AGENT_BURST: '2' } });
  });
  after(async () => {
    await agent?.stop();
    await collector?.stop();
  });

  it('answers a draining agent 429 with Retry-After, and the agent waits that long and still delivers every record exactly once', async () => {
    const id = 'AS-RATE-001';
    const { token } = await collector.container.enrollment.issueToken(id);
    const dir = join(makeTempDir('sakshya-agent-rate-'), 'agent');
    await initAgent({ collectorUrl: collector.url, agentId: id, token, dir });
    const outbox = SqliteOutbox.open(outboxPath(dir));
    try {
      const key = loadAgentKey(dir);
      for (let i = 0; i < 40; i++) outbox.append({ kind: 'audit', type: 'test.rate', body: { i } }, key);
    } finally {
      outbox.close();
    }
    agent = await startAgentProcess({ dir, env: { SAKSHYA_AGENT_BATCH_MAX_RECORDS: '5', SAKSHYA_AGENT_SYNC_INTERVAL_MS: '50' } });

    const limited = await agent.waitForLog((line) => line.reason === 'rate_limited', 20_000);
    assert.equal(limited.status, 429);
    assert.ok((limited.retryInMs as number) >= 1000, `the agent waits Retry-After (1 s), not less: ${String(limited.retryInMs)} ms`);

    const listing = await eventually('the whole backlog in the ledger', async () => {
      const row = (await collector.container.enrollment.listAgents()).find((a) => a.agent === id);
      return row && row.highestSeq >= 40 ? row : undefined;
    }, 40_000, 200);
    assert.equal(listing.ledgerEntries, listing.highestSeq, 'each record once, no gaps');
    assert.deepEqual(listing.gaps, []);
    const refusals = agent.logs.filter((line) => line.msg === 'batch refused by the collector');
    assert.deepEqual(refusals, [], 'a 429 is a wait, never a refusal');
  });
});
