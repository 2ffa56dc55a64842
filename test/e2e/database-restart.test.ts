/**
 * Two collector replicas on one PostgreSQL database behind a real nginx, real agents streaming
 * records, and the database server itself stopped and started again mid-stream (and then
 * restarted once more with `pg_ctl restart -m fast`). While it is down, each replica answers a
 * batch with 503 `service.unavailable` and Retry-After, `/readyz` with 503, and
 * `sakshya_collector_ready` is 0; once it is back, the replicas — the same processes, never
 * restarted — become ready by themselves, the agents drain, and the ledger holds every record
 * exactly once and passes `ledger verify`.
 * The test runs a PostgreSQL cluster of its own (test/helpers/postgres-cluster.ts: it stops that
 * server, so it cannot use the shared one) and needs nginx.
 */
import assert from 'node:assert/strict';
import { runCollectorCli, TEST_ORIGIN } from '../helpers/collector-process.ts';
import { eventually } from '../helpers/agent-process.ts';
import { assertFaultInvariants, checkFaultInvariants } from '../helpers/ledger-invariants.ts';
import { nginxBinary } from '../helpers/nginx.ts';
import { createTestDatabase, sqlOn } from '../helpers/postgres.ts';
import { requirePostgresBinaries, startPostgresCluster, type PostgresCluster } from '../helpers/postgres-cluster.ts';
import { parseExposition } from '../helpers/prometheus-text.ts';
import { refusals, startReplicaFleet, streamRecords, waitDrained, type Replica, type ReplicaFleet } from '../helpers/replica-fleet.ts';
import { skipUnlessCi } from '../helpers/skip.ts';
import { assertProblem } from '../integration/collector/http-assertions.ts';
import { TestAgent } from '../integration/collector/test-agent.ts';

const AGENTS = 3;
const PER_AGENT = 120;
const PREFIX = 'AS-PGR';

async function readyz(replica: Replica): Promise<number> {
  return (await fetch(`${replica.url}/readyz`)).status;
}

async function readyGauge(replica: Replica): Promise<number | undefined> {
  const text = await (await fetch(replica.process!.metricsUrl)).text();
  return parseExposition(text).samples.find((sample) => sample.name === 'sakshya_collector_ready')?.value;
}

describe('collector replicas through a PostgreSQL restart', function () {
  this.timeout(180_000);
  let cluster: PostgresCluster | undefined;
  let fleet: ReplicaFleet | undefined;

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && fleet) console.log(`      logs of the failed run: ${fleet.saveLogs()}`);
    await fleet?.close();
    await cluster?.destroy();
  });

  it('answer 503 while the database is down, become ready again by themselves once it is back, and lose nothing', async function () {
    const bin = requirePostgresBinaries(this);
    const binary = nginxBinary();
    if (binary === undefined) skipUnlessCi(this, 'this test runs nginx in front of the replicas and needs the nginx binary (Debian: apt-get install nginx)');
    cluster = await startPostgresCluster(bin);
    const database = await createTestDatabase(cluster.adminUrl);
    fleet = await startReplicaFleet({ databaseUrl: database.url, replicas: 2, agents: AGENTS, prefix: PREFIX, nginxBinary: binary });
    const replicas = fleet.replicas;
    const processes = replicas.map((replica) => replica.process!);

    // An agent of the test's own, to post one batch straight to each replica.
    const probe = new TestAgent(`${PREFIX}-900`, replicas[0]!.url, TEST_ORIGIN);
    const token = await runCollectorCli(['agents', 'enroll', '--agent', probe.id], fleet.cliEnv);
    assert.equal(token.code, 0, token.stderr);
    assert.equal((await probe.enroll(token.stdout.trim())).status, 200);
    const held = probe.batch(probe.records(2));

    const stream = streamRecords(fleet, { perAgent: PER_AGENT, pauseMs: 60, scenario: 'database-restart' });
    await eventually('every agent has written a first share', async () => (stream.least() >= 30 ? true : undefined), 60_000);

    await cluster.stop();
    const duringOutage = stream.least();
    for (const replica of replicas) {
      assert.equal(await readyz(replica), 503, `replica ${replica.n}: /readyz while the database is down`);
      assert.equal(await readyGauge(replica), 0, `replica ${replica.n}: sakshya_collector_ready while the database is down`);
      probe.collectorUrl = replica.url;
      const answer = await probe.send(held);
      assertProblem(answer, 503, 'service.unavailable');
      assert.match(answer.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/, `replica ${replica.n}: Retry-After`);
    }
    // The agents meet the outage through nginx — as the replicas' 503, or as nginx's own 502 once
    // it has marked every replica failed — back off, and keep taking records meanwhile.
    await eventually(
      'an agent was told the database is unavailable',
      async () =>
        fleet!.agents.some((agent) =>
          agent.process.logs.some((line) => line.msg === 'batch send failed; will retry' && (line.code === 'service.unavailable' || line.status === 502 || line.status === 503)),
        )
          ? true
          : undefined,
      60_000,
    );
    await eventually('every agent took records during the outage', async () => (stream.least() >= duringOutage + 10 ? true : undefined), 60_000);

    await cluster.start();
    for (const replica of replicas) {
      await eventually(`replica ${replica.n} is ready again`, async () => ((await readyz(replica)) === 200 && (await readyGauge(replica)) === 1 ? true : undefined), 30_000);
    }
    probe.collectorUrl = replicas[1]!.url;
    const receipt = await probe.sendOk(held);
    assert.deepEqual([receipt.receipt.accepted, receipt.receipt.duplicates], [2, 0], 'the batch refused during the outage is taken now');

    // Once more, quickly, while the agents are sending.
    await eventually('every agent has written past the outage', async () => (stream.least() >= duringOutage + 30 ? true : undefined), 60_000);
    await cluster.restart();

    assert.equal(await stream.done, undefined, 'every write to an agent was acknowledged');
    await waitDrained(fleet);
    for (const [i, replica] of replicas.entries()) {
      assert.equal(replica.process, processes[i], `replica ${replica.n} was never restarted`);
      assert.deepEqual([replica.process!.child.exitCode, replica.process!.child.signalCode], [null, null], `replica ${replica.n} is still running`);
      assert.equal(await readyz(replica), 200);
    }

    const perAgent = await sqlOn<{ agent: string; records: number; distinct_seqs: number; last_seq: number }>(
      database.url,
      `SELECT agent, count(*)::int AS records, count(DISTINCT (epoch, seq))::int AS distinct_seqs, max(seq)::int AS last_seq
         FROM records WHERE agent LIKE $1 AND agent <> $2 GROUP BY agent ORDER BY agent`,
      [`${PREFIX}-%`, probe.id],
    );
    assert.deepEqual(
      perAgent,
      fleet.agents.map((agent) => ({ agent: agent.agentId, records: PER_AGENT, distinct_seqs: PER_AGENT, last_seq: PER_AGENT })),
    );
    const report = await checkFaultInvariants({
      collectorDir: replicas[0]!.dir,
      database: database.url,
      agents: fleet.agents.map((agent) => ({ agentId: agent.agentId, dir: agent.dir, acknowledged: agent.acknowledged })),
    });
    assertFaultInvariants(report);
    assert.equal(report.inLedger, AGENTS * PER_AGENT);
    assert.deepEqual(refusals(fleet), [], 'no agent had a batch refused');
  });
});
