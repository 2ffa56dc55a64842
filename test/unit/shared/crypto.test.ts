import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { sha256 } from '../../../shared/crypto.ts';

describe('sha256', () => {
  it('gives the SHA-256 digest bytes of any input, as a 32-byte Buffer (digests with every byte value included)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2048 }), fc.string({ unit: 'binary' })), (data) => {
        const digest = sha256(data);
        assert.ok(Buffer.isBuffer(digest));
        assert.equal(digest.length, 32);
        assert.deepEqual(digest, createHash('sha256').update(data).digest());
      }),
      { numRuns: 500 },
    );
    // The empty string's digest, from FIPS 180-2: a fixed point, whatever the implementation.
    assert.equal(sha256('').toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});
