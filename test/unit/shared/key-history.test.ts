import assert from 'node:assert/strict';
import { generateSigningKey } from '../../../shared/crypto.ts';
import { KeyHistory } from '../../../shared/key-history.ts';

describe('shared/key-history', () => {
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
});
