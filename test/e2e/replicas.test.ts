/**
 * Three collector replicas on one PostgreSQL database behind a real nginx, real agents streaming
 * records through it. Mid-stream one replica is killed (SIGKILL) and another is stopped (SIGTERM)
 * and started again on its port. Afterwards: every acknowledged record is in the ledger exactly
 * once, read with SQL; the checkpoints every replica served verify with the one log key and are
 * consistent with each other by proofs another replica served; records are included in one
 * replica's checkpoint by another's proof; `ledger verify` passes; nginx did send some batch
 * again to another replica; and no agent was refused.
 * Needs SAKSHYA_TEST_POSTGRES_URL (test/helpers/postgres.ts) and nginx.
 */
import assert from 'node:assert/strict';
import { TEST_ORIGIN } from '../helpers/collector-process.ts';
import { eventually } from '../helpers/agent-process.ts';
import { assertFaultInvariants, checkFaultInvariants } from '../helpers/ledger-invariants.ts';
import { nginxBinary } from '../helpers/nginx.ts';
import { createTestDatabase, requirePostgres, sqlOn, type TestDatabase } from '../helpers/postgres.ts';
import { refusals, startReplicaFleet, streamRecords, waitDrained, type ReplicaFleet } from '../helpers/replica-fleet.ts';
import { assertCheckpointsConsistent, assertIncludedAcross, fetchCheckpoint, sampleCheckpoints, sharedLogKey } from '../helpers/replica-log.ts';
import { skipUnlessCi } from '../helpers/skip.ts';

const AGENTS = 4;
const PER_AGENT = 150;
const PREFIX = 'AS-RPL';

/** A line of the test nginx's access log: `status upstream_addr upstream_status "request"`, the upstream fields lists for a request sent again. */
function accessEntry(line: string): { status: string; upstreams: string[]; upstreamStatuses: string[] } {
  const match = /^(\d{3}) ((?:\S+, )*\S+) ((?:\S+, )*\S+) "/.exec(line);
  if (!match) throw new Error(`not an access log line of the test nginx: ${line}`);
  return { status: match[1]!, upstreams: match[2]!.split(', '), upstreamStatuses: match[3]!.split(', ') };
}

describe('collector replicas on PostgreSQL behind nginx', function () {
  this.timeout(180_000);
  let database: TestDatabase | undefined;
  let fleet: ReplicaFleet | undefined;

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && fleet) console.log(`      logs of the failed run: ${fleet.saveLogs()}`);
    await fleet?.close();
    await database?.drop();
  });

  it('lose nothing and store nothing twice when one replica is killed and another restarted mid-stream', async function () {
    const adminUrl = requirePostgres(this);
    const binary = nginxBinary();
    if (binary === undefined) skipUnlessCi(this, 'this test runs nginx in front of the replicas and needs the nginx binary (Debian: apt-get install nginx)');
    database = await createTestDatabase(adminUrl);
    fleet = await startReplicaFleet({ databaseUrl: database.url, replicas: 3, agents: AGENTS, prefix: PREFIX, nginxBinary: binary });
    const killed = fleet.replicas[1]!;
    const restarted = fleet.replicas[2]!;
    const running = fleet;

    const sampler = sampleCheckpoints(() => running.live(), 200);
    const stream = streamRecords(fleet, { perAgent: PER_AGENT, pauseMs: 60, scenario: 'replicas' });

    await eventually('every agent has written a first share', async () => (stream.least() >= 30 ? true : undefined), 60_000);
    await killed.kill9();
    await eventually('every agent has written past the kill', async () => (stream.least() >= 80 ? true : undefined), 60_000);
    assert.equal(await restarted.stop(), 0, 'a replica stops cleanly on SIGTERM');
    assert.equal((await restarted.start()).port, restarted.port, 'back on its port, so nginx finds it');

    assert.equal(await stream.done, undefined, 'every write to an agent was acknowledged');
    await waitDrained(fleet);
    const served = await sampler.stop();
    const live = fleet.live();
    assert.deepEqual(
      live.map((replica) => replica.n),
      [1, 3],
    );

    // The ledger, read with SQL: each (agent, epoch, seq) once, seqs 1…n without gaps, n = what the agent emitted.
    const perAgent = await sqlOn<{ agent: string; records: number; distinct_seqs: number; first_seq: number; last_seq: number; epochs: number }>(
      database.url,
      `SELECT agent, count(*)::int AS records, count(DISTINCT (epoch, seq))::int AS distinct_seqs, min(seq)::int AS first_seq, max(seq)::int AS last_seq,
              count(DISTINCT epoch)::int AS epochs
         FROM records WHERE agent LIKE $1 GROUP BY agent ORDER BY agent`,
      [`${PREFIX}-%`],
    );
    assert.deepEqual(
      perAgent,
      fleet.agents.map((agent) => ({ agent: agent.agentId, records: PER_AGENT, distinct_seqs: PER_AGENT, first_seq: 1, last_seq: PER_AGENT, epochs: 1 })),
    );
    const report = await checkFaultInvariants({
      collectorDir: fleet.replicas[0]!.dir,
      database: database.url,
      agents: fleet.agents.map((agent) => ({ agentId: agent.agentId, dir: agent.dir, acknowledged: agent.acknowledged })),
    });
    assertFaultInvariants(report);
    assert.equal(report.inLedger, AGENTS * PER_AGENT);

    // Checkpoints from every live replica, and those sampled during the run from each: one log.
    const logKey = await sharedLogKey(live);
    const latest = await Promise.all(live.map(fetchCheckpoint));
    const consistency = await assertCheckpointsConsistent({ served: [...served, ...latest], logKey, origin: TEST_ORIGIN, live });
    assert.equal(new Set(served.map((checkpoint) => checkpoint.replica)).size, 3, 'checkpoints were sampled from all three replicas');
    assert.ok(consistency.proofs >= 2, `consistency proofs between checkpoints of different sizes: ${JSON.stringify(consistency)}`);

    const sample = await sqlOn<{ id: string; ledger_index: number; canonical: string }>(
      database.url,
      `SELECT id, ledger_index::int AS ledger_index, canonical FROM records WHERE agent LIKE $1 AND seq IN (1, 37, 75, 112, ${PER_AGENT}) ORDER BY ledger_index`,
      [`${PREFIX}-%`],
    );
    assert.equal(sample.length, AGENTS * 5);
    const included = await assertIncludedAcross({
      records: sample.map((row) => ({ id: row.id, ledgerIndex: row.ledger_index, canonical: row.canonical })),
      logKey,
      origin: TEST_ORIGIN,
      live,
    });
    assert.equal(included, sample.length);

    // nginx sent some batch to a replica the test broke, then to another one that took it.
    const batchLines = fleet.nginx.accessLog().filter((line) => line.includes('"POST /api/v1/batches'));
    const broken = [killed, restarted].map((replica) => `127.0.0.1:${replica.port}`);
    const retried = batchLines.map(accessEntry).filter((entry) => entry.status === '200' && entry.upstreams.length > 1 && broken.includes(entry.upstreams[0]!));
    assert.ok(retried.length > 0, `no batch was sent again to another replica; the access log's batch lines:\n${batchLines.slice(0, 30).join('\n')}`);
    assert.deepEqual(refusals(fleet), [], 'no agent had a batch refused');
  });
});
