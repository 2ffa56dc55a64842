import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { publicKeyFromJwk, jwkThumbprint } from '../../../shared/crypto.ts';
import { KEY_ROTATED_TYPE } from '../../../shared/key-rotation.ts';
import { verifyRecordSignature, type SignedRecord } from '../../../shared/record.ts';
import { readFileSync } from 'node:fs';
import { retireAcknowledgedKeys, rotateAgentKey } from '../../../agent/key-rotation.ts';
import { AgentKeyring } from '../../../agent/keys.ts';
import { OutboxError, outboxPath } from '../../../agent/outbox/sqlite-outbox.ts';
import { verifyOutbox } from '../../../agent/verify/outbox-verifier.ts';
import { makeTestAgentDir, type TestAgentDir } from './support/agent-dir.ts';

describe('agent/key-rotation', () => {
  let agent: TestAgentDir;
  beforeEach(() => {
    agent = makeTestAgentDir();
  });
  afterEach(() => agent.remove());

  function parse(outbox: ReturnType<TestAgentDir['open']>, seq: number): SignedRecord {
    return JSON.parse(outbox.record(seq)!.canonical) as SignedRecord;
  }

  it('writes a key.rotated record signed with the old key that names the new one, and signs every later record with the new key', () => {
    const outbox = agent.open();
    try {
      const keyring = new AgentKeyring(agent.dir);
      outbox.append({ kind: 'audit', type: 'a.b', body: {} }, keyring);
      const result = rotateAgentKey(agent.dir, outbox, keyring);
      assert.equal(result.seq, 2);
      assert.equal(result.fromSeq, 3);
      assert.equal(result.oldKid, agent.key.kid);
      assert.deepEqual(result.unusedKeyFiles, []);
      assert.equal(statSync(join(agent.dir, result.keyFile)).mode & 0o777, 0o600);

      const rotation = parse(outbox, 2);
      assert.equal(rotation.kind, 'agent');
      assert.equal(rotation.type, KEY_ROTATED_TYPE);
      assert.equal(rotation.kid, agent.key.kid);
      assert.ok(verifyRecordSignature(rotation, agent.key.publicKey));
      const body = rotation.body as { newKey: { kty: string; crv: string; x: string }; newKid: string };
      assert.deepEqual(Object.keys(body.newKey).sort(), ['crv', 'kty', 'x'], 'only the public members');
      assert.equal(jwkThumbprint(body.newKey as never), result.newKid);

      // A writer holding the keyring (as `run` does) picks up the new key at its next append.
      outbox.append({ kind: 'audit', type: 'a.b', body: {} }, keyring);
      const after = parse(outbox, 3);
      assert.equal(after.kid, result.newKid);
      assert.ok(verifyRecordSignature(after, publicKeyFromJwk(body.newKey)));
      // A writer still holding only the old key is refused, storing nothing.
      assert.throws(() => outbox.append({ kind: 'audit', type: 'a.b', body: {} }, agent.key), OutboxError);
      assert.equal(outbox.chain().headSeq, 3);
    } finally {
      outbox.close();
    }
  });

  it('signs agent JWTs with the key the collector knows until the rotation record is acknowledged', () => {
    const outbox = agent.open();
    try {
      const keyring = new AgentKeyring(agent.dir);
      const result = rotateAgentKey(agent.dir, outbox, keyring);
      outbox.append({ kind: 'audit', type: 'a.b', body: {} }, keyring);
      assert.deepEqual(outbox.authKeyRefs().map((ref) => ref.kid), [agent.key.kid, result.newKid], 'old key first, new one as the fallback');
      outbox.db.prepare('UPDATE chains SET acked_seq = ? WHERE epoch = 1').run(result.seq);
      assert.deepEqual(outbox.authKeyRefs().map((ref) => ref.kid), [result.newKid]);
    } finally {
      outbox.close();
    }
  });

  it('retires the old private key once the rotation is acknowledged, keeping its public half for verify', async () => {
    const outbox = agent.open();
    const keyring = new AgentKeyring(agent.dir);
    let result;
    try {
      outbox.append({ kind: 'audit', type: 'a.b', body: {} }, keyring);
      result = rotateAgentKey(agent.dir, outbox, keyring);
      outbox.append({ kind: 'audit', type: 'a.b', body: {} }, keyring);
      assert.deepEqual(retireAcknowledgedKeys(agent.dir, outbox), [], 'not acknowledged yet: the old key still signs JWTs');
      outbox.db.prepare('UPDATE chains SET acked_seq = 1 WHERE epoch = 1').run();
      assert.deepEqual(retireAcknowledgedKeys(agent.dir, outbox), [], 'the rotation record itself is not acknowledged yet');
      outbox.db.prepare('UPDATE chains SET acked_seq = 2 WHERE epoch = 1').run();
      assert.deepEqual(retireAcknowledgedKeys(agent.dir, outbox), ['agent-key.jwk']);
      assert.deepEqual(retireAcknowledgedKeys(agent.dir, outbox), [], 'once');
      outbox.db.prepare('UPDATE chains SET acked_seq = 0 WHERE epoch = 1').run();
      outbox.db.prepare('UPDATE records SET acked_batch = NULL').run();
    } finally {
      outbox.close();
    }
    const retired = JSON.parse(readFileSync(join(agent.dir, 'agent-key.jwk'), 'utf8')) as { d?: string; x: string };
    assert.equal(retired.d, undefined, 'no private key left');
    assert.equal(retired.x, agent.key.publicJwk.x);
    assert.equal(statSync(join(agent.dir, 'agent-key.jwk')).mode & 0o777, 0o600);
    assert.ok(existsSync(join(agent.dir, result.keyFile)));
    const report = await verifyOutbox({ path: outboxPath(agent.dir), agentKey: retired as never });
    assert.equal(report.ok, true, JSON.stringify(report.problems));
  });

  it('refuses a rotation whose old key is no longer the current one (another rotation committed first), changing nothing', () => {
    const outbox = agent.open();
    const other = agent.open();
    try {
      const keyring = new AgentKeyring(agent.dir);
      const first = rotateAgentKey(agent.dir, other, keyring);
      assert.throws(
        () => outbox.rotateKey({ expectedOldKid: agent.key.kid, newKey: agent.key.publicJwk, newKid: 'x'.repeat(43), keyFile: 'agent-key-x.jwk' }, keyring),
        /signing key changed meanwhile/,
      );
      assert.equal(outbox.chain().headSeq, 1);
      assert.deepEqual(readdirSync(agent.dir).filter((f) => f.startsWith('agent-key-')), [first.keyFile]);
    } finally {
      outbox.close();
      other.close();
    }
  });

  it('lets `verify` follow the rotations, and names a signing_keys row the chain does not give', async () => {
    const outbox = agent.open();
    const keyring = new AgentKeyring(agent.dir);
    try {
      outbox.append({ kind: 'audit', type: 'a.b', body: {} }, keyring);
      rotateAgentKey(agent.dir, outbox, keyring);
      outbox.append({ kind: 'audit', type: 'a.b', body: {} }, keyring);
      rotateAgentKey(agent.dir, outbox, keyring);
      outbox.append({ kind: 'audit', type: 'a.b', body: {} }, keyring);
    } finally {
      outbox.close();
    }
    const report = await verifyOutbox({ path: outboxPath(agent.dir), agentKey: agent.key.publicJwk });
    assert.equal(report.ok, true, JSON.stringify(report.problems));
    assert.equal(report.checked.records, 5);

    const db = new Database(outboxPath(agent.dir));
    db.prepare('UPDATE signing_keys SET from_seq = from_seq + 1 WHERE from_seq = 5').run();
    db.close();
    const tampered = await verifyOutbox({ path: outboxPath(agent.dir), agentKey: agent.key.publicJwk });
    assert.equal(tampered.ok, false);
    assert.equal(tampered.problems[0]?.check, 'key_history_mismatch');
  });

  it('leaves the old state when the key file cannot be written (a crash before the transaction)', () => {
    const outbox = agent.open();
    try {
      const before = outbox.chain();
      const keyring = new AgentKeyring(agent.dir);
      assert.throws(() => rotateAgentKey(join(agent.dir, 'missing'), outbox, keyring));
      assert.deepEqual(outbox.chain(), before);
      assert.deepEqual(outbox.keyRefs().map((ref) => ref.kid), [agent.key.kid]);
      assert.equal(existsSync(join(agent.dir, 'missing')), false);
    } finally {
      outbox.close();
    }
  });
});
