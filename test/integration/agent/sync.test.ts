/**
 * The agent against the REAL collector (a `sakshya-collector serve` process): enrollment through
 * the collector's own CLI token, records synced exactly once, receipts verified against the
 * pinned key, and tampered receipts acknowledging nothing.
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { generateSigningKey, publicKeyFromJwk } from '../../../shared/crypto.ts';
import type { SignedReceipt } from '../../../shared/protocol.ts';
import { verifyReceipt } from '../../../shared/receipt.ts';
import { loadAgentKey } from '../../../agent/keys.ts';
import { outboxPath, SqliteOutbox, type Pins } from '../../../agent/outbox/sqlite-outbox.ts';
import { initAgent, runAgentCli } from '../../helpers/agent-process.ts';
import { makeTempDir, runCollectorCli, startCollectorProcess, type CollectorProcess } from '../../helpers/collector-process.ts';

interface AgentListing {
  agent: string;
  epoch: number;
  highestSeq: number;
  ledgerEntries: number;
}

/** A pass-through proxy that, while `tamper` is on, changes one byte of every batch receipt. */
class TamperingProxy {
  tamper = true;
  tampered = 0;
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
            let body = Buffer.concat(chunks);
            if (this.tamper && req.url === '/api/v1/batches' && answer.statusCode === 200) {
              const signed = JSON.parse(body.toString('utf8')) as SignedReceipt;
              // One byte of the signature changes: the receipt itself still looks fine.
              const at = Math.floor(signed.signature.length * 0.9);
              const swapped = signed.signature[at] === 'A' ? 'B' : 'A';
              signed.signature = signed.signature.slice(0, at) + swapped + signed.signature.slice(at + 1);
              body = Buffer.from(JSON.stringify(signed), 'utf8');
              this.tampered += 1;
            }
            const headers = { ...answer.headers, 'content-length': String(body.length) };
            delete headers['transfer-encoding'];
            res.writeHead(answer.statusCode ?? 502, headers);
            res.end(body);
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

describe('agent sync against the real collector', function () {
  this.timeout(60_000);
  let collector: CollectorProcess;
  let root: string;
  let agentCounter = 0;

  before(async () => {
    collector = await startCollectorProcess();
    root = makeTempDir('sakshya-agent-sync-');
  });

  after(async () => {
    await collector?.stop();
  });

  async function enrollmentToken(agent: string): Promise<string> {
    const result = await runCollectorCli(['agents', 'enroll', '--agent', agent], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.trim();
  }

  async function collectorView(agent: string): Promise<AgentListing | undefined> {
    const result = await runCollectorCli(['agents', 'list', '--json'], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.equal(result.code, 0, result.stderr);
    return (JSON.parse(result.stdout) as AgentListing[]).find((a) => a.agent === agent);
  }

  async function newAgent(collectorUrl = collector.url): Promise<{ id: string; dir: string; env: { [k: string]: string } }> {
    const id = `AS-SYN-${String(++agentCounter).padStart(3, '0')}`;
    const { dir } = await initAgent({ collectorUrl, agentId: id, token: await enrollmentToken(id), dir: join(root, id) });
    return { id, dir, env: { SAKSHYA_AGENT_DIR: dir, SAKSHYA_AGENT_BATCH_MAX_RECORDS: '100' } };
  }

  /** Appends `n` records straight into the agent's outbox (as `emit` does, without n processes). */
  function appendRecords(dir: string, n: number): void {
    const outbox = SqliteOutbox.open(outboxPath(dir));
    try {
      const key = loadAgentKey(dir);
      for (let i = 0; i < n; i++) outbox.append({ kind: i % 5 === 0 ? 'telemetry' : 'audit', type: 'test.sync', body: { i } }, key);
    } finally {
      outbox.close();
    }
  }

  async function status(env: { [k: string]: string }): Promise<{ pending: number; acked: number; headSeq: number; lastError: { reason: string } | null; lastReceipt: { highestSeq: number } | null; epoch: number }> {
    const result = await runAgentCli(['status', '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout);
  }

  it('delivers every record exactly once, and keeps receipts that verify against the pinned key', async () => {
    const agent = await newAgent();
    for (let i = 0; i < 3; i++) {
      const emitted = await runAgentCli(['emit', '--kind', 'audit', '--type', 'certificate.issued', '--body', JSON.stringify({ certificate: `INC-${i}` })], agent.env);
      assert.equal(emitted.code, 0, emitted.stderr);
    }
    appendRecords(agent.dir, 247);

    const synced = await runAgentCli(['sync', '--once'], agent.env);
    assert.equal(synced.code, 0, synced.stderr);
    assert.deepEqual(JSON.parse(synced.stdout), { acknowledged: 250, batches: 3, pending: 0 });

    const after = await status(agent.env);
    assert.equal(after.pending, 0);
    assert.equal(after.acked, 250);
    assert.equal(after.lastError, null);
    assert.equal(after.lastReceipt?.highestSeq, 250);

    const view = await collectorView(agent.id);
    assert.equal(view?.highestSeq, 250);
    assert.equal(view?.ledgerEntries, 250, 'each record in the ledger once');

    const outbox = SqliteOutbox.open(outboxPath(agent.dir));
    try {
      const pins = outbox.pins();
      const key = publicKeyFromJwk(pins.receiptKey);
      const rows = outbox.db.prepare('SELECT receipt, signature FROM receipts').all() as Array<{ receipt: string; signature: string }>;
      assert.equal(rows.length, 3);
      for (const row of rows) await verifyReceipt({ receipt: JSON.parse(row.receipt), signature: row.signature }, key);
      const unacked = outbox.db.prepare('SELECT count(*) FROM records WHERE acked_batch IS NULL').pluck().get();
      assert.equal(unacked, 0);
    } finally {
      outbox.close();
    }

    const again = await runAgentCli(['sync', '--once'], agent.env);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), { acknowledged: 0, batches: 0, pending: 0 });

    appendRecords(agent.dir, 7);
    assert.equal((await runAgentCli(['sync', '--once'], agent.env)).code, 0);
    const later = await collectorView(agent.id);
    assert.equal(later?.ledgerEntries, 257);
  });

  it('acknowledges nothing when a receipt is altered in transit, then delivers once the path is clean, without duplicates', async () => {
    const proxy = new TamperingProxy();
    await proxy.start(collector.url);
    try {
      const agent = await newAgent(proxy.url);
      appendRecords(agent.dir, 20);

      const refused = await runAgentCli(['sync', '--once'], agent.env);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /receipt signature does not verify/);
      assert.ok(proxy.tampered >= 1);
      const blocked = await status(agent.env);
      assert.equal(blocked.pending, 20, 'nothing acknowledged');
      assert.equal(blocked.acked, 0);
      assert.equal(blocked.lastError?.reason, 'bad_receipt');
      assert.ok(refused.stderr.split('\n').some((line) => line.includes('"level":50') && line.includes('receipt rejected')), 'logged at error');

      proxy.tamper = false;
      const synced = await runAgentCli(['sync', '--once'], agent.env);
      assert.equal(synced.code, 0, synced.stderr);
      const clean = await status(agent.env);
      assert.equal(clean.pending, 0);
      assert.equal(clean.acked, 20);
      const view = await collectorView(agent.id);
      assert.equal(view?.ledgerEntries, 20, 'the resent records were duplicates, not new entries');
    } finally {
      await proxy.stop();
    }
  });

  it('acknowledges nothing when the pinned receipt key is not the collector\u2019s', async () => {
    const agent = await newAgent();
    appendRecords(agent.dir, 5);
    const outbox = SqliteOutbox.open(outboxPath(agent.dir));
    try {
      const pins = outbox.pins();
      outbox.state.pins.set({ ...pins, receiptKey: generateSigningKey().key.publicJwk } satisfies Pins);
    } finally {
      outbox.close();
    }
    const refused = await runAgentCli(['sync', '--once'], agent.env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /receipt signature does not verify/);
    const after = await status(agent.env);
    assert.equal(after.pending, 5);
    assert.equal(after.acked, 0);
  });

  it('refuses an enrollment token issued for another agent id, and leaves the directory free for a retry', async () => {
    const token = await enrollmentToken('AS-SYN-OTHER');
    const dir = join(root, 'AS-SYN-WRONG');
    const refused = await runAgentCli(['init', '--collector', collector.url, '--agent', 'AS-SYN-WRONG', '--token', token, '--dir', dir]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /enrollment refused by the collector \(401 enroll\.token_invalid\)/);
    await initAgent({ collectorUrl: collector.url, agentId: 'AS-SYN-WRONG', token: await enrollmentToken('AS-SYN-WRONG'), dir });
  });
});
