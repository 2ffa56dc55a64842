import assert from 'node:assert/strict';
import { generateSigningKey, type SigningKey } from '../../../shared/crypto.ts';
import { newId } from '../../../shared/ids.ts';
import { KEY_ROTATED_TYPE } from '../../../shared/key-rotation.ts';
import { GENESIS_PREV, signRecord, type SignedRecord } from '../../../shared/record.ts';
import { keyAt, type HistoryKey } from '../../../shared/key-history.ts';
import { planBatchKeys } from '../../../collector/services/batch-keys.ts';

function record(seq: number, key: SigningKey, rotateTo?: SigningKey): SignedRecord {
  return signRecord(
    {
      v: 1,
      id: newId(),
      agent: 'AS-UNIT-1',
      epoch: 1,
      seq,
      prev: GENESIS_PREV,
      kind: rotateTo ? 'agent' : 'audit',
      type: rotateTo ? KEY_ROTATED_TYPE : 'a.b',
      at: new Date(0).toISOString(),
      body: rotateTo ? { newKey: rotateTo.publicJwk, newKid: rotateTo.kid } : {},
      kid: key.kid,
    },
    key.privateKey,
  );
}

const history = (...keys: [number, SigningKey][]): HistoryKey[] => keys.map(([fromSeq, key]) => ({ fromSeq, kid: key.kid, publicJwk: key.publicJwk }));

describe('collector/services/batch-keys', () => {
  const a = generateSigningKey().key;
  const b = generateSigningKey().key;
  const c = generateSigningKey().key;

  it('finds the key valid at a seq: the one with the largest fromSeq not above it', () => {
    const keys = history([1, a], [5, b], [9, c]);
    assert.equal(keyAt(keys, 1)?.kid, a.kid);
    assert.equal(keyAt(keys, 4)?.kid, a.kid);
    assert.equal(keyAt(keys, 5)?.kid, b.kid);
    assert.equal(keyAt(keys, 1000)?.kid, c.kid);
    assert.equal(keyAt(history([3, a]), 2), undefined);
  });

  it('switches keys after a rotation inside the batch, in segments, and returns the rotation to store', () => {
    const plan = planBatchKeys([record(3, a), record(4, a, b), record(5, b), record(6, b, c), record(7, c)], history([1, a]));
    assert.ok(plan.ok);
    assert.deepEqual(
      plan.segments.map((s) => [s.start, s.end, s.publicKeyX]),
      [
        [0, 2, a.publicJwk.x],
        [2, 4, b.publicJwk.x],
        [4, 5, c.publicJwk.x],
      ],
    );
    assert.deepEqual(plan.rotations.map((r) => [r.rotationSeq, r.key.fromSeq, r.key.kid]), [
      [4, 5, b.kid],
      [6, 7, c.kid],
    ]);
  });

  it('takes a stored rotation sent again as already applied', () => {
    const plan = planBatchKeys([record(2, a, b), record(3, b)], history([1, a], [3, b]));
    assert.ok(plan.ok);
    assert.deepEqual(plan.rotations, []);
  });

  it('refuses a record whose kid is not the key valid at its seq, and a rotation back to a used key', () => {
    const stale = planBatchKeys([record(2, a, b), record(3, a)], history([1, a]));
    assert.deepEqual(stale.ok ? undefined : [stale.index, /valid at seq 3/.test(stale.reason)], [1, true]);
    const back = planBatchKeys([record(5, b, a)], history([1, a], [3, b]));
    assert.deepEqual(back.ok ? undefined : [back.index, /already used/.test(back.reason)], [0, true]);
  });
});
