/**
 * Roles and revocation (OWASP API1, API2, API3, API5): who may call what,
 * what each refusal stores (nothing), and that every use of power is in the COLLECTOR chain.
 */
import assert from 'node:assert/strict';
import { API_PREFIX } from '../../../shared/protocol.ts';
import { runCollectorCli, startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { assertProblem } from './http-assertions.ts';
import { collectorChain, enrolledAgent, expectNothingStored, humanToken } from './security-support.ts';
import { request, TestAgent, type HttpAnswer } from './test-agent.ts';

describe('collector security: roles, human tokens and revocation', function () {
  this.timeout(60_000);
  let collector: InProcessCollector;

  before(async () => {
    collector = await startCollectorInProcess();
  });
  after(async () => {
    await collector?.stop();
  });

  function call(method: string, path: string, authorization: string | undefined, body?: unknown): Promise<HttpAnswer> {
    const headers: { [name: string]: string } = {};
    if (authorization !== undefined) headers.authorization = authorization;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return request(`${collector.url}${API_PREFIX}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  }

  const bearer = (token: string) => `Bearer ${token}`;

  it("refuses agent A's token carrying agent B's records with 403 auth.forbidden and stores nothing", async () => {
    const a = await enrolledAgent(collector);
    const b = await enrolledAgent(collector);
    const batch = b.batch(b.records(2));
    await expectNothingStored(collector, async () => {
      assertProblem(await b.send(batch, { token: await a.token() }), 403, 'auth.forbidden');
    });
  });

  it('lets an admin token issue an enrollment token over HTTP that enrolls the agent once, and records who issued it', async () => {
    const admin = await humanToken(collector, 'admin', 'Asha Admin');
    const answer = await call('POST', '/agents/AS-HTTP-001/enrollment-tokens', bearer(admin.token), { ttlSeconds: 600 });
    assert.equal(answer.status, 201, answer.text);
    const { token, agent } = answer.body as { token: string; agent: string };
    assert.equal(agent, 'AS-HTTP-001');
    const newcomer = new TestAgent('AS-HTTP-001', collector.url, collector.origin);
    assert.equal((await newcomer.enroll(token)).status, 200);
    assertProblem(await new TestAgent('AS-HTTP-001', collector.url, collector.origin).enroll(token), 401, 'enroll.token_invalid');
    const issued = collectorChain(collector.dir).filter((r) => r.type === 'enrollment_token.issued' && r.body.agent === 'AS-HTTP-001');
    assert.deepEqual(issued.map((r) => r.body.by), [`admin:Asha Admin#${admin.id}`]);
    assert.ok(!JSON.stringify(collectorChain(collector.dir)).includes(token), 'no token in the chain');
  });

  it('refuses an auditor token on enrollment-token issue and on revoke with 403 auth.forbidden, storing nothing', async () => {
    const auditor = await humanToken(collector, 'auditor');
    const target = await enrolledAgent(collector);
    await expectNothingStored(collector, async () => {
      assertProblem(await call('POST', `/agents/${target.id}/enrollment-tokens`, bearer(auditor.token), {}), 403, 'auth.forbidden');
      assertProblem(await call('POST', `/agents/${target.id}/revoke`, bearer(auditor.token)), 403, 'auth.forbidden');
    });
    await target.sendOk(target.batch(target.records(1)));
  });

  it('refuses an agent token on the admin routes and a human token on the batch route with 403 auth.forbidden', async () => {
    const agent = await enrolledAgent(collector);
    const auditor = await humanToken(collector, 'auditor');
    await expectNothingStored(collector, async () => {
      assertProblem(await call('POST', `/agents/${agent.id}/enrollment-tokens`, bearer(await agent.token()), {}), 403, 'auth.forbidden');
      assertProblem(await call('POST', `/agents/${agent.id}/revoke`, bearer(await agent.token())), 403, 'auth.forbidden');
      assertProblem(await agent.send(agent.batch(agent.records(1)), { token: auditor.token }), 403, 'auth.forbidden');
    });
  });

  it('refuses unknown, malformed and missing credentials on admin routes with 401 auth.invalid_token', async () => {
    await expectNothingStored(collector, async () => {
      assertProblem(await call('POST', '/agents/AS-X-001/revoke', bearer('sakshya_' + 'A'.repeat(43))), 401, 'auth.invalid_token');
      assertProblem(await call('POST', '/agents/AS-X-001/revoke', 'Basic YWRtaW46YWRtaW4='), 401, 'auth.invalid_token');
      assertProblem(await call('POST', '/agents/AS-X-001/revoke', undefined), 401, 'auth.invalid_token');
    });
  });

  it("lets an auditor read any agent's record and records each read in the COLLECTOR chain; an agent reading another's record is 403 and an admin is 403", async () => {
    const owner = await enrolledAgent(collector);
    const other = await enrolledAgent(collector);
    const record = owner.next({ secret: 'case 42' });
    await owner.sendOk(owner.batch([record]));
    const auditor = await humanToken(collector, 'auditor', 'Ravi Auditor');
    const admin = await humanToken(collector, 'admin');
    const read = await call('GET', `/records/${record.id}`, bearer(auditor.token));
    assert.equal(read.status, 200, read.text);
    assert.equal((read.body as { record: { id: string } }).record.id, record.id);
    const reads = collectorChain(collector.dir).filter((r) => r.type === 'record.read' && r.body.id === record.id);
    assert.deepEqual(reads.map((r) => [r.body.agent, r.body.by]), [[owner.id, `auditor:Ravi Auditor#${auditor.id}`]]);
    await expectNothingStored(collector, async () => {
      assertProblem(await call('GET', `/records/${record.id}`, bearer(await other.token())), 403, 'auth.forbidden');
      assertProblem(await call('GET', `/records/${record.id}`, bearer(admin.token)), 403, 'auth.forbidden');
    });
  });

  it('refuses a revoked agent with 403 agent.revoked for batches and reads, while its ledger entries still pass ledger verify', async () => {
    const agent = await enrolledAgent(collector);
    const kept = agent.next();
    await agent.sendOk(agent.batch([kept, agent.next()]));
    const admin = await humanToken(collector, 'admin', 'Asha Admin');
    const revoked = await call('POST', `/agents/${agent.id}/revoke`, bearer(admin.token));
    assert.equal(revoked.status, 200, revoked.text);
    const { revokedAt } = revoked.body as { revokedAt: string };
    await expectNothingStored(collector, async () => {
      assertProblem(await agent.send(agent.batch(agent.records(1))), 403, 'agent.revoked');
      assertProblem(await call('GET', `/records/${kept.id}`, bearer(await agent.token())), 403, 'agent.revoked');
    });
    const chain = collectorChain(collector.dir).filter((r) => r.type === 'agent.revoked' && r.body.agent === agent.id);
    assert.deepEqual(chain.map((r) => r.body.by), [`admin:Asha Admin#${admin.id}`]);
    const listing = (await collector.container.enrollment.listAgents()).find((a) => a.agent === agent.id)!;
    assert.equal(listing.revokedAt, revokedAt);
    assert.equal(listing.ledgerEntries, 2);
    const report = await collector.container.ledgerAudit().run();
    assert.equal(report.intact, true, JSON.stringify(report.findings));
    const again = await call('POST', `/agents/${agent.id}/revoke`, bearer(admin.token));
    assert.equal((again.body as { alreadyRevoked: boolean }).alreadyRevoked, true);
    assertProblem(await call('POST', '/agents/AS-NEVER-001/revoke', bearer(admin.token)), 404, 'resource.not_found');
  });

  it('revokes from the CLI as the local operator, shows the time in agents list --json, and ledger verify still passes', async () => {
    const agent = await enrolledAgent(collector);
    await agent.sendOk(agent.batch(agent.records(3)));
    const env = { SAKSHYA_COLLECTOR_DIR: collector.dir };
    const result = await runCollectorCli(['agents', 'revoke', '--agent', agent.id, '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    const { revokedAt } = JSON.parse(result.stdout) as { revokedAt: string };
    assertProblem(await agent.send(agent.batch(agent.records(1))), 403, 'agent.revoked');
    const list = await runCollectorCli(['agents', 'list', '--json'], env);
    const row = (JSON.parse(list.stdout) as { agent: string; revokedAt: string | null }[]).find((a) => a.agent === agent.id)!;
    assert.equal(row.revokedAt, revokedAt);
    const verify = await runCollectorCli(['ledger', 'verify'], env);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    const by = collectorChain(collector.dir).find((r) => r.type === 'agent.revoked' && r.body.agent === agent.id)?.body.by;
    assert.match(String(by), /^cli:.+/);
  });

  it('issues, lists and revokes human tokens from the CLI: the token is printed once, never listed, stored only as its sha256, and a revoked token is 401', async () => {
    const env = { SAKSHYA_COLLECTOR_DIR: collector.dir };
    const issued = await runCollectorCli(['tokens', 'issue', '--role', 'auditor', '--name', 'Meera', '--ttl', '30d'], env);
    assert.equal(issued.code, 0, issued.stderr);
    assert.match(issued.stdout, /^sakshya_[A-Za-z0-9_-]{43}\n$/);
    const token = issued.stdout.trim();
    const owner = await enrolledAgent(collector);
    const record = owner.next();
    await owner.sendOk(owner.batch([record]));
    assert.equal((await call('GET', `/records/${record.id}`, bearer(token))).status, 200);

    const list = await runCollectorCli(['tokens', 'list', '--json'], env);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(!list.stdout.includes(token) && !list.stdout.includes(token.slice(8, 30)), 'the list never shows a token');
    const meera = (JSON.parse(list.stdout) as { id: string; name: string; role: string; state: string }[]).find((t) => t.name === 'Meera')!;
    assert.deepEqual([meera.role, meera.state], ['auditor', 'active']);

    const revoked = await runCollectorCli(['tokens', 'revoke', '--name', 'Meera'], env);
    assert.equal(revoked.code, 0, revoked.stderr);
    await expectNothingStored(collector, async () => {
      assertProblem(await call('GET', `/records/${record.id}`, bearer(token)), 401, 'auth.invalid_token');
    });
    const types = collectorChain(collector.dir).filter((r) => r.body.id === meera.id).map((r) => [r.type, r.body.by]);
    assert.equal(types.length, 2);
    assert.deepEqual(types.map((t) => t[0]), ['api_token.issued', 'api_token.revoked']);
    assert.ok(types.every((t) => String(t[1]).startsWith('cli:')));
    const none = await runCollectorCli(['tokens', 'revoke', '--id', meera.id], env);
    assert.equal(none.code, 1);
  });

  it('starts a new epoch when a revoked agent id is enrolled again, records both enrollments in the COLLECTOR chain, and the new epoch may send', async () => {
    const agent = await enrolledAgent(collector, 'AS-AGAIN');
    await agent.sendOk(agent.batch(agent.records(1)));
    await collector.container.enrollment.revokeAgent(agent.id, 'cli:test');
    agent.newKey();
    const { token } = await collector.container.enrollment.issueToken(agent.id, 600, 'cli:test');
    assert.equal((await agent.enroll(token)).status, 200);
    assert.equal(agent.epoch, 2);
    await agent.sendOk(agent.batch(agent.records(1)));
    const enrolled = collectorChain(collector.dir).filter((r) => r.type === 'agent.enrolled' && r.body.agent === agent.id);
    assert.deepEqual(enrolled.map((r) => r.body.epoch), [1, 2]);
  });

  it('refuses an expired human token with 401 auth.invalid_token', async () => {
    const { token } = await collector.container.apiTokens.issue('auditor', 'Brief', 1, 'cli:test');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assertProblem(await call('GET', `/records/00000000-0000-7000-8000-000000000000`, bearer(token)), 401, 'auth.invalid_token');
  });
});
