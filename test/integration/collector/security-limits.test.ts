/**
 * Limits and hostile input (OWASP API4, API8): rate limits per address and per
 * verified agent, enrollment limit, body limits on the wire and after gunzip (a gzip bomb),
 * JSON depth, and the secure headers on every answer.
 */
import { ledgerRows } from '../../helpers/ledger-sql.ts';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gzipSync } from 'node:zlib';
import { API_PREFIX, MAX_BATCH_DECODED_BYTES } from '../../../shared/protocol.ts';
import { startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { assertProblem } from './http-assertions.ts';
import { enrolledAgent, expectNothingStored } from './security-support.ts';
import { request, TestAgent, type HttpAnswer } from './test-agent.ts';

function assertRetryAfter(answer: HttpAnswer): number {
  assertProblem(answer, 429, 'rate.limited');
  const seconds = Number(answer.headers.get('retry-after'));
  assert.ok(Number.isInteger(seconds) && seconds >= 1, `Retry-After ${answer.headers.get('retry-after')}`);
  return seconds;
}

describe('collector security: limits and hostile input', function () {
  this.timeout(60_000);

  describe('with the default limits', () => {
    let collector: InProcessCollector;
    before(async () => {
      collector = await startCollectorInProcess();
    });
    after(async () => {
      await collector?.stop();
    });

    it('refuses a gzip bomb (400 MB of zeros in ~400 KB) with 413 batch.too_large, cutting it off at the limit instead of inflating it, storing nothing', async () => {
      const agent = await enrolledAgent(collector, 'AS-BOMB');
      // Forty gzip members of 10 MB each: one gzip stream of 400 MB, made in a fraction of the time.
      const member = gzipSync(Buffer.alloc(10 * 1024 * 1024, 0x20));
      const bomb = Buffer.concat(Array.from({ length: 40 }, () => member));
      assert.ok(bomb.length < 2 * 1024 * 1024, `bomb is ${bomb.length} bytes`);
      // What inflating all of it costs on this machine now (counted, not kept): the server must
      // answer well before that, or it inflated past the limit. A ratio, not a fixed time.
      const fullStarted = performance.now();
      let inflated = 0;
      await pipeline(Readable.from([bomb]), createGunzip(), async (chunks: AsyncIterable<Buffer>) => {
        for await (const chunk of chunks) inflated += chunk.length;
      });
      const fullMs = performance.now() - fullStarted;
      assert.equal(inflated, 400 * 1024 * 1024);
      await expectNothingStored(collector, async () => {
        const started = performance.now();
        const answer = await agent.send({ batchId: '0192f7b4-0000-7000-8000-000000000000' }, { rawBody: bomb, headers: { 'content-encoding': 'gzip' } });
        const ms = performance.now() - started;
        const problem = assertProblem(answer, 413, 'batch.too_large');
        assert.equal(problem.limit, MAX_BATCH_DECODED_BYTES);
        // The server inflates at most the 8 MiB limit (2 % of the bomb); answering within the time
        // one full inflation takes here leaves room for a machine busy with other tests.
        assert.ok(ms < fullMs, `answered in ${ms.toFixed(0)} ms; inflating the whole bomb takes ${fullMs.toFixed(0)} ms here`);
      });
    });

    it('refuses a 10 MB gzip body (over the 8 MiB wire limit) with 413 from its Content-Length, before reading it', async () => {
      const agent = await enrolledAgent(collector, 'AS-BOMB');
      const token = await agent.token();
      await expectNothingStored(collector, async () => {
        // Only the headers and the first KiB are sent: a server that waited for the body would never answer.
        const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = httpRequest(`${collector.url}${API_PREFIX}/batches`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${token}`,
              'content-type': 'application/json',
              'content-encoding': 'gzip',
              'idempotency-key': '0192f7b4-0000-7000-8000-000000000001',
              'content-length': String(10 * 1024 * 1024),
            },
          });
          req.on('response', (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (body += chunk));
            res.on('end', () => {
              resolve({ status: res.statusCode ?? 0, body });
              req.destroy();
            });
          });
          req.on('error', reject);
          req.write(randomBytes(1024));
        });
        assert.equal(answer.status, 413);
        assert.equal((JSON.parse(answer.body) as { code: string }).code, 'batch.too_large');
      });
    });

    it('refuses JSON nested deeper than 32 levels with 400 request.malformed before any schema runs', async () => {
      const agent = await enrolledAgent(collector, 'AS-DEEP');
      const deep = '{"a":' + '['.repeat(5000) + ']'.repeat(5000) + '}';
      const idempotencyKey = '0192f7b4-0000-7000-8000-000000000002';
      await expectNothingStored(collector, async () => {
        const problem = assertProblem(await agent.send({}, { rawBody: deep, idempotencyKey }), 400, 'request.malformed');
        assert.match(problem.detail, /deeper than 32/);
        // 32 levels pass the depth check (and meet the schema); brackets inside strings do not count.
        const at32 = '{"a":' + '['.repeat(31) + ']'.repeat(31) + '}';
        assertProblem(await agent.send({}, { rawBody: at32, idempotencyKey }), 400, 'batch.invalid');
        const flat = JSON.stringify({ note: '['.repeat(100) });
        assertProblem(await agent.send({}, { rawBody: flat, idempotencyKey }), 400, 'batch.invalid');
      });
    });

    it('sends the secure headers on every answer (200, 401, 404) and never X-Powered-By or HSTS without TLS', async () => {
      const answers = [
        await request(`${collector.url}/healthz`, {}),
        await request(`${collector.url}${API_PREFIX}/keys`, {}),
        await request(`${collector.url}${API_PREFIX}/records/0192f7b4-0000-7000-8000-000000000000`, {}),
        await request(`${collector.url}${API_PREFIX}/nothing-here`, {}),
        await request(`${collector.url}${API_PREFIX}/batches`, { method: 'POST', headers: { authorization: 'Bearer x' }, body: 'x' }),
      ];
      assert.deepEqual(answers.map((a) => a.status), [200, 200, 401, 404, 401]);
      for (const answer of answers) {
        assert.equal(answer.headers.get('x-content-type-options'), 'nosniff');
        assert.equal(answer.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'");
        assert.equal(answer.headers.get('x-frame-options'), 'DENY');
        assert.equal(answer.headers.get('referrer-policy'), 'no-referrer');
        assert.equal(answer.headers.get('x-powered-by'), null);
        assert.equal(answer.headers.get('strict-transport-security'), null);
        assert.ok(answer.headers.get('cache-control'));
      }
      assert.equal(answers[0]!.headers.get('cache-control'), 'no-store');
      assert.equal(answers[2]!.headers.get('cache-control'), 'no-store');
    });
  });

  describe('with tiny configured limits', () => {
    it('limits each address before authentication with 429 rate.limited and Retry-After, and keeps /healthz answering', async () => {
      const collector = await startCollectorInProcess({ env: { SAKSHYA_RATE_IP_PER_SECOND: '0.5', SAKSHYA_RATE_IP_BURST: '3' } });
      try {
        const statuses: number[] = [];
        let last: HttpAnswer | undefined;
        for (let i = 0; i < 5; i++) {
          last = await request(`${collector.url}${API_PREFIX}/batches`, { method: 'POST', headers: { authorization: 'Bearer garbage' } });
          statuses.push(last.status);
        }
        assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
        assert.equal(assertRetryAfter(last!), 2);
        assert.equal((await request(`${collector.url}/healthz`, {})).status, 200);
      } finally {
        await collector.stop();
      }
    });

    it("limits each verified agent with its own bucket (not the address): a busy agent gets 429 with Retry-After, another agent on the same address does not, and nothing is stored", async () => {
      // One token every 50 s: however slow the first two batches are on a loaded machine, the third finds the bucket empty.
      const collector = await startCollectorInProcess({ env: { SAKSHYA_RATE_AGENT_PER_SECOND: '0.02', SAKSHYA_RATE_AGENT_BURST: '2' } });
      try {
        const busy = await enrolledAgent(collector, 'AS-BUSY');
        const calm = await enrolledAgent(collector, 'AS-CALM');
        await busy.sendOk(busy.batch(busy.records(1)));
        await busy.sendOk(busy.batch(busy.records(1)));
        const pending = busy.batch(busy.records(1));
        await expectNothingStored(collector, async () => {
          // The wait is at most 50 s, less if the first batches took a while.
          const wait = assertRetryAfter(await busy.send(pending));
          assert.ok(wait >= 1 && wait <= 50, `Retry-After ${wait}`);
        });
        await calm.sendOk(calm.batch(calm.records(1)));
      } finally {
        await collector.stop();
      }
    });

    it('limits enrollment per address before the token is looked up: the refused token is not used up', async () => {
      const collector = await startCollectorInProcess({ env: { SAKSHYA_RATE_ENROLL_PER_MINUTE: '1', SAKSHYA_RATE_ENROLL_BURST: '2' } });
      try {
        const tokens = await Promise.all(['AS-ENL-001', 'AS-ENL-002', 'AS-ENL-003'].map((id) => collector.container.enrollment.issueToken(id)));
        const agents = ['AS-ENL-001', 'AS-ENL-002', 'AS-ENL-003'].map((id) => new TestAgent(id, collector.url, collector.origin));
        assert.equal((await agents[0]!.enroll(tokens[0]!.token)).status, 200);
        assertProblem(await new TestAgent('AS-GUESS-001', collector.url, collector.origin).enroll('guess'), 400, 'request.invalid');
        await expectNothingStored(collector, async () => {
          const refused = await agents[1]!.enroll(tokens[1]!.token);
          assert.ok(assertRetryAfter(refused) > 30);
        });
        assert.deepEqual(ledgerRows(collector.dir, `SELECT used_at FROM enrollment_tokens WHERE agent = 'AS-ENL-002'`), [{ used_at: null }]);
      } finally {
        await collector.stop();
      }
    });
  });
});
