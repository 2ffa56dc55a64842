import assert from 'node:assert/strict';
import fc from 'fast-check';
import { generateSigningKey, type SigningKey } from '../../../shared/crypto.ts';
import { applyKeyRotation, keyAt, KeyHistory, KeyRotationError, type HistoryKey } from '../../../shared/key-history.ts';

const keyOf = (fromSeq: number, key: SigningKey): HistoryKey => ({ fromSeq, kid: key.kid, publicJwk: key.publicJwk });
const rotationTo = (key: SigningKey) => ({ newKey: key.publicJwk, newKid: key.kid });

function rotationError(run: () => unknown): KeyRotationError {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof KeyRotationError, `not a KeyRotationError: ${String(err)}`);
    return err;
  }
  assert.fail('the rotation was applied');
}

describe('shared/key-history', () => {
  const [a, b, c] = [generateSigningKey().key, generateSigningKey().key, generateSigningKey().key];

  it('gives each (epoch, seq) the key that was valid for it, including after a rotation', () => {
    const first = generateSigningKey().key;
    const rotated = generateSigningKey().key;
    const nextEpoch = generateSigningKey().key;
    const history = new KeyHistory();
    history.add(1, 1, first.publicJwk);
    history.add(2, 1, nextEpoch.publicJwk);
    history.add(1, 50, rotated.publicJwk);
    assert.equal(history.keyFor(1, 1)?.kid, first.kid);
    assert.equal(history.keyFor(1, 49)?.kid, first.kid);
    assert.equal(history.keyFor(1, 50)?.kid, rotated.kid);
    assert.equal(history.keyFor(1, 10_000)?.kid, rotated.kid);
    assert.equal(history.keyFor(2, 7)?.kid, nextEpoch.kid);
    assert.equal(history.keyFor(3, 1), undefined, 'no key is known for an epoch never enrolled');
  });

  it('keyAt gives the key with the largest fromSeq not above the seq, and none before the first', () => {
    const keys = [keyOf(1, a), keyOf(5, b), keyOf(9, c)];
    assert.equal(keyAt(keys, 1)?.kid, a.kid);
    assert.equal(keyAt(keys, 4)?.kid, a.kid);
    assert.equal(keyAt(keys, 5)?.kid, b.kid);
    assert.equal(keyAt(keys, 1000)?.kid, c.kid);
    assert.equal(keyAt([keyOf(3, a)], 2), undefined);
    assert.equal(keyAt([], 1), undefined);
  });

  it('keyAt agrees with "the last key whose fromSeq is at most seq" for any ascending history', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 1000 }), { maxLength: 12 }), fc.integer({ min: 1, max: 1100 }), (starts, seq) => {
        const history = [...starts].sort((x, y) => x - y).map((fromSeq) => ({ fromSeq }));
        const expected = history.filter((key) => key.fromSeq <= seq).at(-1);
        assert.equal(keyAt(history, seq), expected);
      }),
    );
  });

  it('applies a key.rotated record at seq s: its new key signs from s + 1, and the history given is unchanged', () => {
    const history = [keyOf(1, a)];
    const next = applyKeyRotation(history, { seq: 7, body: rotationTo(b) });
    assert.deepEqual(next, [keyOf(1, a), { fromSeq: 8, kid: b.kid, publicJwk: { kty: 'OKP', crv: 'Ed25519', x: b.publicJwk.x } }]);
    assert.deepEqual(history, [keyOf(1, a)]);
    assert.equal(keyAt(next, 7)?.kid, a.kid);
    assert.equal(keyAt(next, 8)?.kid, b.kid);
    const again = applyKeyRotation(next, { seq: 8, body: rotationTo(c) });
    assert.deepEqual(again.map((key) => [key.fromSeq, key.kid]), [[1, a.kid], [8, b.kid], [9, c.kid]]);
  });

  it('refuses, with a typed error, a body that is not a rotation, a newKid that is not the key thumbprint, a key the epoch used, and a rotation before one the history holds', () => {
    const history = [keyOf(1, a), keyOf(5, b)];
    assert.equal(rotationError(() => applyKeyRotation(history, { seq: 9, body: { newKey: b.publicJwk } })).failure, 'body');
    assert.equal(rotationError(() => applyKeyRotation(history, { seq: 9, body: { ...rotationTo(c), extra: 1 } })).failure, 'body');
    assert.equal(rotationError(() => applyKeyRotation(history, { seq: 9, body: { newKey: c.publicJwk, newKid: a.kid } })).failure, 'kid_mismatch');
    const reused = rotationError(() => applyKeyRotation(history, { seq: 9, body: rotationTo(a) }));
    assert.equal(reused.failure, 'key_reused');
    assert.match(reused.message, /already used/);
    assert.equal(rotationError(() => applyKeyRotation(history, { seq: 3, body: rotationTo(c) })).failure, 'not_last');
  });

  it('KeyHistory follows the rotations of each epoch and lists the rotated keys by epoch', () => {
    const history = new KeyHistory();
    history.add(2, 1, c.publicJwk);
    history.add(1, 1, a.publicJwk);
    const added = history.rotate(1, 4, rotationTo(b));
    assert.deepEqual([added.epoch, added.fromSeq, added.kid], [1, 5, b.kid]);
    assert.equal(history.keyFor(1, 4)?.kid, a.kid);
    assert.equal(history.keyFor(1, 5)?.kid, b.kid);
    assert.equal(history.keyFor(2, 5)?.kid, c.kid, 'another epoch is not rotated');
    assert.deepEqual(history.kids(1), new Set([a.kid, b.kid]));
    assert.deepEqual(history.rotated().map((key) => [key.epoch, key.fromSeq, key.kid]), [[1, 5, b.kid]]);
    assert.equal(rotationError(() => history.rotate(1, 9, rotationTo(a))).failure, 'key_reused');
    assert.equal(history.keys(1).length, 2, 'a refused rotation changes nothing');
  });
});
