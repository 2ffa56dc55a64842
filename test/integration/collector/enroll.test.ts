import assert from 'node:assert/strict';
import { ledgerRows } from '../../helpers/ledger-sql.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { canonicalJson } from '../../../shared/canonical-json.ts';
import { jwkThumbprint, publicKeyFromJwk } from '../../../shared/crypto.ts';
import { enrollResponseSchema } from '../../../shared/protocol.ts';
import { COLLECTOR_AGENT_ID, GENESIS_PREV, recordHash, verifyRecordSignature, type SignedRecord } from '../../../shared/record.ts';
import { runCollectorCli, startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { request, TestAgent } from './test-agent.ts';

describe('POST /api/v1/enroll', function () {
  this.timeout(30_000);
  let collector: InProcessCollector;

  before(async () => {
    collector = await startCollectorInProcess();
  });
  after(async () => {
    await collector?.stop();
  });

  async function cliToken(agent: string, ...extra: string[]): Promise<string> {
    const result = await runCollectorCli(['agents', 'enroll', '--agent', agent, ...extra], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^[A-Za-z0-9_-]{43}\n$/, 'stdout holds only the token');
    return result.stdout.trim();
  }

  it('enrolls an agent with a token from the real CLI and answers its epoch, the origin, the log verifier key and the receipt key', async () => {
    const agent = new TestAgent('AS-ENR-001', collector.url, collector.origin);
    const answer = await agent.enroll(await cliToken(agent.id));
    assert.equal(answer.status, 200, answer.text);
    const body = enrollResponseSchema.parse(answer.body);
    assert.equal(body.agent, agent.id);
    assert.equal(body.epoch, 1);
    assert.equal(body.origin, collector.origin);
    assert.ok(body.logKey.startsWith(`${collector.origin}+`), body.logKey);
    assert.equal(body.receiptKey.x, collector.container.keys.receipt.publicJwk.x);
    assert.equal(body.receiptKey.kid, jwkThumbprint(body.receiptKey));
    const signed = await agent.sendOk(agent.batch(agent.records(1)));
    assert.equal(signed.receipt.accepted, 1);
  });

  it('accepts a token only once, only for its agent id, and only until it expires', async () => {
    const first = new TestAgent('AS-ENR-002', collector.url, collector.origin);
    const token = await cliToken(first.id);
    const wrongAgent = new TestAgent('AS-ENR-003', collector.url, collector.origin);
    const refused = await wrongAgent.enroll(token);
    assert.equal(refused.status, 401, refused.text);
    assert.equal((refused.body as { code: string }).code, 'enroll.token_invalid');
    assert.equal((await first.enroll(token)).status, 200);
    const again = await new TestAgent(first.id, collector.url, collector.origin).enroll(token);
    assert.equal(again.status, 401);
    assert.equal((again.body as { code: string }).code, 'enroll.token_invalid');

    const shortLived = await cliToken(wrongAgent.id, '--ttl', '1s');
    await sleep(1100);
    const expired = await wrongAgent.enroll(shortLived);
    assert.equal(expired.status, 401);
    assert.equal((expired.body as { code: string }).code, 'enroll.token_invalid');
    const unknown = await wrongAgent.enroll('A'.repeat(43));
    assert.equal(unknown.status, 401);
  });

  it('refuses a body that does not match the enroll schema with 400 request.invalid', async () => {
    const response = await request(`${collector.url}/api/v1/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: 'x'.repeat(43), agent: 'lower-case', publicKey: { kty: 'RSA' }, extra: 1 }),
    });
    assert.equal(response.status, 400);
    const body = response.body as { code: string; errors: unknown[] };
    assert.equal(body.code, 'request.invalid');
    assert.ok(body.errors.length >= 3);
  });

  it('starts a new epoch with the new key when an agent id enrolls again with a replacement token, and agents list shows both epochs', async () => {
    const agent = new TestAgent('AS-ENR-004', collector.url, collector.origin);
    assert.equal((await agent.enroll(await cliToken(agent.id))).status, 200);
    await agent.sendOk(agent.batch(agent.records(3)));
    const firstKid = agent.key.kid;
    agent.newKey();
    const answer = await agent.enroll(await cliToken(agent.id, '--replace'));
    assert.equal(answer.status, 200);
    assert.equal(answer.body.epoch, 2);
    await agent.sendOk(agent.batch(agent.records(1), undefined));

    const list = await runCollectorCli(['agents', 'list', '--json'], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.equal(list.code, 0, list.stderr);
    const rows = (JSON.parse(list.stdout) as { agent: string; epoch: number; kid: string; highestSeq: number; ledgerEntries: number; backlog: { pending: number }; status: string; supersededBy: number | null }[])
      .filter((row) => row.agent === agent.id);
    assert.deepEqual(
      rows.map((row) => [row.epoch, row.kid, row.highestSeq, row.ledgerEntries, row.backlog.pending, row.status, row.supersededBy]),
      [
        [1, firstKid, 3, 3, 3, 'superseded', 2],
        [2, agent.key.kid, 1, 1, 1, 'active', null],
      ],
    );
  });

  it('records token issues and enrollments in one gapless, signed COLLECTOR chain shared by the CLI and the server, never holding a token', async () => {
    const agents = ['AS-ENR-005', 'AS-ENR-006', 'AS-ENR-007'].map((id) => new TestAgent(id, collector.url, collector.origin));
    const tokens = await Promise.all(agents.map((agent) => cliToken(agent.id)));
    await Promise.all(agents.map((agent, i) => agent.enroll(tokens[i]!)));
    const rows = ledgerRows<{ canonical: string; seq: number }>(collector.dir, 'SELECT canonical, seq FROM records WHERE agent = ? ORDER BY seq', [COLLECTOR_AGENT_ID]);
    const chainKey = publicKeyFromJwk(collector.container.keys.chain.publicJwk);
    let prev = GENESIS_PREV;
    rows.forEach((row, i) => {
      const record = JSON.parse(row.canonical) as SignedRecord;
      assert.equal(canonicalJson(record), row.canonical);
      assert.equal(record.seq, i + 1);
      assert.equal(record.prev, prev);
      assert.equal(record.kind, 'agent');
      assert.equal(verifyRecordSignature(record, chainKey), true);
      prev = recordHash(record);
    });
    const types = rows.map((row) => (JSON.parse(row.canonical) as SignedRecord).type);
    assert.ok(types.includes('enrollment_token.issued') && types.includes('agent.enrolled'));
    for (const token of tokens) assert.ok(!rows.some((row) => row.canonical.includes(token)), 'no token in the ledger');
    const enrolled = rows.map((row) => JSON.parse(row.canonical) as SignedRecord).filter((r) => r.type === 'agent.enrolled' && r.body.agent === 'AS-ENR-006');
    assert.deepEqual(
      enrolled.map((r) => ({ ...r.body, token: typeof r.body.token })),
      [{ agent: 'AS-ENR-006', epoch: 1, kid: agents[1]!.key.kid, token: 'string', replaces: null }],
    );
  });
});
