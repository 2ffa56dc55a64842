/**
 * The collector's Prometheus metrics (collector/services/metrics.ts), scraped from a real
 * `sakshya-collector serve` process on its own metrics listener: each counter moves when its
 * event happens over real HTTP, labels are templates and names (never raw paths, record
 * content or tokens), and the ledger-wide gauges follow the store.
 */
import assert from 'node:assert/strict';
import { signRecord, type SignedRecord } from '../../../shared/record.ts';
import { newId } from '../../../shared/ids.ts';
import { packageVersion } from '../../../shared/package-version.ts';
import { API_PREFIX } from '../../../shared/protocol.ts';
import { runCollectorCli, startCollectorProcess, type CollectorProcess } from '../../helpers/collector-process.ts';
import { parseExposition, sampleValue, scrape, type Exposition } from '../../helpers/prometheus-text.ts';
import { request, TestAgent } from './test-agent.ts';

const SECRET_MARKER = 'secret-body-marker-7f3a';

describe('collector metrics (GET /metrics on the metrics listener)', function () {
  this.timeout(60_000);
  let collector: CollectorProcess;
  let agent: TestAgent;
  let adminToken: string;

  before(async () => {
    collector = await startCollectorProcess();
    const env = { SAKSHYA_COLLECTOR_DIR: collector.dir };
    agent = new TestAgent('AS-MET-001', collector.url, collector.origin);
    const enrollToken = (await runCollectorCli(['agents', 'enroll', '--agent', agent.id], env)).stdout.trim();
    assert.equal((await agent.enroll(enrollToken)).status, 200);
    const issued = await runCollectorCli(['tokens', 'issue', '--role', 'admin', '--name', 'Ravi'], env);
    assert.equal(issued.code, 0, issued.stderr);
    adminToken = issued.stdout.trim();
  });
  after(async () => {
    await collector?.stop();
  });

  const metrics = () => scrape(collector.metricsUrl);
  const histogramCount = (e: Exposition, labels: Record<string, string>) => sampleValue(e, 'sakshya_collector_http_request_duration_seconds_count', labels);

  it('serves the Prometheus text format on its own listener, and nothing of it on the API port', async () => {
    const e = await metrics();
    assert.equal(sampleValue(e, 'sakshya_collector_build_info', { version: packageVersion() }), 1);
    assert.equal(e.types.get('sakshya_collector_http_request_duration_seconds'), 'histogram');
    assert.equal(e.types.get('sakshya_collector_batches_total'), 'counter');
    assert.equal(sampleValue(e, 'sakshya_collector_ready'), 1);
    assert.ok(e.types.has('nodejs_eventloop_lag_p99_seconds'), 'Node process metrics');
    assert.ok(e.types.has('process_cpu_seconds_total'));
    const onApi = await fetch(`${collector.url}/metrics`);
    assert.equal(onApi.status, 404);
    const apiOnMetrics = await fetch(new URL('/healthz', collector.metricsUrl));
    assert.equal(apiOnMetrics.status, 404);
    const health = (await (await fetch(`${collector.url}/healthz`)).json()) as { version?: string };
    assert.equal(health.version, packageVersion());
    assert.ok(collector.logs.some((line) => line.includes('"msg":"listening"') && line.includes(`"version":"${packageVersion()}"`)), 'the startup line carries the version');
  });

  it('counts an accepted batch, its records, its signature checks, the agent credential and the route template', async () => {
    const before = await metrics();
    const records = [agent.next({ note: SECRET_MARKER }), agent.next()];
    const batch = { ...agent.batch(records), backlog: { pending: 17, oldestAt: records[0]!.at } };
    await agent.sendOk(batch);
    const after = await metrics();
    const delta = (name: string, labels: Record<string, string> = {}) => sampleValue(after, name, labels) - sampleValue(before, name, labels);

    assert.equal(delta('sakshya_collector_batches_total', { outcome: 'accepted' }), 1);
    assert.equal(delta('sakshya_collector_records_ingested_total', { agent: agent.id }), 2);
    assert.equal(delta('sakshya_collector_requests_total', { credential: 'agent', name: agent.id, status_class: '2xx' }), 1);
    assert.equal(histogramCount(after, { method: 'POST', route: '/api/v1/batches', status: '200' }) - histogramCount(before, { method: 'POST', route: '/api/v1/batches', status: '200' }), 1);
    assert.equal(delta('sakshya_collector_ed25519_verifications_total'), 3, 'two record signatures and the JWT');
    assert.equal(delta('sakshya_collector_write_lock_wait_seconds_count'), 1);
    assert.equal(delta('sakshya_collector_write_lock_hold_seconds_count'), 1);
    assert.ok(delta('sakshya_collector_write_lock_hold_seconds_sum') > 0);
    assert.equal(delta('sakshya_collector_integration_records_sum'), 2);
    assert.equal(delta('sakshya_collector_ledger_size'), 2);
    assert.equal(delta('sakshya_collector_checkpoint_size'), 2);
    assert.ok(sampleValue(after, 'sakshya_collector_checkpoint_timestamp_seconds') >= sampleValue(before, 'sakshya_collector_checkpoint_timestamp_seconds'));
    assert.equal(sampleValue(after, 'sakshya_collector_agent_backlog_records', { agent: agent.id }), 17);
    const lastSeen = sampleValue(after, 'sakshya_collector_agent_last_seen_timestamp_seconds', { agent: agent.id });
    assert.ok(Math.abs(lastSeen - Date.now() / 1000) < 60, `last seen ${lastSeen}`);
    assert.equal(sampleValue(after, 'sakshya_collector_agent_clock_skew_seconds', { agent: agent.id }), 0);
    assert.equal(sampleValue(after, 'sakshya_collector_agents', { status: 'active' }), 1);
    assert.equal(sampleValue(after, 'sakshya_collector_batch_check_queue_depth'), 0);
    assert.equal(sampleValue(after, 'sakshya_collector_write_queue_depth'), 0);
  });

  it('counts agents by the version they report (what an upgrade campaign reads)', async () => {
    await agent.sendOk({ ...agent.batch([agent.next()]), agentVersion: '9.9.9-test' });
    const e = await metrics();
    assert.equal(sampleValue(e, 'sakshya_collector_agents', { status: 'active', version: '9.9.9-test' }), 1);
    assert.equal(sampleValue(e, 'sakshya_collector_agents', { status: 'active', version: 'unknown' }), 0);
  });

  it('counts a batch sent again as a duplicate, adding no records', async () => {
    const batch = agent.batch(agent.records(3));
    await agent.sendOk(batch);
    const before = await metrics();
    await agent.sendOk(batch);
    const after = await metrics();
    assert.equal(sampleValue(after, 'sakshya_collector_batches_total', { outcome: 'duplicate' }) - sampleValue(before, 'sakshya_collector_batches_total', { outcome: 'duplicate' }), 1);
    assert.equal(sampleValue(after, 'sakshya_collector_records_ingested_total', { agent: agent.id }), sampleValue(before, 'sakshya_collector_records_ingested_total', { agent: agent.id }));
  });

  it('counts refusals by problem code, and a request without credentials as anonymous', async () => {
    const before = await metrics();
    const { seq, prev } = agent;
    const answer = await agent.send(agent.batch([agent.next()]), { token: 'not-a-jwt' });
    assert.equal(answer.status, 401);
    Object.assign(agent, { seq, prev }); // that record was never stored
    const after = await metrics();
    assert.equal(sampleValue(after, 'sakshya_collector_batches_total', { outcome: 'auth.invalid_token' }) - sampleValue(before, 'sakshya_collector_batches_total', { outcome: 'auth.invalid_token' }), 1);
    assert.equal(
      sampleValue(after, 'sakshya_collector_requests_total', { credential: 'anonymous', status_class: '4xx' }) - sampleValue(before, 'sakshya_collector_requests_total', { credential: 'anonymous', status_class: '4xx' }),
      1,
    );
  });

  it('shows an agent\u2019s clock skew while its newest record is implausible, and 0 once it is right again', async () => {
    const ahead = new Date(Date.now() + 3_600_000).toISOString();
    await agent.sendOk(agent.batch([agent.next({ n: 'ahead' }, 'audit', 'certificate.issued', ahead)]));
    const skewed = sampleValue(await metrics(), 'sakshya_collector_agent_clock_skew_seconds', { agent: agent.id });
    assert.ok(skewed > 3500 && skewed <= 3600, `skew ${skewed}`);
    // Back to the right time: that record's `at` is before the previous one's ("backwards", negative) ...
    await agent.sendOk(agent.batch([agent.next({ n: 'back' })]));
    const backwards = sampleValue(await metrics(), 'sakshya_collector_agent_clock_skew_seconds', { agent: agent.id });
    assert.ok(backwards < -3500, `skew ${backwards}`);
    // ... and the next plausible record clears the gauge.
    await agent.sendOk(agent.batch([agent.next({ n: 'fine' })]));
    assert.equal(sampleValue(await metrics(), 'sakshya_collector_agent_clock_skew_seconds', { agent: agent.id }), 0);
  });

  it('counts quarantined records when an agent equivocates', async () => {
    const fresh = new TestAgent('AS-MET-002', collector.url, collector.origin);
    const token = (await runCollectorCli(['agents', 'enroll', '--agent', fresh.id], { SAKSHYA_COLLECTOR_DIR: collector.dir })).stdout.trim();
    assert.equal((await fresh.enroll(token)).status, 200);
    const [first] = fresh.records(1) as [SignedRecord];
    await fresh.sendOk(fresh.batch([first]));
    const before = await metrics();
    const forged = signRecord({ ...first, id: newId(), body: { n: 'changed' } }, fresh.key.privateKey);
    assert.equal((await fresh.send(fresh.batch([forged]))).status, 409);
    const after = await metrics();
    assert.equal(sampleValue(after, 'sakshya_collector_quarantined_records_total') - sampleValue(before, 'sakshya_collector_quarantined_records_total'), 1);
    assert.equal(sampleValue(after, 'sakshya_collector_batches_total', { outcome: 'record.equivocation' }) - sampleValue(before, 'sakshya_collector_batches_total', { outcome: 'record.equivocation' }), 1);
  });

  it('names an admin by the name its token was issued to, and labels paths by template only', async () => {
    const before = await metrics();
    const revoke = await request(`${collector.url}${API_PREFIX}/agents/AS-MET-999/revoke`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}` } });
    assert.ok(revoke.status < 500, revoke.text);
    await request(`${collector.url}${API_PREFIX}/records/${newId()}`, { method: 'GET', headers: {} });
    await request(`${collector.url}/no/such/path/${newId()}`, { method: 'GET', headers: {} });
    const after = await metrics();
    const adminClass = `${Math.floor(revoke.status / 100)}xx`;
    assert.equal(
      sampleValue(after, 'sakshya_collector_requests_total', { credential: 'admin', name: 'Ravi', status_class: adminClass }) -
        sampleValue(before, 'sakshya_collector_requests_total', { credential: 'admin', name: 'Ravi', status_class: adminClass }),
      1,
    );
    const routes = new Set(after.samples.filter((s) => s.name === 'sakshya_collector_http_request_duration_seconds_count').map((s) => s.labels.route));
    assert.ok(routes.has('/api/v1/agents/:id/revoke'));
    assert.ok(routes.has('/api/v1/records/:id'));
    assert.ok(routes.has('unmatched'));
    for (const route of routes) assert.ok(route === 'unmatched' || route === '/healthz' || route === '/readyz' || route!.startsWith('/api/v1/'), route);
  });

  it('exposes numbers only: no record content, no tokens, no ids that grow with traffic', async () => {
    const text = await (await fetch(collector.metricsUrl)).text();
    parseExposition(text); // every line parses
    assert.ok(!text.includes(SECRET_MARKER), 'a record body leaked into the metrics');
    assert.ok(!text.includes(adminToken), 'a token leaked into the metrics');
    assert.doesNotMatch(text, /[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/, 'a record or batch id in a label');
  });
});
