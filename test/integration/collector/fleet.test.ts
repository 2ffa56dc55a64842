/**
 * The fleet view over real HTTP (`GET /api/v1/agents`, `GET /api/v1/agents/<id>`): a fleet of
 * agents enrolled and sending through the real endpoints, on a collector whose clock the test
 * moves (so "last seen 3 days ago" is real data, not a fixture), read by real admin and auditor
 * tokens. Answers are checked against shared/api-schemas.ts.
 */
import assert from 'node:assert/strict';
import { fleetAgentDetailSchema, fleetListSchema, type FleetAgent, type FleetList } from '../../../shared/api-schemas.ts';
import { API_PREFIX } from '../../../shared/protocol.ts';
import { startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { assertProblem } from './http-assertions.ts';
import { collectorChain, expectNothingStored } from './security-support.ts';
import { request, TestAgent, type HttpAnswer } from './test-agent.ts';

const T = Date.parse('2026-11-22T12:00:00.000Z');
const HOUR = 3_600_000;

describe('collector fleet API: GET /api/v1/agents', function () {
  this.timeout(60_000);
  let collector: InProcessCollector;
  let clock = new Date(T - 72 * HOUR);
  let admin: { token: string; id: string };
  let auditor: { token: string; id: string };
  /** Agents by role in the fleet. */
  const fleet: { [name: string]: TestAgent } = {};

  async function enrolled(id: string, options: { replace?: boolean; agent?: TestAgent } = {}): Promise<TestAgent> {
    const agent = options.agent ?? new TestAgent(id, collector.url, collector.origin);
    if (options.replace) agent.newKey();
    const { token } = await collector.container.enrollment.issueToken(id, 3600, 'cli:test', { replace: options.replace === true });
    const answer = await agent.enroll(token);
    assert.equal(answer.status, 200, answer.text);
    return agent;
  }

  /** Sends `count` records at the collector's current time, reporting `pending` as the backlog. */
  async function sendAt(agent: TestAgent, count: number, pending: number, extra: { agentVersion?: string; userAgent?: string } = {}): Promise<void> {
    const records = Array.from({ length: count }, () => agent.next(undefined, 'audit', 'certificate.issued', clock.toISOString()));
    const batch = { ...agent.batch(records), backlog: { pending, oldestAt: records[0]!.at }, ...(extra.agentVersion ? { agentVersion: extra.agentVersion } : {}) };
    await agent.sendOk(batch, {
      token: await agent.token({ nowSeconds: Math.floor(clock.getTime() / 1000) }),
      ...(extra.userAgent ? { headers: { 'user-agent': extra.userAgent } } : {}),
    });
  }

  function get(path: string, authorization?: string): Promise<HttpAnswer> {
    return request(`${collector.url}${API_PREFIX}${path}`, { method: 'GET', headers: authorization ? { authorization } : {} });
  }

  const bearer = (token: string) => `Bearer ${token}`;

  async function list(query: string, token = admin.token): Promise<FleetList> {
    const answer = await get(`/agents${query}`, bearer(token));
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.headers.get('cache-control'), 'private, no-store');
    return fleetListSchema.parse(answer.body);
  }

  const ids = (rows: FleetAgent[]) => rows.map((row) => `${row.agent}#${row.epoch}`);

  before(async () => {
    collector = await startCollectorInProcess({ now: () => clock });
    // 3 days before T: the old office sends, with a large backlog, its version in the batch.
    fleet.old = await enrolled('AS-FLT-OLD');
    fleet.replaced = await enrolled('AS-FLT-REPL');
    fleet.revoked = await enrolled('AS-FLT-REV');
    await sendAt(fleet.old, 2, 500, { agentVersion: '0.1.0' });
    await sendAt(fleet.replaced, 1, 1, { agentVersion: '0.1.0' });
    // 7 hours before T: an agent older than the agentVersion field, known only by its User-Agent.
    clock = new Date(T - 7 * HOUR);
    fleet.legacy = await enrolled('AS-FLT-LEGACY');
    await sendAt(fleet.legacy, 1, 5, { userAgent: 'sakshya-agent/0.0.9' });
    await collector.container.enrollment.revokeAgent(fleet.revoked.id, 'cli:test');
    // 10 minutes before T: a current office (the batch's version wins over its User-Agent), the
    // replacement of a lost disk, and one enrolled that never sent.
    clock = new Date(T - 10 * 60_000);
    fleet.fresh = await enrolled('AS-FLT-FRESH');
    await sendAt(fleet.fresh, 3, 0, { agentVersion: '0.2.0', userAgent: 'sakshya-agent/0.0.1' });
    await enrolled(fleet.replaced.id, { replace: true, agent: fleet.replaced });
    await sendAt(fleet.replaced, 1, 2, { agentVersion: '0.2.0' });
    fleet.silent = await enrolled('AS-FLT-SILENT');
    clock = new Date(T);
    admin = await collector.container.apiTokens.issue('admin', 'Asha Admin', 86_400, 'cli:test');
    auditor = await collector.container.apiTokens.issue('auditor', 'Ravi Auditor', 86_400, 'cli:test');
  });
  after(async () => {
    await collector?.stop();
  });

  it('lists every (agent, epoch) but the collector\'s own chain, by agent then epoch, with state, contact, backlog and version', async () => {
    const page = await list('');
    assert.equal(page.nextCursor, null);
    assert.deepEqual(ids(page.agents), [
      'AS-FLT-FRESH#1',
      'AS-FLT-LEGACY#1',
      'AS-FLT-OLD#1',
      'AS-FLT-REPL#1',
      'AS-FLT-REPL#2',
      'AS-FLT-REV#1',
      'AS-FLT-SILENT#1',
    ]);
    const row = (id: string, epoch = 1) => page.agents.find((a) => a.agent === id && a.epoch === epoch)!;
    assert.deepEqual(
      { ...row('AS-FLT-OLD'), enrolledAt: '-' },
      {
        agent: 'AS-FLT-OLD',
        epoch: 1,
        status: 'active',
        enrolledAt: '-',
        revokedAt: null,
        supersededBy: null,
        lastSeenAt: new Date(T - 72 * HOUR).toISOString(),
        backlog: { pending: 500, oldestAt: new Date(T - 72 * HOUR).toISOString(), reportedAt: new Date(T - 72 * HOUR).toISOString() },
        highestSeq: 2,
        ledgerEntries: 2,
        quarantined: 0,
        clockSkew: { implausible: 0, lastOffsetSeconds: null, lastRule: null },
        witnessed: null,
        version: '0.1.0',
      },
    );
    assert.equal(row('AS-FLT-LEGACY').version, '0.0.9', 'from the User-Agent when the batch names no version');
    assert.equal(row('AS-FLT-FRESH').version, '0.2.0', 'the batch\'s version wins over the User-Agent');
    assert.deepEqual([row('AS-FLT-SILENT').lastSeenAt, row('AS-FLT-SILENT').version, row('AS-FLT-SILENT').backlog.pending, row('AS-FLT-SILENT').clockSkew], [null, null, null, null]);
    assert.deepEqual([row('AS-FLT-REPL').status, row('AS-FLT-REPL').supersededBy, row('AS-FLT-REPL', 2).status, row('AS-FLT-REPL', 2).version], ['superseded', 2, 'active', '0.2.0']);
    assert.deepEqual([row('AS-FLT-REV').status, row('AS-FLT-REV').revokedAt], ['revoked', new Date(T - 7 * HOUR).toISOString()]);
  });

  it('filters by status, by silence and by backlog, and by all three at once', async () => {
    assert.deepEqual(ids((await list('?status=active')).agents), ['AS-FLT-FRESH#1', 'AS-FLT-LEGACY#1', 'AS-FLT-OLD#1', 'AS-FLT-REPL#2', 'AS-FLT-SILENT#1']);
    assert.deepEqual(ids((await list('?status=revoked')).agents), ['AS-FLT-REV#1']);
    assert.deepEqual(ids((await list('?status=superseded')).agents), ['AS-FLT-REPL#1']);
    // Last seen more than 6 hours before T, or never.
    assert.deepEqual(ids((await list('?silentFor=6h')).agents), ['AS-FLT-LEGACY#1', 'AS-FLT-OLD#1', 'AS-FLT-REPL#1', 'AS-FLT-REV#1', 'AS-FLT-SILENT#1']);
    assert.deepEqual(ids((await list('?silentFor=2d')).agents), ['AS-FLT-OLD#1', 'AS-FLT-REPL#1', 'AS-FLT-REV#1', 'AS-FLT-SILENT#1']);
    assert.deepEqual(ids((await list('?silentFor=30m')).agents), ['AS-FLT-LEGACY#1', 'AS-FLT-OLD#1', 'AS-FLT-REPL#1', 'AS-FLT-REV#1', 'AS-FLT-SILENT#1']);
    assert.deepEqual(ids((await list('?silentFor=5m')).agents).length, 7);
    assert.deepEqual(ids((await list('?backlogOver=4')).agents), ['AS-FLT-LEGACY#1', 'AS-FLT-OLD#1']);
    assert.deepEqual(ids((await list('?backlogOver=0')).agents), ['AS-FLT-LEGACY#1', 'AS-FLT-OLD#1', 'AS-FLT-REPL#1', 'AS-FLT-REPL#2']);
    assert.deepEqual(ids((await list('?backlogOver=500')).agents), []);
    assert.deepEqual(ids((await list('?status=active&silentFor=6h&backlogOver=4')).agents), ['AS-FLT-LEGACY#1', 'AS-FLT-OLD#1']);
  });

  it('pages through the fleet with the cursor: every row once, in order, whatever the page size and filter', async () => {
    const everything = ids((await list('')).agents);
    for (const [filter, limit] of [['', 1], ['', 2], ['', 3], ['&status=active', 2], ['&silentFor=6h', 4]] as const) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: FleetList = await list(`?limit=${limit}${filter}${cursor ? `&cursor=${cursor}` : ''}`);
        assert.ok(page.agents.length <= limit);
        assert.ok(page.agents.length > 0, 'no empty page before the last');
        seen.push(...ids(page.agents));
        cursor = page.nextCursor;
        pages++;
      } while (cursor !== null);
      const want = filter === '' ? everything : ids((await list(`?${filter.slice(1)}`)).agents);
      assert.deepEqual(seen, want, `limit ${limit}${filter}`);
      assert.equal(pages, Math.ceil(want.length / limit), 'the last page says so: no extra empty page');
    }
    const first = await list('?limit=3');
    await sendAt(fleet.fresh, 1, 0); // a change between two pages moves nothing
    const second = await list(`?limit=3&cursor=${first.nextCursor}`);
    assert.deepEqual(ids(second.agents), everything.slice(3, 6));
  });

  it("shows one agent's current epoch and its earlier ones; 404 for an unknown id and for the collector's own chain", async () => {
    const answer = await get('/agents/AS-FLT-REPL', bearer(admin.token));
    assert.equal(answer.status, 200, answer.text);
    const detail = fleetAgentDetailSchema.parse(answer.body);
    assert.deepEqual([detail.agent, detail.epoch, detail.status, detail.version], ['AS-FLT-REPL', 2, 'active', '0.2.0']);
    assert.deepEqual(detail.previousEpochs.map((e) => [e.epoch, e.status, e.supersededBy, e.version]), [[1, 'superseded', 2, '0.1.0']]);
    const single = fleetAgentDetailSchema.parse((await get('/agents/AS-FLT-SILENT', bearer(auditor.token))).body);
    assert.deepEqual([single.epoch, single.previousEpochs], [1, []]);
    assertProblem(await get('/agents/AS-NOBODY-01', bearer(admin.token)), 404, 'resource.not_found');
    assertProblem(await get('/agents/COLLECTOR', bearer(admin.token)), 404, 'resource.not_found');
  });

  it('shows the version of the newest batch: a new agentVersion replaces the old one', async () => {
    await sendAt(fleet.old, 1, 499, { agentVersion: '0.2.1-rc.1+build.5' });
    const detail = fleetAgentDetailSchema.parse((await get('/agents/AS-FLT-OLD', bearer(admin.token))).body);
    assert.deepEqual([detail.version, detail.lastSeenAt, detail.backlog.pending], ['0.2.1-rc.1+build.5', new Date(T).toISOString(), 499]);
    assert.deepEqual(ids((await list('?silentFor=2d')).agents), ['AS-FLT-REPL#1', 'AS-FLT-REV#1', 'AS-FLT-SILENT#1'], 'no longer silent');
  });

  it('records each read by an auditor as a fleet.read record of the COLLECTOR chain, with the filter; an admin\'s reads are not recorded', async () => {
    const reads = () => collectorChain(collector.dir).filter((r) => r.type === 'fleet.read');
    const before = reads().length;
    await list('?limit=2', admin.token);
    await get('/agents/AS-FLT-OLD', bearer(admin.token));
    assert.equal(reads().length, before, 'admin reads');
    // Two rows match: AS-FLT-LEGACY (seen 7 h ago) and AS-FLT-REPL epoch 2 (10 min ago).
    const page = await list('?status=active&silentFor=5m&backlogOver=0&limit=1', auditor.token);
    assert.notEqual(page.nextCursor, null);
    await list(`?status=active&silentFor=5m&backlogOver=0&limit=1&cursor=${page.nextCursor}`, auditor.token);
    await get('/agents/AS-FLT-REPL', bearer(auditor.token));
    const by = `auditor:Ravi Auditor#${auditor.id}`;
    assert.deepEqual(
      reads().slice(before).map((r) => r.body),
      [
        { by, filter: { status: 'active', silentFor: '5m', backlogOver: 0, limit: 1 }, rows: 1 },
        { by, filter: { status: 'active', silentFor: '5m', backlogOver: 0, limit: 1, cursor: page.nextCursor }, rows: 1 },
        { by, filter: { agent: 'AS-FLT-REPL' }, rows: 2 },
      ],
    );
    const report = await collector.container.ledgerAudit().run();
    assert.equal(report.intact, true, JSON.stringify(report.findings));
  });

  it('refuses an agent token with 403 and no token or a bad one with 401, storing nothing', async () => {
    await expectNothingStored(collector, async () => {
      // A fresh JWT per request: each is used once.
      const agentToken = async () => bearer(await fleet.fresh!.token({ nowSeconds: Math.floor(clock.getTime() / 1000) }));
      for (const path of ['/agents', '/agents/AS-FLT-FRESH']) {
        assertProblem(await get(path, await agentToken()), 403, 'auth.forbidden');
        assertProblem(await get(path), 401, 'auth.invalid_token');
        assertProblem(await get(path, bearer('sakshya_' + 'A'.repeat(43))), 401, 'auth.invalid_token');
      }
    });
  });

  it('refuses a malformed id, a bad cursor, a bad filter and unknown or repeated parameters with 400 request.invalid, recording nothing', async () => {
    const chainBefore = collectorChain(collector.dir).length;
    const forged = (text: string) => Buffer.from(text).toString('base64url');
    for (const query of [
      '?cursor=not*base64',
      `?cursor=${forged('AS-FLT-OLD')}`,
      `?cursor=${forged('AS-FLT-OLD/0')}`,
      `?cursor=${forged('as-flt-old/1')}`,
      `?cursor=${forged('AS-FLT-OLD/1')}x`,
      `?cursor=${'A'.repeat(201)}`,
      '?cursor=',
      '?limit=0',
      '?limit=501',
      '?limit=ten',
      '?status=lost',
      '?silentFor=6',
      '?silentFor=1w',
      '?silentFor=-1h',
      '?backlogOver=-1',
      '?backlogOver=1.5',
      '?status=active&status=revoked',
      '?agent=AS-FLT-OLD',
    ]) {
      assertProblem(await get(`/agents${query}`, bearer(auditor.token)), 400, 'request.invalid');
    }
    assertProblem(await get('/agents/as-lower-case', bearer(auditor.token)), 400, 'request.invalid');
    assertProblem(await get('/agents/AB', bearer(auditor.token)), 400, 'request.invalid');
    assertProblem(await get('/agents/AS-FLT-OLD?limit=1', bearer(auditor.token)), 400, 'request.invalid');
    assert.equal(collectorChain(collector.dir).length, chainBefore, 'a refused read is not recorded');
    const valid = await list(`?cursor=${forged('AS-FLT-OLD/1')}`);
    assert.deepEqual(ids(valid.agents), ['AS-FLT-REPL#1', 'AS-FLT-REPL#2', 'AS-FLT-REV#1', 'AS-FLT-SILENT#1'], 'a well-formed cursor is a position, not a secret');
  });

  it('answers other methods on the fleet routes with 405', async () => {
    for (const path of ['/agents', '/agents/AS-FLT-OLD']) {
      const answer = await request(`${collector.url}${API_PREFIX}${path}`, { method: 'DELETE', headers: { authorization: bearer(admin.token) } });
      assertProblem(answer, 405, 'method.not_allowed');
    }
  });
});
