/**
 * Key rotation at the collector (ADR 0006), over HTTP against an in-process collector: a
 * `key.rotated` record signed with the old key switches the key for the records after it, in
 * the same batch; the retired key then signs neither records nor agent JWTs; forged rotations
 * change nothing; and `ledger verify` re-derives the whole key history from the chain.
 */
import { sqliteOnly } from '../../helpers/postgres.ts';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { generateSigningKey, type SigningKey } from '../../../shared/crypto.ts';
import { KEY_ROTATED_TYPE } from '../../../shared/key-rotation.ts';
import type { SignedRecord } from '../../../shared/record.ts';
import { startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { assertProblem } from './http-assertions.ts';
import { TestAgent } from './test-agent.ts';

describe('agent key rotation at the collector', function () {
  this.timeout(30_000);
  let collector: InProcessCollector;
  let counter = 0;

  before(async () => {
    collector = await startCollectorInProcess();
  });
  after(async () => {
    await collector?.stop();
  });

  async function enrolledAgent(): Promise<TestAgent> {
    const agent = new TestAgent(`AS-ROT-${String(++counter).padStart(3, '0')}`, collector.url, collector.origin);
    const { token } = await collector.container.enrollment.issueToken(agent.id);
    const answer = await agent.enroll(token);
    assert.equal(answer.status, 200, answer.text);
    return agent;
  }

  /** The next record: a key.rotated record signed with the agent's current key, naming `next`. */
  function rotation(agent: TestAgent, next: SigningKey, body?: { [key: string]: unknown }): SignedRecord {
    return agent.next(body ?? { newKey: next.publicJwk, newKid: next.kid }, 'agent', KEY_ROTATED_TYPE);
  }

  async function keysOf(agent: TestAgent): Promise<{ kid: string; fromSeq: number; reason: string }[]> {
    const listing = (await collector.container.enrollment.listAgents()).find((a) => a.agent === agent.id)!;
    return listing.keys.map(({ kid, fromSeq, reason }) => ({ kid, fromSeq, reason }));
  }

  async function ledgerSize(): Promise<number> {
    return (await collector.container.ledger.stats()).size;
  }

  async function assertIntact(): Promise<void> {
    const report = await collector.container.ledgerAudit().run();
    assert.equal(report.intact, true, JSON.stringify(report.findings, null, 2));
  }

  it('accepts a rotation record and records signed with the new key in ONE batch authenticated by the old key', async () => {
    const agent = await enrolledAgent();
    const oldKey = agent.key;
    await agent.sendOk(agent.batch(agent.records(2)));
    const newKey = generateSigningKey().key;
    const records = [rotation(agent, newKey)];
    agent.key = newKey;
    records.push(...agent.records(3));
    const token = await agent.token({ key: oldKey });
    const signed = await agent.sendOk(agent.batch(records), { token });
    assert.equal(signed.receipt.accepted, 4);
    assert.equal(signed.receipt.highestSeq, 6);
    assert.deepEqual(await keysOf(agent), [
      { kid: oldKey.kid, fromSeq: 1, reason: 'enrolled' },
      { kid: newKey.kid, fromSeq: 4, reason: 'rotated' },
    ]);
    await assertIntact();
  });

  it('refuses, after the rotation, a record signed with the old key (400) and a JWT signed with the old key (401), storing nothing', async () => {
    const agent = await enrolledAgent();
    const oldKey = agent.key;
    const newKey = generateSigningKey().key;
    await agent.sendOk(agent.batch([agent.next(), rotation(agent, newKey)]));

    const size = await ledgerSize();
    const { seq, prev } = agent;
    const stale = agent.next(); // still signed with the old key, kid = old kid
    const answer = await agent.send(agent.batch([stale]), { token: await agent.token({ key: newKey }) });
    const problem = assertProblem(answer, 400, 'batch.invalid');
    assert.match(problem.detail!, /kid is not the thumbprint of the key valid at seq 3/);

    // The old kid with the new key's signature, or the new kid with the old key's: still refused.
    agent.seq = seq;
    agent.prev = prev;
    agent.key = { ...oldKey, kid: newKey.kid };
    const mislabelled = agent.next();
    assertProblem(await agent.send(agent.batch([mislabelled]), { token: await agent.token({ key: newKey }) }), 400, 'batch.invalid');

    agent.seq = seq;
    agent.prev = prev;
    agent.key = newKey;
    const fresh = agent.next();
    assertProblem(await agent.send(agent.batch([fresh]), { token: await agent.token({ key: oldKey }) }), 401, 'auth.invalid_token');
    assert.equal(await ledgerSize(), size, 'nothing stored');

    await agent.sendOk(agent.batch([fresh]), { token: await agent.token({ key: newKey }) });
    assert.equal(await ledgerSize(), size + 1);
    await assertIntact();
  });

  it('takes a rotation record sent again as a duplicate and adds no key twice', async () => {
    const agent = await enrolledAgent();
    const newKey = generateSigningKey().key;
    const records = [agent.next(), rotation(agent, newKey)];
    await agent.sendOk(agent.batch(records));
    agent.key = newKey;
    const after = agent.next();
    const signed = await agent.sendOk(agent.batch([...records, after]));
    assert.equal(signed.receipt.duplicates, 2);
    assert.equal(signed.receipt.accepted, 1);
    assert.equal((await keysOf(agent)).length, 2);
    await assertIntact();
  });

  it('rotates twice and verifies the whole history with `ledger verify`', async () => {
    const agent = await enrolledAgent();
    const keys = [agent.key, generateSigningKey().key, generateSigningKey().key];
    await agent.sendOk(agent.batch([...agent.records(2), rotation(agent, keys[1]!)]));
    agent.key = keys[1]!;
    await agent.sendOk(agent.batch([...agent.records(2), rotation(agent, keys[2]!)]), { token: await agent.token({ key: keys[1]! }) });
    agent.key = keys[2]!;
    await agent.sendOk(agent.batch(agent.records(2)), { token: await agent.token({ key: keys[2]! }) });
    assert.deepEqual(
      (await keysOf(agent)).map((k) => [k.kid, k.fromSeq]),
      [
        [keys[0]!.kid, 1],
        [keys[1]!.kid, 4],
        [keys[2]!.kid, 7],
      ],
    );
    await assertIntact();
  });

  it('makes `ledger verify` name a stored key history that the chain does not give (a key swapped in agent_keys)', async function () {
    sqliteOnly(this, 'it tampers with the SQLite file');
    const agent = await enrolledAgent();
    const newKey = generateSigningKey().key;
    await agent.sendOk(agent.batch([agent.next(), rotation(agent, newKey)]));
    const intruder = generateSigningKey().key;
    const db = new Database(join(collector.dir, 'collector.db'));
    try {
      db.prepare(`UPDATE agent_keys SET kid = ?, public_jwk = ? WHERE agent = ? AND from_seq = 3`).run(intruder.kid, JSON.stringify(intruder.publicJwk), agent.id);
    } finally {
      db.close();
    }
    try {
      const report = await collector.container.ledgerAudit().run();
      assert.equal(report.intact, false);
      const finding = report.findings.find((f) => f.table === 'agent_keys' && f.row.agent === agent.id);
      assert.ok(finding, JSON.stringify(report.findings));
      assert.equal(finding.check, 'key_history');
      assert.equal(finding.expected, `from seq 3 kid ${newKey.kid}`);
    } finally {
      const repair = new Database(join(collector.dir, 'collector.db'));
      repair.prepare(`UPDATE agent_keys SET kid = ?, public_jwk = ? WHERE agent = ? AND from_seq = 3`).run(newKey.kid, JSON.stringify(newKey.publicJwk), agent.id);
      repair.close();
    }
    await assertIntact();
  });

  it('refuses forged or malformed rotations with 400 batch.invalid and stores nothing', async () => {
    const agent = await enrolledAgent();
    await agent.sendOk(agent.batch(agent.records(1)));
    const newKey = generateSigningKey().key;
    const intruder = generateSigningKey().key;
    const cases: { name: string; build: () => SignedRecord[]; detail: RegExp }[] = [
      {
        name: 'signed by a key that is not the agent key (labelled with the agent kid)',
        build: () => {
          const real = agent.key;
          agent.key = { ...intruder, kid: real.kid };
          const record = rotation(agent, newKey);
          agent.key = real;
          return [record];
        },
        detail: /signature does not verify/,
      },
      {
        name: 'signed by another key under its own kid',
        build: () => {
          const real = agent.key;
          agent.key = intruder;
          const record = rotation(agent, newKey);
          agent.key = real;
          return [record];
        },
        detail: /kid is not the thumbprint/,
      },
      { name: 'an unknown body member', build: () => [rotation(agent, newKey, { newKey: newKey.publicJwk, newKid: newKey.kid, extra: 1 })], detail: /key\.rotated body/ },
      { name: 'no newKid', build: () => [rotation(agent, newKey, { newKey: newKey.publicJwk })], detail: /key\.rotated body/ },
      { name: 'a private key member in newKey', build: () => [rotation(agent, newKey, { newKey: { ...newKey.publicJwk, d: 'A'.repeat(43) }, newKid: newKey.kid })], detail: /key\.rotated body/ },
      { name: 'a newKid that is not the thumbprint', build: () => [rotation(agent, newKey, { newKey: newKey.publicJwk, newKid: intruder.kid })], detail: /thumbprint/ },
      { name: 'the same key again', build: () => [rotation(agent, agent.key, { newKey: agent.key.publicJwk, newKid: agent.key.kid })], detail: /already used/ },
      { name: 'a non-Ed25519 key', build: () => [rotation(agent, newKey, { newKey: { kty: 'EC', crv: 'P-256', x: newKey.publicJwk.x }, newKid: newKey.kid })], detail: /key\.rotated body/ },
      {
        name: 'a valid rotation followed by a record still signed with the old key',
        build: () => [rotation(agent, newKey), agent.next()],
        detail: /kid is not the thumbprint of the key valid at seq 3/,
      },
    ];
    const size = await ledgerSize();
    for (const c of cases) {
      const { seq, prev } = agent;
      const answer = await agent.send(agent.batch(c.build()));
      const problem = assertProblem(answer, 400, 'batch.invalid');
      assert.match(problem.detail!, c.detail, c.name);
      agent.seq = seq;
      agent.prev = prev;
    }
    assert.equal(await ledgerSize(), size, 'nothing stored');
    assert.equal((await keysOf(agent)).length, 1, 'no key added');
    // The agent's own key still works afterwards.
    await agent.sendOk(agent.batch(agent.records(1)));
    await assertIntact();
  });
});
