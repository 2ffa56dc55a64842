import assert from 'node:assert/strict';
import { sqliteOnly } from '../../helpers/postgres.ts';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { canonicalBytes } from '../../../shared/canonical-json.ts';
import { verifyCheckpoint, type Checkpoint } from '../../../shared/checkpoint.ts';
import { fromBase64Url, publicKeyFromJwk, toBase64Url } from '../../../shared/crypto.ts';
import { EMPTY_ROOT, InvalidProofShapeError, RootMismatchError, verifyConsistency, verifyInclusion } from '../../../shared/merkle.ts';
import { API_PREFIX, type SignedReceipt } from '../../../shared/protocol.ts';
import { verifyReceipt } from '../../../shared/receipt.ts';
import { leafHashOfCanonical, signRecord, type SignedRecord } from '../../../shared/record.ts';
import { parseVerifierKey, type NoteVerifier } from '../../../shared/signed-note.ts';
import { runCollectorCli, startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { assertProblem } from './http-assertions.ts';
import { request, TestAgent, type HttpAnswer } from './test-agent.ts';

interface KeysAnswer {
  origin: string;
  logKey: string;
  jwks: { keys: { kty: string; crv: string; x: string; kid: string; alg: string; use: string; d?: string }[] };
}

interface ConsistencyAnswer {
  from: number;
  to: number;
  path: string[];
}

interface InclusionAnswer {
  index: number;
  size: number;
  leafHash: string;
  path: string[];
}

describe('ledger read API: checkpoints, proofs, keys and records', function () {
  this.timeout(30_000);
  let collector: InProcessCollector;
  let alice: TestAgent;
  let bob: TestAgent;
  let logKey: NoteVerifier;
  /** Every record accepted, with the receipt of its batch. */
  const sent: { record: SignedRecord; receipt: SignedReceipt }[] = [];
  const receipts: SignedReceipt[] = [];

  async function get<T = unknown>(path: string, headers: { [name: string]: string } = {}): Promise<HttpAnswer<T>> {
    return request<T>(`${collector.url}${API_PREFIX}${path}`, { headers });
  }

  async function enrolled(id: string): Promise<TestAgent> {
    const agent = new TestAgent(id, collector.url, collector.origin);
    const { token } = await collector.container.enrollment.issueToken(agent.id);
    assert.equal((await agent.enroll(token)).status, 200);
    return agent;
  }

  async function deliver(agent: TestAgent, count: number): Promise<SignedReceipt> {
    const records = agent.records(count);
    const signed = await agent.sendOk(agent.batch(records));
    receipts.push(signed);
    for (const record of records) sent.push({ record, receipt: signed });
    return signed;
  }

  /** The signed checkpoint of `size`, verified with the log key the collector publishes. */
  async function checkpointOf(size: number): Promise<Checkpoint> {
    const answer = await get<string>(`/checkpoints?size=${size}`);
    assert.equal(answer.status, 200, answer.text);
    return verifyCheckpoint(answer.text, logKey, collector.origin);
  }

  before(async () => {
    collector = await startCollectorInProcess();
    alice = await enrolled('AS-API-001');
    bob = await enrolled('AS-API-002');
    for (const [agent, count] of [[alice, 3], [bob, 1], [alice, 5], [bob, 7], [alice, 1], [bob, 2]] as const) await deliver(agent, count);
    logKey = parseVerifierKey((await get<KeysAnswer>('/keys')).body.logKey);
  });
  after(async () => {
    await collector?.stop();
  });

  describe('GET /api/v1/keys', () => {
    it('publishes the origin, the log verifier key and the receipt key as a JWKS, and no private key', async () => {
      const answer = await get<KeysAnswer>('/keys');
      assert.equal(answer.status, 200);
      assert.match(answer.headers.get('content-type') ?? '', /^application\/json/);
      const { origin, logKey: vkey, jwks } = answer.body;
      assert.equal(origin, collector.origin);
      assert.equal(vkey, alice.enrollment!.logKey, 'the same log key agents pin at enrollment');
      assert.equal(parseVerifierKey(vkey).name, collector.origin);
      assert.equal(jwks.keys.length, 1);
      const [key] = jwks.keys;
      assert.deepEqual({ ...key, x: undefined }, { kty: 'OKP', crv: 'Ed25519', x: undefined, kid: collector.container.keys.receipt.kid, alg: 'EdDSA', use: 'sig' });
      assert.doesNotMatch(answer.text, /"d"/);
      await verifyReceipt(receipts[0]!, publicKeyFromJwk(key));
    });
  });

  describe('GET /api/v1/checkpoint and /checkpoints?size=N', () => {
    it('serves the latest checkpoint as a text/plain C2SP signed note that verifies with the published log key', async () => {
      const answer = await get('/checkpoint');
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.get('content-type'), 'text/plain; charset=utf-8');
      const checkpoint = verifyCheckpoint(answer.text, logKey, collector.origin);
      const stats = await collector.container.ledger.stats();
      assert.equal(checkpoint.size, stats.size);
      assert.equal(toBase64Url(checkpoint.rootHash), stats.checkpoint.root);
      assert.deepEqual(receipts.at(-1)!.receipt.checkpoint, { size: checkpoint.size, root: toBase64Url(checkpoint.rootHash) });
    });

    it('serves the checkpoint each receipt names, byte for byte the signed size and root of that receipt', async () => {
      for (const { receipt } of receipts) {
        const checkpoint = await checkpointOf(receipt.checkpoint.size);
        assert.equal(checkpoint.size, receipt.checkpoint.size);
        assert.equal(toBase64Url(checkpoint.rootHash), receipt.checkpoint.root);
      }
    });

    it('keeps the signed checkpoint of the empty log, made at first start', async () => {
      const genesis = await checkpointOf(0);
      assert.deepEqual(genesis.rootHash, EMPTY_ROOT);
    });

    it('answers 404 resource.not_found for a size that has no checkpoint', async () => {
      const latest = (await collector.container.ledger.stats()).size;
      // Inside a batch of several records: the log never had that size.
      const inside = receipts[0]!.receipt.checkpoint.size - 1;
      assert.ok(receipts[0]!.receipt.accepted > 1);
      for (const size of [inside, latest + 1]) {
        const problem = assertProblem(await get(`/checkpoints?size=${size}`), 404, 'resource.not_found');
        assert.match(problem.detail, new RegExp(`size ${size}`));
      }
    });

    it('answers 400 request.invalid for a missing, malformed, repeated or unknown parameter', async () => {
      for (const query of ['', '?size=', '?size=abc', '?size=-1', '?size=01', '?size=1.5', '?size=1e3', '?size=99999999999999999999', '?size=1&size=2', '?size=1&extra=1']) {
        assertProblem(await get(`/checkpoints${query}`), 400, 'request.invalid');
      }
    });

    it('answers other methods with 405 problem+json', async () => {
      const answer = await request(`${collector.url}${API_PREFIX}/checkpoint`, { method: 'POST' });
      assertProblem(answer, 405, 'method.not_allowed');
    });

    it('never serves uncommitted state: a checkpoint inserted by an open transaction is invisible, and reads go on while it holds the write lock', async function () {
    sqliteOnly(this, 'it holds SQLite\u2019s write lock from another connection; on PostgreSQL the contract suite holds the writer\u2019s advisory lock');
      const latest = (await collector.container.ledger.stats()).size;
      const before = (await get('/checkpoint')).text;
      const intruder = new Database(join(collector.dir, 'collector.db'));
      try {
        intruder.exec('BEGIN IMMEDIATE');
        intruder.prepare('INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, randomblob(32), ?, ?)').run(latest + 1, 'not signed\n', 'now');
        const answer = await get('/checkpoint');
        assert.equal(answer.status, 200);
        assert.equal(answer.text, before);
        assertProblem(await get(`/checkpoints?size=${latest + 1}`), 404, 'resource.not_found');
        assertProblem(await get(`/proofs/consistency?from=1&to=${latest + 1}`), 400, 'request.invalid');
        assert.equal((await get(`/proofs/inclusion?index=0`)).status, 200);
      } finally {
        intruder.exec('ROLLBACK');
        intruder.close();
      }
    });
  });

  describe('GET /api/v1/proofs/consistency', () => {
    it('answers a proof between every pair of stored checkpoints that verifies against their signed roots', async () => {
      const sizes = [...new Set(receipts.map((r) => r.receipt.checkpoint.size))].sort((a, b) => a - b);
      sizes.unshift(1, 2); // sizes of the COLLECTOR chain's first checkpoints (token issue, enrollment)
      for (const from of sizes) {
        for (const to of sizes.filter((size) => size >= from)) {
          const answer = await get<ConsistencyAnswer>(`/proofs/consistency?from=${from}&to=${to}`);
          assert.equal(answer.status, 200, answer.text);
          assert.match(answer.headers.get('content-type') ?? '', /^application\/json/);
          assert.deepEqual(Object.keys(answer.body), ['from', 'to', 'path']);
          assert.equal(answer.body.from, from);
          assert.equal(answer.body.to, to);
          const path = answer.body.path.map((element) => {
            assert.match(element, /^[A-Za-z0-9_-]{43}$/);
            return fromBase64Url(element);
          });
          if (from === to) assert.deepEqual(path, []);
          const [old, now] = [await checkpointOf(from), await checkpointOf(to)];
          verifyConsistency(from, to, path, old.rootHash, now.rootHash);
          if (path.length > 0) {
            const flipped = path.map((hash) => Buffer.from(hash));
            flipped[0]![0]! ^= 1;
            assert.throws(() => verifyConsistency(from, to, flipped, old.rootHash, now.rootHash), RootMismatchError);
          }
        }
      }
    });

    it('answers 400 request.invalid for from = 0, from > to, to beyond the latest checkpoint and malformed parameters (shared/merkle edge policy)', async () => {
      const latest = (await collector.container.ledger.stats()).size;
      for (const query of [
        'from=0&to=0',
        'from=0&to=3',
        'from=5&to=4',
        `from=1&to=${latest + 1}`,
        'from=1',
        'to=3',
        'from=a&to=3',
        'from=1&to=3&to=4',
        'from=1&to=3&x=1',
      ]) {
        assertProblem(await get(`/proofs/consistency?${query}`), 400, 'request.invalid');
      }
    });
  });

  describe('GET /api/v1/proofs/inclusion', () => {
    it('proves every record by id in the latest checkpoint, with the leaf hash of its canonical bytes', async () => {
      const latest = verifyCheckpoint((await get('/checkpoint')).text, logKey, collector.origin);
      for (const { record } of sent) {
        const answer = await get<InclusionAnswer>(`/proofs/inclusion?id=${record.id}`);
        assert.equal(answer.status, 200, answer.text);
        assert.match(answer.headers.get('content-type') ?? '', /^application\/json/);
        assert.deepEqual(Object.keys(answer.body), ['index', 'size', 'leafHash', 'path']);
        assert.equal(answer.body.size, latest.size);
        const leaf = fromBase64Url(answer.body.leafHash);
        assert.deepEqual(leaf, leafHashOfCanonical(canonicalBytes(record)));
        verifyInclusion(leaf, answer.body.index, latest.size, answer.body.path.map(fromBase64Url), latest.rootHash);
      }
    });

    it('proves a record in the checkpoint its receipt names, by id and by index, and the proof fails against another root', async () => {
      for (const { record, receipt } of sent) {
        const { size } = receipt.receipt.checkpoint;
        const checkpoint = await checkpointOf(size);
        const byId = await get<InclusionAnswer>(`/proofs/inclusion?id=${record.id}&size=${size}`);
        assert.equal(byId.status, 200, byId.text);
        const { index } = byId.body;
        assert.ok(index >= receipt.receipt.ledger!.first && index <= receipt.receipt.ledger!.last);
        const byIndex = await get<InclusionAnswer>(`/proofs/inclusion?index=${index}&size=${size}`);
        assert.deepEqual(byIndex.body, byId.body);
        const path = byId.body.path.map(fromBase64Url);
        verifyInclusion(fromBase64Url(byId.body.leafHash), index, size, path, checkpoint.rootHash);
        assert.throws(() => verifyInclusion(fromBase64Url(byId.body.leafHash), index, size, path, EMPTY_ROOT), RootMismatchError);
        if (index + 1 < size) {
          assert.throws(() => verifyInclusion(fromBase64Url(byId.body.leafHash), index + 1, size, path, checkpoint.rootHash), /root|proof/);
        }
      }
    });

    it('answers 404 resource.not_found for an unknown record id', async () => {
      assertProblem(await get('/proofs/inclusion?id=0192f7b4-0000-7000-8000-000000000000'), 404, 'resource.not_found');
    });

    it('answers 400 request.invalid for an index or record outside the tree, a size beyond the latest, and malformed parameters', async () => {
      const latest = (await collector.container.ledger.stats()).size;
      const last = sent.at(-1)!.record;
      const first = sent[0]!.receipt.receipt.checkpoint.size;
      for (const query of [
        `index=${latest}`,
        `index=3&size=3`,
        `index=0&size=${latest + 1}`,
        `id=${last.id}&size=${first}`,
        'size=3',
        `id=${last.id}&index=1`,
        'id=not-a-uuid',
        'index=-1',
        'index=1&index=2',
        'index=1&extra=x',
      ]) {
        assertProblem(await get(`/proofs/inclusion?${query}`), 400, 'request.invalid');
      }
    });

    it('rejects the served proof if any bit of it changes', async () => {
      const { record } = sent[5]!;
      const answer = await get<InclusionAnswer>(`/proofs/inclusion?id=${record.id}`);
      const latest = verifyCheckpoint((await get('/checkpoint')).text, logKey, collector.origin);
      const path = answer.body.path.map(fromBase64Url);
      for (let i = 0; i < path.length; i++) {
        const tampered = path.map((hash) => Buffer.from(hash));
        tampered[i]![31]! ^= 0x80;
        assert.throws(() => verifyInclusion(fromBase64Url(answer.body.leafHash), answer.body.index, latest.size, tampered, latest.rootHash), RootMismatchError);
      }
      assert.throws(() => verifyInclusion(fromBase64Url(answer.body.leafHash), answer.body.index, latest.size, path.slice(1), latest.rootHash), InvalidProofShapeError);
    });
  });

  describe('GET /api/v1/records/<id>', () => {
    it("answers an agent its own record: the stored canonical JSON byte for byte, its ledger index and receive time", async () => {
      for (const { record, receipt } of sent.filter((entry) => entry.record.agent === alice.id)) {
        const answer = await get<{ record: SignedRecord; ledgerIndex: number; receivedAt: string }>(`/records/${record.id}`, {
          authorization: `Bearer ${await alice.token()}`,
        });
        assert.equal(answer.status, 200, answer.text);
        assert.match(answer.headers.get('content-type') ?? '', /^application\/json/);
        assert.deepEqual(Object.keys(answer.body), ['record', 'ledgerIndex', 'receivedAt']);
        assert.deepEqual(answer.body.record, record);
        assert.ok(answer.text.includes(canonicalBytes(record).toString('utf8')), 'the canonical text is sent as stored');
        assert.equal(answer.body.receivedAt, receipt.receipt.receivedAt);
        const proof = await get<InclusionAnswer>(`/proofs/inclusion?id=${record.id}`);
        assert.equal(answer.body.ledgerIndex, proof.body.index);
      }
    });

    it("refuses another agent's record with 403 auth.forbidden", async () => {
      const { record } = sent.find((entry) => entry.record.agent === alice.id)!;
      const problem = assertProblem(await get(`/records/${record.id}`, { authorization: `Bearer ${await bob.token()}` }), 403, 'auth.forbidden');
      assert.doesNotMatch(JSON.stringify(problem), /certificate\.issued/, 'nothing of the record leaks');
    });

    it('requires a fresh agent token: none, a garbage one or a replayed one is 401 auth.invalid_token', async () => {
      const { record } = sent[0]!;
      assertProblem(await get(`/records/${record.id}`), 401, 'auth.invalid_token');
      assertProblem(await get(`/records/${record.id}`, { authorization: 'Bearer nonsense' }), 401, 'auth.invalid_token');
      const token = await alice.token();
      assert.equal((await get(`/records/${record.id}`, { authorization: `Bearer ${token}` })).status, 200);
      assertProblem(await get(`/records/${record.id}`, { authorization: `Bearer ${token}` }), 401, 'auth.invalid_token');
    });

    it('answers 404 resource.not_found for an unknown id and 400 request.invalid for an id that is not a UUID', async () => {
      assertProblem(await get('/records/0192f7b4-0000-7000-8000-000000000000', { authorization: `Bearer ${await alice.token()}` }), 404, 'resource.not_found');
      assertProblem(await get('/records/42', { authorization: `Bearer ${await alice.token()}` }), 400, 'request.invalid');
    });
  });

  describe('witness reports and agents list', () => {
    async function listing(id: string) {
      return (await collector.container.enrollment.listAgents()).find((row) => row.agent === id)!;
    }

    it('stores the checkpoint an agent reports as witnessed, only moving forward, and shows it in agents list --json', async () => {
      const witnessed = receipts.at(-2)!.receipt.checkpoint;
      const signed = await alice.sendOk({ ...alice.batch(alice.records(1)), witness: witnessed });
      let row = await listing(alice.id);
      assert.equal(row.witnessedSize, witnessed.size);
      assert.equal(row.witnessedAt, signed.receipt.receivedAt);
      await alice.sendOk({ ...alice.batch(alice.records(1)), witness: receipts[0]!.receipt.checkpoint });
      row = await listing(alice.id);
      assert.equal(row.witnessedSize, witnessed.size, 'an older report does not move the witness back');

      const cli = await runCollectorCli(['agents', 'list', '--json'], { SAKSHYA_COLLECTOR_DIR: collector.dir });
      assert.equal(cli.code, 0, cli.stderr);
      const fromCli = (JSON.parse(cli.stdout) as { agent: string; gaps: unknown[]; quarantined: number; witnessedSize: number | null; witnessedAt: string | null }[])
        .find((entry) => entry.agent === alice.id)!;
      assert.deepEqual(
        { gaps: fromCli.gaps, quarantined: fromCli.quarantined, witnessedSize: fromCli.witnessedSize, witnessedAt: fromCli.witnessedAt },
        { gaps: [], quarantined: 0, witnessedSize: witnessed.size, witnessedAt: signed.receipt.receivedAt },
      );
    });

    it('ignores, with a warning, a witness report of a checkpoint the collector does not have, and still accepts the batch', async () => {
      const before = await listing(bob.id);
      const latest = receipts.at(-1)!.receipt.checkpoint;
      for (const witness of [
        { size: latest.size, root: toBase64Url(EMPTY_ROOT) },
        { size: latest.size + 1000, root: latest.root },
      ]) {
        const signed = await bob.sendOk({ ...bob.batch(bob.records(1)), witness });
        assert.equal(signed.receipt.accepted, 1);
      }
      const after = await listing(bob.id);
      assert.equal(after.witnessedSize, before.witnessedSize);
      const warnings = collector.logs.filter((line) => line.includes('"level":40') && line.includes('witness report names a checkpoint'));
      assert.equal(warnings.length, 2);
      assert.ok(warnings.every((line) => line.includes(bob.id)));
    });

    it('counts quarantined equivocations per agent and epoch, and lists no gaps for intact chains', async () => {
      const carol = await enrolled('AS-API-003');
      const [first] = carol.records(1) as [SignedRecord];
      await carol.sendOk(carol.batch([first]));
      const forged = signRecord({ ...first, id: '0192f7b4-0000-7000-8000-0000000000aa', body: { n: 'forged' } }, carol.key.privateKey);
      assertProblem(await carol.send(carol.batch([forged])), 409, 'record.equivocation');
      const row = await listing(carol.id);
      assert.equal(row.quarantined, 1);
      assert.deepEqual(row.gaps, []);
      for (const entry of await collector.container.enrollment.listAgents()) assert.deepEqual(entry.gaps, [], entry.agent);
    });
  });

  describe('sakshya-collector checkpoint', () => {
    it('prints the latest signed note as served, and with --json its size, base64url root and note', async () => {
      const served = (await get('/checkpoint')).text;
      const plain = await runCollectorCli(['checkpoint'], { SAKSHYA_COLLECTOR_DIR: collector.dir });
      assert.equal(plain.code, 0, plain.stderr);
      assert.equal(plain.stdout, served);
      const json = await runCollectorCli(['checkpoint', '--json'], { SAKSHYA_COLLECTOR_DIR: collector.dir });
      assert.equal(json.code, 0, json.stderr);
      const body = JSON.parse(json.stdout) as { size: number; root: string; note: string };
      const checkpoint = verifyCheckpoint(body.note, logKey, collector.origin);
      assert.deepEqual(body, { size: checkpoint.size, root: toBase64Url(checkpoint.rootHash), note: served });
    });
  });
});
