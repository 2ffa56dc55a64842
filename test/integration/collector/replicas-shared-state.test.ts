/**
 * What two collector replicas on one PostgreSQL database share through it: an agent's rate
 * limit (one bucket, not one per replica), the JWT replay cache, the stored receipt answering a
 * batch sent again to the other replica, and report jobs (status from either; the bundle from
 * the replica that keeps it, the other one saying which).
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import type { SignedReceipt } from '../../../shared/protocol.ts';
import { makeTempDir, startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { createTestDatabase, requirePostgres, type TestDatabase } from '../../helpers/postgres.ts';
import { parseExposition, sampleValue } from '../../helpers/prometheus-text.ts';
import { assertProblem } from './http-assertions.ts';
import { enrolledAgent, humanToken } from './security-support.ts';
import { request, TestAgent } from './test-agent.ts';

describe('collector replicas on one PostgreSQL database share their state through it', function () {
  this.timeout(60_000);
  let database: TestDatabase | undefined;
  let a: InProcessCollector | undefined;
  let b: InProcessCollector | undefined;

  before(async function () {
    const admin = requirePostgres(this);
    database = await createTestDatabase(admin);
    const env = { SAKSHYA_COLLECTOR_DATABASE: database.url, SAKSHYA_RATE_AGENT_PER_SECOND: '0.01', SAKSHYA_RATE_AGENT_BURST: '6' };
    a = await startCollectorInProcess({ env: { ...env, SAKSHYA_COLLECTOR_REPLICA: 'replica-a' } });
    const dirB = makeTempDir();
    cpSync(join(a.dir, 'keys'), join(dirB, 'keys'), { recursive: true });
    b = await startCollectorInProcess({ dir: dirB, env: { ...env, SAKSHYA_COLLECTOR_REPLICA: 'replica-b' } });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await database?.drop();
  });

  /** The same agent, talking to replica `to`. */
  function via(agent: TestAgent, to: InProcessCollector): TestAgent {
    agent.collectorUrl = to.url;
    return agent;
  }

  it('answers a batch sent again to the other replica with the stored receipt, byte for byte, and stores it once', async () => {
    const agent = await enrolledAgent(a!, 'AS-REP');
    const batch = agent.batch(agent.records(3));
    const first = await via(agent, a!).send(batch);
    assert.equal(first.status, 200, first.text);
    const again = await via(agent, b!).send(batch);
    assert.equal(again.status, 200, again.text);
    assert.equal(again.text, first.text);
    assert.equal((again.body as SignedReceipt).receipt.accepted, 3);
    assert.equal((await b!.container.ledger.stats()).size, (await a!.container.ledger.stats()).size);
  });

  it('refuses a JWT already used at the other replica (one replay cache)', async () => {
    const agent = await enrolledAgent(a!, 'AS-REP');
    const token = await agent.token();
    assert.equal((await via(agent, a!).send(agent.batch(agent.records(1)), { token })).status, 200);
    const replayed = await via(agent, b!).send(agent.batch(agent.records(1)), { token });
    assertProblem(replayed, 401, 'auth.invalid_token');
    assert.match(replayed.text, /already used/);
  });

  it('holds an agent to one rate limit across replicas, not one per replica', async () => {
    const agent = await enrolledAgent(a!, 'AS-REP');
    const statuses: number[] = [];
    // A burst of 6 in all: alternating replicas, the 7th request is refused wherever it goes.
    for (let i = 0; i < 8; i++) {
      const answer = await via(agent, i % 2 === 0 ? a! : b!).send(agent.batch([]), {});
      statuses.push(answer.status);
      if (answer.status === 429) assertProblem(answer, 429, 'rate.limited');
    }
    assert.equal(statuses.filter((s) => s !== 429).length, 6, statuses.join(' '));
    assert.deepEqual(statuses.slice(6), [429, 429]);
  });

  it('shows each replica\u2019s own database pool in its metrics, next to the same ledger-wide numbers', async () => {
    const [ea, eb] = [parseExposition(await a!.container.metrics.exposition()), parseExposition(await b!.container.metrics.exposition())];
    for (const e of [ea, eb]) {
      assert.ok(sampleValue(e, 'sakshya_collector_db_pool_connections', { state: 'total' }) >= 1);
      assert.ok(e.samples.some((x) => x.name === 'sakshya_collector_db_pool_connections' && x.labels.state === 'waiting'));
      assert.ok(sampleValue(e, 'sakshya_collector_db_pool_connections', { state: 'idle' }) <= sampleValue(e, 'sakshya_collector_db_pool_connections', { state: 'total' }));
    }
    assert.equal(sampleValue(ea, 'sakshya_collector_ledger_size'), sampleValue(eb, 'sakshya_collector_ledger_size'));
  });

  it('serves a report job\u2019s status from either replica, and its bundle only from the replica that keeps it, which the other names', async () => {
    const auditor = await humanToken(a!, 'auditor', 'rep-auditor');
    const started = await request(`${a!.url}/api/v1/reports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${auditor.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ from: '2020-01-01', to: '2100-01-01' }),
    });
    assert.equal(started.status, 202, started.text);
    const id = (started.body as { id: string }).id;
    await a!.container.reports.idle();
    const status = await request(`${b!.url}/api/v1/reports/${id}`, { method: 'GET', headers: { authorization: `Bearer ${auditor.token}` } });
    assert.equal(status.status, 200, status.text);
    assert.equal((status.body as { status: string }).status, 'done');
    const elsewhere = await request(`${b!.url}/api/v1/reports/${id}/bundle.tar.gz`, { method: 'GET', headers: { authorization: `Bearer ${auditor.token}` } });
    const problem = assertProblem(elsewhere, 409, 'report.elsewhere');
    assert.equal(problem.replica, 'replica-a');
    const bundle = await fetch(`${a!.url}/api/v1/reports/${id}/bundle.tar.gz`, { headers: { authorization: `Bearer ${auditor.token}` } });
    assert.equal(bundle.status, 200);
  });
});
