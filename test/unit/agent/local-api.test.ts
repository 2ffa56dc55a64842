import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../../shared/logger.ts';
import { PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_PREFIX } from '../../../shared/problem.ts';
import type { SignedRecord } from '../../../shared/record.ts';
import { createLocalApi, listenLocalApi } from '../../../agent/local-api/app.ts';
import { tokenMatches } from '../../../agent/local-api/local-token.ts';
import { outboxPath, SqliteOutbox } from '../../../agent/outbox/sqlite-outbox.ts';
import type { AgentStatus } from '../../../agent/status.ts';
import { makeTestAgentDir, TEST_AGENT, type TestAgentDir } from './support/agent-dir.ts';

describe('agent/local-api', () => {
  let agent: TestAgentDir;
  let outbox: SqliteOutbox;
  let server: Server;
  let base: string;
  const logLines: string[] = [];

  before(async () => {
    agent = makeTestAgentDir();
    outbox = agent.open();
    const logger = createLogger('test-local-api', 'debug', { write: (line: string) => void logLines.push(line) });
    const listening = await listenLocalApi(createLocalApi({ outbox, key: agent.key, localToken: agent.localToken, logger }), 0);
    server = listening.server;
    base = `http://127.0.0.1:${listening.port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    outbox.close();
    agent.remove();
  });

  const post = (body: unknown, headers: { [k: string]: string } = {}) =>
    fetch(`${base}/v1/records`, {
      method: 'POST',
      headers: { authorization: `Bearer ${agent.localToken}`, 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  async function problem(response: Response, status: number, code: string): Promise<{ [k: string]: unknown }> {
    assert.equal(response.status, status);
    assert.equal(response.headers.get('content-type')?.split(';')[0], PROBLEM_CONTENT_TYPE);
    const body = (await response.json()) as { [k: string]: unknown };
    assert.equal(body.code, code);
    assert.equal(body.type, PROBLEM_TYPE_PREFIX + code);
    assert.equal(body.status, status);
    assert.equal(typeof body.detail, 'string');
    assert.doesNotMatch(JSON.stringify(body), /at .*\.ts:\d+/, 'no stack trace');
    return body;
  }

  it('answers 201 with the id and seq only once the record is committed, and the record is in the outbox', async () => {
    const response = await post({ kind: 'audit', type: 'certificate.issued', body: { certificate: 'INC-2026-0042' } });
    assert.equal(response.status, 201);
    const { id, seq } = (await response.json()) as { id: string; seq: number };
    const other = agent.open(); // another connection sees it: it is committed
    try {
      const stored = other.record(seq);
      assert.ok(stored);
      const record = JSON.parse(stored.canonical) as SignedRecord;
      assert.equal(record.id, id);
      assert.equal(record.agent, TEST_AGENT);
      assert.deepEqual(record.body, { certificate: 'INC-2026-0042' });
    } finally {
      other.close();
    }
  });

  it('refuses to store a witness record for a local caller, so an alarm in the chain is always the agent\u2019s own', async () => {
    const before = outbox.chain().headSeq;
    for (const type of ['witness.alarm', 'witness.cleared']) {
      const body = await problem(await post({ kind: 'agent', type, body: { reason: 'inconsistent' } }), 400, 'request.invalid');
      assert.match(String(body.detail), /written by the agent itself/);
    }
    assert.equal((await post({ kind: 'audit', type: 'witness.alarm', body: {} })).status, 201, 'only kind agent is reserved');
    assert.equal(outbox.chain().headSeq, before + 1);
  });

  it('keeps a given at and assigns consecutive seqs', async () => {
    const a = (await (await post({ kind: 'telemetry', type: 'app.queue_depth', at: '2026-11-22T04:33:05.123Z', body: { depth: 3 } })).json()) as { seq: number };
    const b = (await (await post({ kind: 'audit', type: 'user.login', body: {} })).json()) as { seq: number };
    assert.equal(b.seq, a.seq + 1);
    assert.equal((JSON.parse(outbox.record(a.seq)!.canonical) as SignedRecord).at, '2026-11-22T04:33:05.123Z');
  });

  it('refuses a request without a token, or with a wrong one, with 401 and stores nothing', async () => {
    const before = outbox.chain().headSeq;
    const none = await fetch(`${base}/v1/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"kind":"audit","type":"a.b","body":{}}' });
    await problem(none, 401, 'auth.invalid_token');
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    await problem(await post({ kind: 'audit', type: 'a.b', body: {} }, { authorization: `Bearer ${agent.localToken.slice(0, -1)}x` }), 401, 'auth.invalid_token');
    await problem(await post({ kind: 'audit', type: 'a.b', body: {} }, { authorization: agent.localToken }), 401, 'auth.invalid_token');
    await problem(await fetch(`${base}/v1/status`), 401, 'auth.invalid_token');
    assert.equal(outbox.chain().headSeq, before);
  });

  it('refuses a bad body with 400 problem+json naming the field, and stores nothing', async () => {
    const before = outbox.chain().headSeq;
    const badKind = await problem(await post({ kind: 'gossip', type: 'a.b', body: {} }), 400, 'request.invalid');
    assert.match(String(badKind.detail), /kind/);
    assert.match(String((await problem(await post({ kind: 'audit', type: 'Bad Type', body: {} }), 400, 'request.invalid')).detail), /type/);
    await problem(await post({ kind: 'audit', type: 'a.b', body: 'text' }), 400, 'request.invalid');
    await problem(await post({ kind: 'audit', type: 'a.b', body: {}, seq: 7 }), 400, 'request.invalid');
    await problem(await post({ kind: 'audit', type: 'a.b', at: 'yesterday', body: {} }), 400, 'request.invalid');
    await problem(await post('{"kind": "audit", '), 400, 'request.malformed');
    await problem(await post('kind=audit', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'request.unsupported_media_type');
    assert.equal(outbox.chain().headSeq, before);
  });

  it('refuses a body larger than the limit with 413', async () => {
    await problem(await post({ kind: 'audit', type: 'a.b', body: { big: 'x'.repeat(300 * 1024) } }), 413, 'batch.too_large');
  });

  it('answers unknown paths with 404 and wrong methods with 405, as problem+json', async () => {
    const auth = { authorization: `Bearer ${agent.localToken}` };
    await problem(await fetch(`${base}/v1/nothing`, { headers: auth }), 404, 'resource.not_found');
    await problem(await fetch(`${base}/v1/records`, { headers: auth }), 405, 'method.not_allowed');
  });

  it('reports status with pending and acknowledged counts', async () => {
    const response = await fetch(`${base}/v1/status`, { headers: { authorization: `Bearer ${agent.localToken}` } });
    assert.equal(response.status, 200);
    const status = (await response.json()) as { agent: string; pending: number; acked: number; circuit: { state: string } };
    assert.equal(status.agent, TEST_AGENT);
    assert.equal(status.pending, outbox.chain().headSeq);
    assert.equal(status.acked, 0);
    assert.equal(status.circuit.state, 'closed');
  });

  it('does not advertise its framework', async () => {
    const response = await fetch(`${base}/v1/status`, { headers: { authorization: `Bearer ${agent.localToken}` } });
    assert.equal(response.headers.get('x-powered-by'), null);
  });

  it('listens on 127.0.0.1 only', () => {
    const address = server.address() as AddressInfo;
    assert.equal(address.address, '127.0.0.1');
    assert.equal(address.family, 'IPv4');
  });

  it('never logs the local token', () => {
    assert.ok(logLines.length > 0);
    for (const line of logLines) assert.ok(!line.includes(agent.localToken), line);
  });

  it('compares tokens exactly', () => {
    assert.equal(tokenMatches('abc', 'abc'), true);
    assert.equal(tokenMatches('abd', 'abc'), false);
    assert.equal(tokenMatches('ab', 'abc'), false);
    assert.equal(tokenMatches('abcd', 'abc'), false);
    assert.equal(tokenMatches(undefined, 'abc'), false);
    assert.equal(tokenMatches('', 'abc'), false);
  });
});

describe('agent/local-api at the buffer caps', () => {
  const CAP = { softBytes: 6_000, hardBytes: 12_000 };
  let agent: TestAgentDir;
  let outbox: SqliteOutbox;
  let server: Server;
  let base: string;
  const logLines: string[] = [];

  before(async () => {
    agent = makeTestAgentDir();
    outbox = SqliteOutbox.open(outboxPath(agent.dir), { cap: CAP });
    const logger = createLogger('test-local-api-cap', 'debug', { write: (line: string) => void logLines.push(line) });
    const listening = await listenLocalApi(createLocalApi({ outbox, key: agent.key, localToken: agent.localToken, logger }), 0);
    server = listening.server;
    base = `http://127.0.0.1:${listening.port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    outbox.close();
    agent.remove();
  });

  const post = (body: unknown) =>
    fetch(`${base}/v1/records`, {
      method: 'POST',
      headers: { authorization: `Bearer ${agent.localToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const record = (kind: string, type: string) => ({ kind, type, body: { payload: 'x'.repeat(300) } });

  /** Posts until an answer other than 201; returns it. */
  async function postUntilRefused(kind: string, type: string): Promise<Response> {
    for (let i = 0; i < 200; i++) {
      const response = await post(record(kind, type));
      if (response.status !== 201) return response;
      await response.body?.cancel();
    }
    assert.fail(`${kind} was never refused`);
  }

  const warnings = () => logLines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((line) => line.level === 40 && /cap reached/.test(line.msg));

  it('answers 507 buffer.telemetry_refused above the soft cap, still takes audit records, and warns once', async () => {
    const refused = await postUntilRefused('telemetry', 'service.health');
    assert.equal(refused.status, 507);
    assert.equal(refused.headers.get('content-type')?.split(';')[0], PROBLEM_CONTENT_TYPE);
    const body = (await refused.json()) as { code: string; detail: string; softCapBytes: number; pendingBytes: number };
    assert.equal(body.code, 'buffer.telemetry_refused');
    assert.equal(body.softCapBytes, CAP.softBytes);
    assert.match(body.detail, /NOT stored/);
    assert.equal((await post(record('telemetry', 'service.health'))).status, 507);
    const audit = await post(record('audit', 'certificate.issued'));
    assert.equal(audit.status, 201, 'audit records are still accepted above the soft cap');
    assert.equal(warnings().length, 1, "one warning when the soft cap is reached, not one per refusal");
  });

  it('answers 507 buffer.full to audit records at the hard cap, and status shows the counters and the cap state', async () => {
    const refused = await postUntilRefused('audit', 'certificate.issued');
    assert.equal(refused.status, 507);
    assert.equal(((await refused.json()) as { code: string }).code, 'buffer.full');
    assert.equal(warnings().length, 2, 'a second warning when the hard cap is reached');
    const status = (await (await fetch(`${base}/v1/status`, { headers: { authorization: `Bearer ${agent.localToken}` } })).json()) as AgentStatus;
    assert.equal(status.buffer.state, 'hard_cap');
    assert.equal(status.buffer.softCapBytes, CAP.softBytes);
    assert.equal(status.buffer.hardCapBytes, CAP.hardBytes);
    assert.equal(status.buffer.pendingBytes, outbox.pendingBytes());
    assert.equal(status.buffer.dropped?.dropped, 3);
    assert.deepEqual(status.buffer.dropped?.byType, { 'service.health': 2, 'certificate.issued': 1 });
  });

  it('refuses a telemetry.dropped record from an application: only the agent writes summaries', async () => {
    const response = await post({ kind: 'agent', type: 'telemetry.dropped', body: { dropped: 0 } });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { code: string }).code, 'request.invalid');
  });
});
