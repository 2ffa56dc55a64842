/**
 * Key rotation end to end (ADR 0006): the REAL collector (`sakshya-collector serve`) and the real
 * agent CLI. Records before and after `rotate-key` all reach the ledger once; both `verify`
 * commands pass over the whole history; a running agent picks up a key rotated next to it; and a
 * rotation killed at any point, an agent killed right after one, or a receipt lost for the batch
 * that carried one, all end in a consistent, verifiable state once the agent syncs again.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KEY_ROTATED_TYPE } from '../../../shared/key-rotation.ts';
import type { SignedRecord } from '../../../shared/record.ts';
import { outboxPath, SqliteOutbox } from '../../../agent/outbox/sqlite-outbox.ts';
import { AGENT_BIN, eventually, fetchAgentStatus, initAgent, runAgentCli, startAgentProcess, TEST_AGENT_ENV, type AgentProcess } from '../../helpers/agent-process.ts';
import { makeTempDir, runCollectorCli, startCollectorProcess, type CollectorProcess } from '../../helpers/collector-process.ts';

/** SIGKILLs of `rotate-key`, each after a random delay: some land before its commit, some after. */
const ROTATE_KILLS = 4;

interface AgentListing {
  agent: string;
  epoch: number;
  highestSeq: number;
  ledgerEntries: number;
  keys: { kid: string; fromSeq: number; addedAt: string; reason: string }[];
}

/** Forwards everything to the collector; while `dropReceipts` is on, answers a batch's 200 with a 503 instead. */
class ReceiptDroppingProxy {
  dropReceipts = false;
  dropped = 0;
  url = '';
  #server: Server | undefined;

  async start(target: string): Promise<void> {
    const upstream = new URL(target);
    this.#server = createServer((req, res) => {
      const forward = httpRequest(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () => {
            if (this.dropReceipts && req.url === '/api/v1/batches' && answer.statusCode === 200) {
              this.dropped += 1;
              res.writeHead(503, { 'content-type': 'application/problem+json' });
              res.end(JSON.stringify({ type: 'urn:sakshya:problem:service.unavailable', title: 'lost', status: 503, code: 'service.unavailable', detail: 'receipt lost on the way' }));
              return;
            }
            const headers = { ...answer.headers };
            delete headers['transfer-encoding'];
            res.writeHead(answer.statusCode ?? 502, headers);
            res.end(Buffer.concat(chunks));
          });
        },
      );
      forward.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      req.pipe(forward);
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}

describe('agent key rotation against the real collector', function () {
  this.timeout(120_000);
  let collector: CollectorProcess;
  let root: string;
  let counter = 0;
  let running: AgentProcess | undefined;

  before(async () => {
    collector = await startCollectorProcess();
    root = makeTempDir('sakshya-agent-rotation-');
  });
  afterEach(async () => {
    await running?.kill9();
    running = undefined;
  });
  after(async () => {
    await collector?.stop();
  });

  async function newAgent(collectorUrl = collector.url): Promise<{ id: string; dir: string; env: { [k: string]: string } }> {
    const id = `AS-KEY-${String(++counter).padStart(3, '0')}`;
    const token = await runCollectorCli(['agents', 'enroll', '--agent', id], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.equal(token.code, 0, token.stderr);
    const { dir } = await initAgent({ collectorUrl, agentId: id, token: token.stdout.trim(), dir: join(root, id) });
    return { id, dir, env: { SAKSHYA_AGENT_DIR: dir } };
  }

  async function cli(args: string[], env: { [k: string]: string }): Promise<string> {
    const result = await runAgentCli(args, env);
    assert.equal(result.code, 0, `sakshya-agent ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  }

  async function emit(env: { [k: string]: string }, n: number, tag: string): Promise<void> {
    for (let i = 0; i < n; i++) await cli(['emit', '--kind', 'audit', '--type', 'certificate.issued', '--body', JSON.stringify({ tag, i })], env);
  }

  async function collectorView(id: string): Promise<AgentListing> {
    const result = await runCollectorCli(['agents', 'list', '--json'], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.equal(result.code, 0, result.stderr);
    return (JSON.parse(result.stdout) as AgentListing[]).find((a) => a.agent === id)!;
  }

  async function assertBothVerify(env: { [k: string]: string }): Promise<void> {
    const agentVerify = await runAgentCli(['verify'], env);
    assert.equal(agentVerify.code, 0, `sakshya-agent verify: ${agentVerify.stdout}${agentVerify.stderr}`);
    const ledgerVerify = await runCollectorCli(['ledger', 'verify'], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.equal(ledgerVerify.code, 0, `sakshya-collector ledger verify: ${ledgerVerify.stdout}${ledgerVerify.stderr}`);
  }

  function chainOf(dir: string): SignedRecord[] {
    const outbox = SqliteOutbox.open(outboxPath(dir));
    try {
      return (outbox.db.prepare('SELECT canonical FROM records ORDER BY epoch, seq').pluck().all() as string[]).map((text) => JSON.parse(text) as SignedRecord);
    } finally {
      outbox.close();
    }
  }

  async function status(env: { [k: string]: string }): Promise<{ pending: number; acked: number }> {
    return JSON.parse(await cli(['status', '--json'], env)) as { pending: number; acked: number };
  }

  it('emit, sync, rotate-key, emit, sync: every record acknowledged and in the ledger once, both verifies pass, two keys listed', async () => {
    const agent = await newAgent();
    await emit(agent.env, 3, 'before');
    assert.deepEqual(JSON.parse(await cli(['sync', '--once'], agent.env)), { acknowledged: 3, batches: 1, pending: 0 });

    const rotated = JSON.parse(await cli(['rotate-key', '--json'], agent.env)) as { seq: number; oldKid: string; newKid: string; fromSeq: number };
    assert.equal(rotated.seq, 4);
    assert.equal(rotated.fromSeq, 5);
    const pendingRotation = JSON.parse(await cli(['status', '--json'], agent.env)) as { keys: { current: string; collectorKnows: string; history: unknown } };
    assert.deepEqual(pendingRotation.keys, {
      current: rotated.newKid,
      collectorKnows: rotated.oldKid,
      history: [
        { kid: rotated.oldKid, fromSeq: 1 },
        { kid: rotated.newKid, fromSeq: 5 },
      ],
    });
    assert.match(await cli(['status'], agent.env), /rotation not acknowledged yet/);
    await emit(agent.env, 3, 'after');
    assert.deepEqual(JSON.parse(await cli(['sync', '--once'], agent.env)), { acknowledged: 4, batches: 1, pending: 0 });
    // A second sync, now authenticated with the new key, has nothing to do and succeeds.
    await emit(agent.env, 1, 'later');
    assert.deepEqual(JSON.parse(await cli(['sync', '--once'], agent.env)), { acknowledged: 1, batches: 1, pending: 0 });

    const chain = chainOf(agent.dir);
    assert.deepEqual(chain.map((r) => r.kid), [...Array(4).fill(rotated.oldKid), ...Array(4).fill(rotated.newKid)]);
    assert.equal(chain[3]!.type, KEY_ROTATED_TYPE);
    const view = await collectorView(agent.id);
    assert.equal(view.highestSeq, 8);
    assert.equal(view.ledgerEntries, 8, 'each record in the ledger once');
    assert.deepEqual(view.keys.map((k) => [k.kid, k.fromSeq, k.reason]), [
      [rotated.oldKid, 1, 'enrolled'],
      [rotated.newKid, 5, 'rotated'],
    ]);
    assert.equal(typeof view.keys[1]!.addedAt, 'string');
    assert.equal((await status(agent.env)).pending, 0);
    const acknowledged = JSON.parse(await cli(['status', '--json'], agent.env)) as { keys: { current: string; collectorKnows: string } };
    assert.equal(acknowledged.keys.collectorKnows, rotated.newKid);
    const retired = JSON.parse(readFileSync(join(agent.dir, 'agent-key.jwk'), 'utf8')) as { d?: string };
    assert.equal(retired.d, undefined, 'the acknowledged rotation retired the old private key');
    await assertBothVerify(agent.env);
  });

  it('lets a running agent pick up a key rotated next to it, without a restart', async () => {
    const agent = await newAgent();
    running = await startAgentProcess({ dir: agent.dir });
    const post = async (i: number) => {
      const response = await fetch(`http://127.0.0.1:${running!.port}/v1/records`, {
        method: 'POST',
        headers: { authorization: `Bearer ${running!.localToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ kind: 'audit', type: 'file.moved', body: { i } }),
      });
      assert.equal(response.status, 201, await response.text());
    };
    for (let i = 0; i < 3; i++) await post(i);
    const rotated = JSON.parse(await cli(['rotate-key', '--json'], agent.env)) as { seq: number; newKid: string };
    for (let i = 3; i < 6; i++) await post(i);
    const refused = await fetch(`http://127.0.0.1:${running.port}/v1/records`, {
      method: 'POST',
      headers: { authorization: `Bearer ${running.localToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'agent', type: KEY_ROTATED_TYPE, body: {} }),
    });
    assert.equal(refused.status, 400, 'a caller cannot write a key.rotated record');
    await eventually('all records acknowledged', async () => {
      const s = await fetchAgentStatus<{ pending: number; acked: number }>(running!);
      return s.pending === 0 && s.acked === 7 ? s : undefined;
    });
    assert.equal(await running.stop(), 0);
    running = undefined;
    const chain = chainOf(agent.dir);
    assert.ok(chain.slice(rotated.seq).every((r) => r.kid === rotated.newKid));
    const view = await collectorView(agent.id);
    assert.equal(view.ledgerEntries, 7);
    assert.equal(view.keys.length, 2);
    await assertBothVerify(agent.env);
  });

  it('survives SIGKILL of rotate-key at random points and of the agent right after a rotation: consistent, and the sync completes', async () => {
    const agent = await newAgent();
    await emit(agent.env, 2, 'start');
    const env = { ...TEST_AGENT_ENV, SAKSHYA_AGENT_DIR: agent.dir };
    let completed = 0;
    let interrupted = 0;
    for (let round = 0; round < ROTATE_KILLS; round++) {
      const child = spawn(process.execPath, [AGENT_BIN, 'rotate-key'], { env: { ...process.env, ...env }, stdio: 'ignore' });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      await sleep(120 + round * 180 + Math.floor(Math.random() * 60)); // spread over startup, key write, commit
      child.kill('SIGKILL');
      if ((await exited) === 0) completed++;
      else interrupted++;
      // Whatever the kill left, the outbox verifies, and the next record is signed with the key it names.
      const verify = await runAgentCli(['verify'], agent.env);
      assert.equal(verify.code, 0, `round ${round}: ${verify.stdout}${verify.stderr}`);
      await emit(agent.env, 1, `round-${round}`);
    }
    // A completed rotation, then the agent killed before it synced anything.
    await cli(['rotate-key'], agent.env);
    running = await startAgentProcess({ dir: agent.dir, env: { SAKSHYA_AGENT_SYNC_INTERVAL_MS: '60000' } });
    await running.kill9();
    running = undefined;
    await emit(agent.env, 2, 'after-kill');

    running = await startAgentProcess({ dir: agent.dir });
    const synced = await eventually('backlog drained', async () => {
      const s = await fetchAgentStatus<{ pending: number; acked: number }>(running!);
      return s.pending === 0 ? s : undefined;
    }, 30_000);
    await running.stop();
    running = undefined;

    const chain = chainOf(agent.dir);
    const rotations = chain.filter((r) => r.type === KEY_ROTATED_TYPE).length;
    console.log(`      rotate-key killed ${ROTATE_KILLS} times: ${completed} finished first, ${interrupted} interrupted; ${rotations} rotations in a chain of ${chain.length}`);
    assert.equal(synced.acked, chain.length);
    const view = await collectorView(agent.id);
    assert.equal(view.ledgerEntries, chain.length, 'every record in the ledger once');
    assert.equal(view.keys.length, rotations + 1);
    await assertBothVerify(agent.env);
  });

  it('recovers when the receipt of the batch carrying the rotation is lost: the old key is refused, the new one is tried', async () => {
    const proxy = new ReceiptDroppingProxy();
    await proxy.start(collector.url);
    try {
      const agent = await newAgent(proxy.url);
      await emit(agent.env, 2, 'before');
      await cli(['rotate-key'], agent.env);
      await emit(agent.env, 2, 'after');
      proxy.dropReceipts = true;
      const lost = await runAgentCli(['sync', '--once'], agent.env);
      assert.notEqual(lost.code, 0, 'the receipt never arrived');
      assert.equal(proxy.dropped, 1);
      assert.equal((await collectorView(agent.id)).keys.length, 2, 'the collector stored the rotation');
      assert.equal((await status(agent.env)).pending, 5, 'the agent acknowledged nothing');

      proxy.dropReceipts = false;
      const again = JSON.parse(await cli(['sync', '--once'], agent.env)) as { acknowledged: number; pending: number };
      assert.deepEqual(again, { acknowledged: 5, batches: 1, pending: 0 });
      const view = await collectorView(agent.id);
      assert.equal(view.ledgerEntries, 5);
      await assertBothVerify(agent.env);
    } finally {
      await proxy.stop();
    }
  });
});
