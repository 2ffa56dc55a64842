/**
 * Backpressure on POST /api/v1/batches (collector/services/ingest-admission.ts): a collector with
 * one batch-check worker and no room to wait, flooded by several agents at once over real HTTP.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROBLEM_TYPE_PREFIX, type ProblemBody } from '../../../shared/problem.ts';
import { API_PREFIX, type Batch, type SignedReceipt } from '../../../shared/protocol.ts';
import { verifyReceipt } from '../../../shared/receipt.ts';
import { INGEST_BUSY_RETRY_AFTER_SECONDS } from '../../../collector/services/ingest-admission.ts';
import { checkAgentInLedger } from '../../helpers/ledger-invariants.ts';
import { startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { TestAgent, type HttpAnswer } from './test-agent.ts';

const AGENTS = 10;
const RECORDS_PER_BATCH = 300;

/** Asserts a 503 ingest.busy answer and returns its Retry-After in seconds. */
function assertBusy(answer: HttpAnswer): number {
  assert.equal(answer.status, 503, answer.text);
  assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const body = answer.body as ProblemBody;
  assert.equal(body.code, 'ingest.busy');
  assert.equal(body.type, `${PROBLEM_TYPE_PREFIX}ingest.busy`);
  const retryAfter = answer.headers.get('retry-after') ?? '';
  assert.match(retryAfter, /^\d+$/, 'Retry-After in whole seconds');
  const seconds = Number(retryAfter);
  assert.ok(seconds >= INGEST_BUSY_RETRY_AFTER_SECONDS.min && seconds <= INGEST_BUSY_RETRY_AFTER_SECONDS.max, retryAfter);
  assert.equal(body.retryAfterSeconds, seconds);
  return seconds;
}

describe('ingest backpressure (POST /api/v1/batches)', function () {
  this.timeout(120_000);
  let collector: InProcessCollector;
  let counter = 0;

  before(async () => {
    // One worker checks 2 batches at once; none may wait for it, and one batch at a time may be written.
    collector = await startCollectorInProcess({
      env: { SAKSHYA_VERIFY_WORKERS: '1', SAKSHYA_COLLECTOR_INGEST_QUEUE: '0', SAKSHYA_COLLECTOR_WRITE_QUEUE: '0' },
    });
  });
  after(async () => {
    await collector?.stop();
  });

  async function enrolledAgent(): Promise<TestAgent> {
    const agent = new TestAgent(`AS-BSY-${String(++counter).padStart(3, '0')}`, collector.url, collector.origin);
    const { token } = await collector.container.enrollment.issueToken(agent.id);
    const answer = await agent.enroll(token);
    assert.equal(answer.status, 200, answer.text);
    return agent;
  }

  function busyLogLines(): number {
    return collector.logs.filter((line) => (JSON.parse(line) as { code?: string; level?: number }).code === 'ingest.busy').length;
  }

  it('a flood of batches beyond the ingest queue gets 503 ingest.busy with Retry-After and stores nothing, and the retried batches land exactly once', async () => {
    const { container } = collector;
    const agents = await Promise.all(Array.from({ length: AGENTS }, () => enrolledAgent()));
    const batches = new Map<TestAgent, Batch>(agents.map((agent) => [agent, agent.batch(agent.records(RECORDS_PER_BATCH))]));
    const before = await container.ledger.stats();
    const refusalsBefore = container.ingestAdmission.refusals.check + container.ingestAdmission.refusals.write;
    const logsBefore = busyLogLines();

    // Everything prepared first, so that the requests leave together.
    const tokens = await Promise.all(agents.map((agent) => agent.token()));
    const answers = await Promise.all(agents.map((agent, i) => agent.send(batches.get(agent), { gzip: true, token: tokens[i]! })));

    const accepted = agents.filter((_, i) => answers[i]!.status === 200);
    const refused = agents.filter((_, i) => answers[i]!.status !== 200);
    assert.ok(refused.length > 0, `with room for 2 batches, ${AGENTS} at once must meet the bound; statuses ${answers.map((a) => a.status).join(' ')}`);
    assert.ok(accepted.length > 0, 'the batches within the bound are accepted');
    for (const [i, answer] of answers.entries()) {
      if (answer.status === 200) assert.equal((answer.body as SignedReceipt).receipt.accepted, RECORDS_PER_BATCH);
      else assertBusy(answers[i]!);
    }

    // Nothing of a refused batch is stored: no record, no receipt; the ledger grew by exactly the accepted batches.
    const afterFlood = await container.ledger.stats();
    assert.equal(afterFlood.size, before.size + accepted.length * RECORDS_PER_BATCH);
    for (const agent of refused) {
      assert.equal(checkAgentInLedger(collector.dir, agent.id, []).inLedger, 0, `${agent.id} was refused but has records`);
      assert.equal(await container.store.findReceipt(batches.get(agent)!.batchId), undefined);
    }
    // A counter and a warn line for each refusal; the queues are empty again.
    const { refusals } = container.ingestAdmission;
    assert.equal(refusals.check + refusals.write - refusalsBefore, refused.length);
    assert.equal(busyLogLines() - logsBefore, refused.length);
    const warn = collector.logs.map((line) => JSON.parse(line) as { code?: string; level: number; reason?: string }).find((line) => line.code === 'ingest.busy')!;
    assert.equal(warn.level, 40, 'logged at warn');
    assert.match(warn.reason ?? '', /^(check|write)_queue_full$/);
    assert.deepEqual(container.ingestAdmission.load, { checking: 0, writing: 0 });

    // Each refused agent sends its batch again after its Retry-After, as the agent does, until it is in.
    let busyAnswers = 0;
    await Promise.all(
      refused.map(async (agent) => {
        for (let attempt = 1; ; attempt++) {
          const answer = await agent.send(batches.get(agent), { gzip: true });
          if (answer.status === 200) {
            const signed = answer.body as SignedReceipt;
            await verifyReceipt(signed, agent.receiptKey);
            assert.deepEqual([signed.receipt.accepted, signed.receipt.duplicates], [RECORDS_PER_BATCH, 0], `${agent.id}: stored once, on its first acceptance`);
            return;
          }
          busyAnswers++;
          assert.ok(attempt < 30, `${agent.id} still refused after ${attempt} attempts`);
          await sleep(assertBusy(answer) * 1000);
        }
      }),
    );
    assert.equal(container.ingestAdmission.refusals.check + container.ingestAdmission.refusals.write - refusalsBefore, refused.length + busyAnswers);

    // Exactly once: every record in the ledger once, every chain whole, and a resend of any batch replays its receipt.
    assert.equal((await container.ledger.stats()).size, before.size + AGENTS * RECORDS_PER_BATCH);
    for (const agent of agents) {
      const check = checkAgentInLedger(collector.dir, agent.id, batches.get(agent)!.records.map(({ id, seq }) => ({ id, seq })));
      assert.deepEqual([check.inLedger, check.lost, check.duplicated], [RECORDS_PER_BATCH, 0, 0], agent.id);
      const replay = await agent.sendOk(batches.get(agent)!, { gzip: true });
      assert.equal(replay.receipt.accepted, RECORDS_PER_BATCH, 'the stored receipt');
    }
    assert.equal((await container.ledger.stats()).size, before.size + AGENTS * RECORDS_PER_BATCH);
  });

  it('refuses a batch arriving while the queues are full before authenticating it or reading its body', async () => {
    const { container } = collector;
    const agent = await enrolledAgent();
    const batch = agent.batch(agent.records(2));
    const token = await agent.token();
    const before = await container.ledger.stats();
    // Both check slots taken, as by two batches being checked.
    const leases = [container.ingestAdmission.enterCheck(), container.ingestAdmission.enterCheck()];
    try {
      assertBusy(await agent.send(batch, { token }));

      // A body that never arrives: the answer does not wait for it.
      const answer = await new Promise<{ status: number; retryAfter: string | undefined; body: string }>((resolve, reject) => {
        const req = httpRequest(`${collector.url}${API_PREFIX}/batches`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': batch.batchId, 'content-length': '1000000' },
        });
        req.on('response', (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          res.on('end', () => {
            resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'], body });
            req.destroy();
          });
        });
        req.on('error', reject);
        req.write('{"batchId":');
      });
      assert.equal(answer.status, 503);
      assert.match(answer.retryAfter ?? '', /^\d+$/);
      assert.equal((JSON.parse(answer.body) as ProblemBody).code, 'ingest.busy');
    } finally {
      for (const leave of leases) leave();
    }
    assert.equal((await container.ledger.stats()).size, before.size);
    // The token was never checked, so its jti is still unused: the same request now goes through.
    const signed = await agent.sendOk(batch, { token });
    assert.equal(signed.receipt.accepted, 2);
  });
});
